"""Audio-visual data sources (`data.source: av_folder | av_csv`): video files with sound -> {"audio", "video"}.

    data:
      source: av_folder
      root: /data/vggsound/train      # a folder per class (or flat), mp4 / mkv / webm / avi / mov
      target_length: 1024             # fbank frames (default: the model's)
      num_mel_bins: 128
      img_size: 224

    data:
      source: av_csv                  # AudioSet-style: file + labels (mids) + class_labels_indices.csv
      csv: /data/audioset/train.csv
      class_index_csv: /data/audioset/class_labels_indices.csv
      # VGGSound-style single-label names: leave class_index_csv empty (classes = the sorted names)

The fbank geometry and frame size default to the model's (`target_length`, `num_mel_bins`,
`img_size`); normalization is CAV-MAE's (-5.081 / 4.4849, no factor 2; `mean` / `std` override).
Pretraining draws a random frame of 10 and adds CAV-MAE's fbank noise (`noise`); other splits read
the middle frame. Imports without PyAV (readers load when a dataset is built).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.core.config import ConfigError
from anymae.datasets.sources import SOURCES

AV_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi", ".mov")


@dataclass
class AVCommon:
    """Fields every audio-visual source has (audio frontend, frames, augmentation, errors)."""

    sample_rate: int = 16000
    num_mel_bins: int | None = None
    target_length: int | None = None
    img_size: int | None = None
    mean: float = -5.081  # CAV-MAE's AudioSet fbank statistics: (x - mean) / std
    std: float = 4.4849
    normalize: bool = True
    noise: bool = True  # pretraining only: fbank + U(0,1)·u/10 and a random time roll (CAV-MAE's `noise`)
    total_frames: int = 10  # frames spread over the first `frame_seconds` (training: a random one)
    frame_seconds: float = 10.0
    frame_use: int | None = None  # evaluation frame (default: the middle, total_frames // 2)
    on_error: Literal["raise", "skip"] = "raise"


@dataclass
class AVFolderSource(AVCommon):
    """Video files with sound (mp4, mkv, webm, avi, mov): a folder per class, or flat (recursive)."""

    root: str = ""
    layout: Literal["auto", "classes", "flat"] = "auto"


@dataclass
class AVCsvSource(AVCommon):
    """An AudioSet / VGGSound-style CSV list of clips with sound (file and labels columns).

    Labels are AudioSet mids looked up in `class_index_csv`, or without it plain class names
    (VGGSound-style; classes = the sorted names). Items carry multi-hot label vectors.
    """

    csv: str = ""
    class_index_csv: str = ""  # AudioSet's class_labels_indices.csv; empty: classes = the sorted label names
    root: str | None = None  # folder the file names are relative to (default: the CSV's folder)
    file_column: str = "file"
    labels_column: str = "labels"
    label_sep: str = ","


def _clips(cfg: AVCommon, samples: list, split: str, augment: Any, model_config: dict[str, Any], **kw: Any) -> Dataset:
    from anymae.datasets.audiovisual.files import AudioVisualClips, CavFrontend

    frontend = CavFrontend(
        sample_rate=cfg.sample_rate,
        num_mel_bins=cfg.num_mel_bins or int(model_config.get("num_mel_bins", 128)),
        target_length=cfg.target_length or int(model_config.get("target_length", 1024)),
        mean=cfg.mean, std=cfg.std, normalize=cfg.normalize,
    )  # fmt: skip
    size = cfg.img_size if cfg.img_size is not None else model_config.get("img_size", 224)
    size = size if isinstance(size, int) else int(size[0])
    return AudioVisualClips(
        samples, frontend, img_size=size, train=bool(augment), noise=cfg.noise and augment == "pretrain",
        total_frames=cfg.total_frames, frame_seconds=cfg.frame_seconds, frame_use=cfg.frame_use,
        mean=model_config.get("mean", (0.485, 0.456, 0.406)), std=model_config.get("std", (0.229, 0.224, 0.225)),
        on_error=cfg.on_error, **kw,
    )  # fmt: skip


@SOURCES.register("av_folder", config=AVFolderSource, modality="audio-visual", files={"layout": "flat"})
def _av_folder(cfg: AVFolderSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.scan import scan_folder

    if not cfg.root:
        raise ConfigError("data.root: expected a video file with sound or a folder of them")
    try:
        classes, samples = scan_folder(Path(cfg.root), cfg.layout, AV_EXTENSIONS, what="video")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return _clips(cfg, samples, split, augment, model_config, num_classes=len(classes), classes=classes,
                  root=cfg.root)


@SOURCES.register("av_csv", config=AVCsvSource, modality="audio-visual")
def _av_csv(cfg: AVCsvSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.audio.sources import _read_rows, class_index

    table = Path(cfg.csv)
    rows = _read_rows(table, "data.csv")
    for col in (cfg.file_column, cfg.labels_column):
        if col not in rows[0]:
            raise ConfigError(f"data.csv: {table} has no column {col!r} (columns: {sorted(rows[0])})")
    labels = [[m.strip() for m in r[cfg.labels_column].split(cfg.label_sep) if m.strip()] for r in rows]
    if cfg.class_index_csv:
        lookup, names = class_index(cfg.class_index_csv)
    else:
        names = sorted({m for ms in labels for m in ms})
        lookup = {m: i for i, m in enumerate(names)}
    base = Path(cfg.root) if cfg.root else table.parent
    samples = []
    for line, (r, ms) in enumerate(zip(rows, labels, strict=True), start=2):
        unknown = [m for m in ms if m not in lookup]
        if unknown:
            raise ConfigError(f"data.csv: {table} line {line}: label(s) {unknown} are not in {cfg.class_index_csv}")
        samples.append((base / r[cfg.file_column].strip(), [lookup[m] for m in ms]))
    return _clips(cfg, samples, split, augment, model_config, num_classes=len(names), multilabel=True,
                  classes=names, root=base)  # fmt: skip
