"""Data source of the volume modality (`data.source: volume_files`).

Imports without the `volume` extra: nibabel is imported when a NIfTI file is read.

    data:
      source: volume_files
      root: /data/ct                    # a folder (flat or a sub-folder per class) or one file
      intensity_window: [-175, 250]     # HU clipped and scaled to [0, 1] (Hi-End-MAE); null: raw values
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.datasets.sources import SOURCES, Augment


@dataclass
class VolumeFilesSource:
    """Volumes, one `.npy` (H×W×D or C×H×W×D) / `.nii` / `.nii.gz` (H×W×D or H×W×D×C) file per sample.

    `img_size` (one int or [H, W, D]) defaults to the model's: larger volumes are cropped (random
    crop + Hi-End-MAE's flips / rotation / intensity jitter when training, centre crop else),
    smaller ones are an error naming the file. `in_chans` defaults to the model's.
    """

    root: str
    layout: Literal["auto", "classes", "flat"] = "auto"
    img_size: int | list[int] | None = None
    in_chans: int | None = None
    intensity_window: list[float] | None = field(default_factory=lambda: [-175.0, 250.0])
    on_error: Literal["raise", "skip"] = "raise"


@SOURCES.register("volume_files", config=VolumeFilesSource, modality="volume", files={"layout": "flat"})
def _volume_files(cfg: VolumeFilesSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.volume.files import VolumeFiles

    size = cfg.img_size if cfg.img_size is not None else model_config.get("img_size")
    return VolumeFiles(
        cfg.root, img_size=size, in_chans=cfg.in_chans if cfg.in_chans is not None else model_config.get("in_chans"),
        layout=cfg.layout, intensity_window=cfg.intensity_window, augment=augment, on_error=cfg.on_error,
    )
