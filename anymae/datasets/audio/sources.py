"""Audio data sources for the `data:` section: folders, AudioSet-style CSVs, ESC-50.

All sources share the frontend fields (sample rate, mel bins, target length, normalization) and
the augmentation fields (roll_mag_aug for pretraining; freqm, timem, mixup for fine-tuning).
`num_mel_bins` / `target_length` default to the model's. `norm` names a dataset's statistics
("audioset", "esc50", "speechcommands"); `mean` / `std` override them (`anymae stats` computes
them for your data); `normalize: false` returns the raw fbank (what `anymae stats` reads).
This module imports without soundfile / torchaudio; readers load when a dataset is built.

    data:
      source: audio_csv
      csv: /data/audioset/balanced_train.csv       # columns: file, labels ("/m/09x0r,/m/05zppz")
      class_index_csv: /data/audioset/class_labels_indices.csv   # index, mid, display_name
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.core.config import ConfigError
from anymae.datasets.audio.files import AUDIO_EXTENSIONS, NORM_STATS, AudioClips, Augment, Frontend
from anymae.datasets.scan import scan_folder
from anymae.datasets.sources import SOURCES


@dataclass
class AudioCommon:
    """Fields every audio source has (frontend, normalization, augmentation, errors)."""

    sample_rate: int = 16000
    num_mel_bins: int | None = None
    target_length: int | None = None
    norm: Literal["audioset", "esc50", "speechcommands"] = "audioset"
    mean: float | None = None
    std: float | None = None
    normalize: bool = True
    roll_mag_aug: bool = False  # pretraining waveform magnitude augmentation (AS-2M recipe: true)
    freqm: int = 48  # fine-tuning SpecAugment (reference: hard-coded 48 / 192)
    timem: int = 192
    mixup: float = 0.5  # fine-tuning waveform mixup probability (reference 0.5)
    on_error: Literal["raise", "skip"] = "raise"


@dataclass
class AudioFolderSource(AudioCommon):
    """Audio files (wav, flac, ogg, mp3): a folder per class, or a flat unlabeled folder (recursive)."""

    root: str = ""
    layout: Literal["auto", "classes", "flat"] = "auto"


@dataclass
class AudioCsvSource(AudioCommon):
    """AudioSet-style multi-label CSV: a file column and a labels column of mids; mids -> indices by a class CSV."""

    csv: str = ""
    class_index_csv: str = ""  # AudioSet's class_labels_indices.csv (columns index, mid[, display_name])
    root: str | None = None  # folder the file names are relative to (default: the CSV's folder)
    file_column: str = "file"
    labels_column: str = "labels"
    label_sep: str = ","


@dataclass
class Esc50Source(AudioCommon):
    """ESC-50 (root holds meta/esc50.csv and audio/): 5 folds; `test_fold` is the test split."""

    root: str = ""
    test_fold: int = 1
    norm: Literal["audioset", "esc50", "speechcommands"] = "esc50"


def _frontend(cfg: AudioCommon, model_config: dict[str, Any]) -> Frontend:
    mean, std = NORM_STATS[cfg.norm]
    return Frontend(
        sample_rate=cfg.sample_rate,
        num_mel_bins=cfg.num_mel_bins or int(model_config.get("num_mel_bins", 128)),
        target_length=cfg.target_length or int(model_config.get("target_length", 1024)),
        mean=mean if cfg.mean is None else cfg.mean,
        std=std if cfg.std is None else cfg.std,
        normalize=cfg.normalize,
    )


def _augment(cfg: AudioCommon, augment: Any) -> Augment | None:
    if augment == "pretrain":
        return Augment(roll_mag=cfg.roll_mag_aug)
    if augment == "finetune":
        return Augment(freqm=cfg.freqm, timem=cfg.timem, mixup=cfg.mixup, roll_mag=cfg.roll_mag_aug)
    return None


def _clips(cfg: AudioCommon, samples: list, augment: Any, model_config: dict[str, Any], **kw: Any) -> AudioClips:
    aug = _augment(cfg, augment)
    if aug is not None and kw.get("num_classes", 0) == 0:
        aug.mixup = 0.0  # unlabeled data: nothing to mix labels with (pretraining has no mixup)
    return AudioClips(samples, _frontend(cfg, model_config), augment=aug, on_error=cfg.on_error, **kw)


@SOURCES.register("audio_folder", config=AudioFolderSource, modality="audio", files={"layout": "flat"})
def _audio_folder(cfg: AudioFolderSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    if not cfg.root:
        raise ConfigError("data.root: expected an audio file or a folder of audio files")
    try:
        classes, samples = scan_folder(Path(cfg.root), cfg.layout, AUDIO_EXTENSIONS, what="audio")
    except ValueError as err:  # the image scanner's messages, worded for audio
        raise ConfigError(str(err).replace("image", "audio")) from None
    return _clips(cfg, samples, augment, model_config, num_classes=len(classes), classes=classes, root=cfg.root)


def _read_rows(path: Path, where: str) -> list[dict[str, str]]:
    if not path.is_file():
        raise ConfigError(f"{where}: no file {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, skipinitialspace=True))
    if not rows:
        raise ConfigError(f"{where}: {path} has no data rows")
    return rows


def class_index(path: str | Path) -> tuple[dict[str, int], list[str]]:
    """AudioSet class CSV (index, mid, display_name) -> ({mid: index}, names by index)."""
    rows = _read_rows(Path(path), "data.class_index_csv")
    if not {"index", "mid"} <= set(rows[0]):
        raise ConfigError(f"data.class_index_csv: {path} needs columns 'index' and 'mid', has {sorted(rows[0])}")
    lookup = {r["mid"].strip(): int(r["index"]) for r in rows}
    names = [""] * (max(lookup.values()) + 1)
    for r in rows:
        names[int(r["index"])] = (r.get("display_name") or r["mid"]).strip()
    return lookup, names


@SOURCES.register("audio_csv", config=AudioCsvSource, modality="audio")
def _audio_csv(cfg: AudioCsvSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    table = Path(cfg.csv)
    rows = _read_rows(table, "data.csv")
    for col in (cfg.file_column, cfg.labels_column):
        if col not in rows[0]:
            raise ConfigError(f"data.csv: {table} has no column {col!r} (columns: {sorted(rows[0])})")
    lookup, names = class_index(cfg.class_index_csv)
    base = Path(cfg.root) if cfg.root else table.parent
    samples = []
    for line, r in enumerate(rows, start=2):
        mids = [m.strip() for m in r[cfg.labels_column].split(cfg.label_sep) if m.strip()]
        unknown = [m for m in mids if m not in lookup]
        if unknown:
            raise ConfigError(f"data.csv: {table} line {line}: label(s) {unknown} are not in {cfg.class_index_csv}")
        samples.append((base / r[cfg.file_column].strip(), [lookup[m] for m in mids]))
    return _clips(cfg, samples, augment, model_config, num_classes=len(names), multilabel=True,
                  classes=names, root=base)  # fmt: skip


@SOURCES.register("esc50", config=Esc50Source, modality="audio")
def _esc50(cfg: Esc50Source, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    root = Path(cfg.root)
    rows = _read_rows(root / "meta" / "esc50.csv", "data.root")
    if not {"filename", "fold", "target"} <= set(rows[0]):
        raise ConfigError(f"data.root: {root}/meta/esc50.csv needs columns filename, fold, target")
    if split == "test":
        rows = [r for r in rows if int(r["fold"]) == cfg.test_fold]
    elif split == "train":
        rows = [r for r in rows if int(r["fold"]) != cfg.test_fold]
    names = {int(r["target"]): r.get("category", r["target"]) for r in rows}
    samples = [(root / "audio" / r["filename"], int(r["target"])) for r in rows]
    classes = [names.get(k, str(k)) for k in range(max(names) + 1)] if names else []
    return _clips(cfg, samples, augment, model_config, num_classes=max(50, len(classes)), classes=classes, root=root)
