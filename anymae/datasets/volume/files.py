"""A folder of volumes as a dataset: items `(C×H×W×D float32 tensor, label)`.

Each sample: read (`io.read_volume`: .npy / .nii / .nii.gz, checked) -> intensity window (CT:
clip to [a_min, a_max] HU and scale to [0, 1], MONAI's `ScaleIntensityRanged(clip=True)` as
Hi-End-MAE's data use it with [-175, 250]) -> crop to the model's size -> augment. With
augmentation (pretraining), as Hi-End-MAE's `LargeMedicalDataSets`: a random crop, a flip of each
axis with p 0.5, a rotation by k·90° (k in 1..3) in the H×W plane with p 0.3 (MONAI's
`RandRotate90(max_k=3)`; cubic crops only), an intensity scale `x · (1 + u)` and a shift `x + u`
(u uniform in [-0.1, 0.1]) each with p 0.1. Without: the centre crop. Every draw comes from torch's
global generator, which `SeededSamples` seeds per sample.

Not done here (the user prepares the files): resampling to 1.5 mm spacing and the
foreground-weighted crop centres of `RandCropByPosNegLabeld` (crops are uniform).
Bad input raises `DataError` naming the file; with `on_error="skip"` the next readable volume is
used and the skip counted (`skipped`, `skip_report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.cache import DecodeCache
from anymae.datasets.contract import SampleDataset
from anymae.datasets.scan import display_name, scan_layout, walk_files
from anymae.datasets.skips import CountsSkips, DataError, Skips
from anymae.datasets.volume.io import VOLUME_SUFFIXES, is_volume_name, read_volume

CT_WINDOW: tuple[float, float] = (-175.0, 250.0)  # Hi-End-MAE's intensities (HU), scaled to [0, 1]


def scan_volumes(root: Path, layout: str) -> tuple[list[str], list[tuple[Path, int]]]:
    """(classes, [(file, label)]) of the volume files under `root` (or `root` itself when it is one)."""
    if not root.exists():
        kind = "a dangling or looping link" if root.is_symlink() else "does not exist"
        raise DataError(f"volume root {display_name(root)} {kind}")
    if root.is_file():
        if not is_volume_name(root.name) or layout == "classes":
            raise DataError(f"volume root {display_name(root)} is a file; expected a folder or one volume file "
                            f"({', '.join(VOLUME_SUFFIXES)})")
        return [], [(root, -1)]
    files = walk_files(root, is_volume_name).files
    if not files:
        raise DataError(f"no volume files under {display_name(root)} (searched recursively for "
                        f"{', '.join(VOLUME_SUFFIXES)}; hidden files and folders are ignored)")
    try:
        return scan_layout(root, files, layout, what="volume")  # type: ignore[arg-type]
    except ValueError as err:
        raise DataError(str(err)) from err


def window(x: Tensor, limits: Sequence[float] | None) -> Tensor:
    """Clip to [a_min, a_max] and scale to [0, 1] (None: unchanged)."""
    if limits is None:
        return x
    lo, hi = float(limits[0]), float(limits[1])
    return (x.clamp(lo, hi) - lo) / (hi - lo)


class VolumeFiles(CountsSkips, Dataset, SampleDataset):
    """Volume files in a folder (a sub-folder per class, or flat) or one file (module doc).

    Args:
        root: the folder or file.
        img_size: the crop (H, W, D) or one int for a cube; None keeps the stored size.
        in_chans: the channel count every file must hold (None: any).
        layout: "auto", "classes" or "flat" (as `ImageFiles`).
        intensity_window: [a_min, a_max] to clip and scale to [0, 1]; None keeps the values.
        augment: "pretrain" / "finetune" (random crop and Hi-End-MAE's augmentations) or False.
        on_error: "raise" or "skip".
    """

    def __init__(
        self,
        root: str | Path,
        *,
        img_size: int | Sequence[int] | None = None,
        in_chans: int | None = None,
        layout: str = "auto",
        intensity_window: Sequence[float] | None = CT_WINDOW,
        augment: Literal["pretrain", "finetune", False] = False,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> None:
        self.root = Path(root)
        self.classes, self.samples = scan_volumes(self.root, layout)
        self.size = None if img_size is None else (
            (int(img_size),) * 3 if isinstance(img_size, int) else tuple(int(s) for s in img_size)
        )
        if self.size is not None and (len(self.size) != 3 or min(self.size) < 1):
            raise ValueError(f"data.img_size={img_size!r}: expected one int or three positive ints (H, W, D)")
        if intensity_window is not None and not (
            len(intensity_window) == 2 and float(intensity_window[1]) > float(intensity_window[0])
        ):
            raise ValueError(f"data.intensity_window={list(intensity_window)!r}: expected [a_min, a_max] with "
                             "a_max > a_min, or null")
        self.in_chans, self.intensity_window, self.augment = in_chans, intensity_window, augment
        if on_error not in ("raise", "skip"):
            raise ValueError(f"data.on_error={on_error!r}: expected 'raise' or 'skip'")
        self._skips = Skips(len(self), "volume", f"VolumeFiles({display_name(self.root)})", on_error)
        self.decode_cache = DecodeCache(self.read_raw, len(self), f"VolumeFiles({display_name(self.root)})")

    def __len__(self) -> int:
        return len(self.samples)

    def name(self, index: int) -> str:
        return display_name(self.samples[index][0])

    @property  # type: ignore[override]
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    def read_raw(self, index: int) -> np.ndarray:
        """Sample `index` as stored: C×H×W×D float32, checked."""
        return read_volume(self.samples[index][0], channels=self.in_chans)

    def _crop(self, x: Tensor, index: int) -> Tensor:
        """C×H×W×D -> C×h×w×d at `self.size` (random corner when augmenting, else centred)."""
        if self.size is None:
            return x
        have = tuple(x.shape[1:])
        if any(h < s for h, s in zip(have, self.size)):
            raise DataError(f"{self.name(index)}: {'×'.join(map(str, have))} voxels, smaller than the model's "
                            f"input {'×'.join(map(str, self.size))}")
        if self.augment:
            start = [int(torch.randint(0, h - s + 1, (1,))) for h, s in zip(have, self.size)]
        else:
            start = [(h - s) // 2 for h, s in zip(have, self.size)]
        (a, b, c), (h, w, d) = start, self.size
        return x[:, a : a + h, b : b + w, c : c + d]

    @staticmethod
    def _augment(x: Tensor) -> Tensor:
        """Hi-End-MAE's flips, 90° rotation and intensity jitter (module doc) on C×H×W×D."""
        for axis in (1, 2, 3):
            if float(torch.rand(())) < 0.5:
                x = x.flip(axis)
        if float(torch.rand(())) < 0.3 and x.shape[1] == x.shape[2]:
            x = torch.rot90(x, int(torch.randint(1, 4, (1,))), dims=(1, 2))
        if float(torch.rand(())) < 0.1:
            x = x * (1 + (torch.rand(()) * 0.2 - 0.1))
        if float(torch.rand(())) < 0.1:
            x = x + (torch.rand(()) * 0.2 - 0.1)
        return x

    def load(self, index: int) -> Tensor:
        x = window(torch.from_numpy(np.ascontiguousarray(self.decode_cache(index))), self.intensity_window)
        x = self._crop(x, index)
        if self.augment:
            x = self._augment(x)
        return x.contiguous()

    def item_name(self, index: int) -> str:
        """Item `index`'s name in the skip report."""
        return self.name(index)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self._skips.get(index, lambda j: (self.load(j), self.samples[j][1]))


