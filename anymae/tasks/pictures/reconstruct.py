"""Reconstruction pictures of a pretrained checkpoint on its own data or on given files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from anymae.core.config import load_config
from anymae.datasets.collate import collate_items
from anymae.core.registry import get_entry
from anymae.datasets.sources import build_dataset, files_section
from anymae.tasks.pictures.figures import save_reconstruction_png
from anymae.tasks.train.checkpoint import load_checkpoint
from anymae.tasks.train.pretrain import model_from_state


@dataclass
class ReconstructConfig:
    """`anymae reconstruct`: a pretraining checkpoint, where to write, and which data.

    Attributes:
        checkpoint: the pretraining checkpoint (`last.pt`).
        out: the PNG written.
        input: a file or folder read with the model's modality's file reader; default the
            checkpoint's own `data` section (evaluation transform, test split).
        num: samples (rows).
        seed: sample i's mask is drawn from seed `seed + i`.
        gif: also write an animated GIF of the panels here (clip modalities).
        data: changes to the data section read (`data.root=...`), key by key.
    """

    checkpoint: str
    out: str = "reconstruction.png"
    input: str | None = None
    num: int = 8
    seed: int = 0
    gif: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def load_reconstruct_config(path: str | None, overrides: list[str]) -> ReconstructConfig:
    return load_config(ReconstructConfig, path, overrides)


def run_reconstruct(cfg: ReconstructConfig) -> Path:
    """Write the picture (and the GIF) a `ReconstructConfig` describes; returns the PNG's path."""
    return reconstruct_checkpoint(cfg.checkpoint, cfg.out, inputs=cfg.input, data=cfg.data, num=cfg.num,
                                  seed=cfg.seed, gif=cfg.gif)


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` set key by key (nested sections merged, not replaced)."""
    out = dict(base)
    for key, value in changes.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


def _inputs_section(inputs: str, model_config: dict[str, Any]) -> dict[str, Any]:
    path = Path(inputs)
    if not path.exists():
        raise FileNotFoundError(f"--input {inputs!r} does not exist")
    return files_section(get_entry(model_config["name"]).modality, str(path))


def reconstruct_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    inputs: str | None = None,
    data: dict[str, Any] | None = None,
    num: int = 8,
    seed: int = 0,
    gif: str | Path | None = None,
) -> Path:
    """PNG of the first `num` samples: input | masked | reconstruction (| normalized prediction).

    Data: `inputs` (a file or folder of images), else the checkpoint's own `data` section
    (evaluation transform, test split), changed by `data` (keys set one by one).
    Masks are drawn from `seed` (sample i gets seed + i), so pictures are reproducible.
    With `gif` (clip modalities) an animated GIF of the same panels is written there too.
    """
    state = load_checkpoint(checkpoint)  # read once: model and the run's own data section
    model = model_from_state(state, str(checkpoint))
    section = _inputs_section(inputs, model.config) if inputs is not None else dict(state["config"].get("data", {}))
    section = _merged(section, data or {})
    dataset: Dataset = build_dataset(section, split="test", augment=False, model_config=model.config)
    n = min(num, len(dataset))  # type: ignore[arg-type]
    batch = collate_items(dataset, [dataset[i] for i in range(n)])[0]
    if gif is not None:
        from anymae.tasks.pictures.animation import save_reconstruction_gif

        save_reconstruction_gif(gif, model, batch, seeds=torch.arange(seed, seed + n), max_rows=n)
    return save_reconstruction_png(out, model, batch, seeds=torch.arange(seed, seed + n), max_rows=n)
