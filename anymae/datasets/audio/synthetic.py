"""Synthetic audio written as real files (tests, demos): tones, chirps and noise, one kind per class."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from anymae.extras import require

KINDS: tuple[str, ...] = ("tone", "chirp", "noise")


def synth_clip(kind: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One mono clip (float32, peak about 0.5): a tone, an upward chirp, or white noise."""
    t = np.arange(int(seconds * sr)) / sr
    if kind == "tone":
        x = np.sin(2 * np.pi * rng.uniform(300, 1200) * t)
    elif kind == "chirp":
        f0, f1 = rng.uniform(200, 500), rng.uniform(2000, 4000)
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds)))
    elif kind == "noise":
        x = rng.standard_normal(t.shape) * 0.3
    else:
        raise ValueError(f"kind={kind!r}: expected one of {KINDS}")
    return (0.5 * x / max(1e-6, float(np.abs(x).max()))).astype(np.float32)


def write_audio_folder(
    root: str | Path,
    n_per_class: int,
    kinds: tuple[str, ...] = KINDS,
    *,
    fmt: str = "wav",
    sr: int = 16000,
    seconds: float = 1.0,
    channels: int = 1,
    seed: int = 0,
) -> Path:
    """Write root/<kind>/<kind>_<i>.<fmt> files (a folder per class); returns root."""
    sf = require("soundfile", "audio", purpose="writing audio files")
    rng = np.random.default_rng(seed)
    root = Path(root)
    for kind in kinds:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            x = synth_clip(kind, seconds, sr, rng)
            data = np.stack([x] * channels, axis=1) if channels > 1 else x  # L×C or L
            sf.write(str(root / kind / f"{kind}_{i}.{fmt}"), data, sr)
    return root


def write_audioset_csv(folder: str | Path, labels: dict[str, list[str]], mids: list[str]) -> tuple[Path, Path]:
    """Write `labels.csv` (file, labels) and `class_labels_indices.csv` (index, mid, display_name)."""
    folder = Path(folder)
    table, classes = folder / "labels.csv", folder / "class_labels_indices.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "labels"])
        for name, ls in labels.items():
            w.writerow([name, ",".join(ls)])
    with classes.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "mid", "display_name"])
        for i, m in enumerate(mids):
            w.writerow([i, m, f"class {m}"])
    return table, classes
