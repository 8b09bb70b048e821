"""Synthetic CT-like volumes written as real files (tests, the recipe contract, demos).

Each volume is an H×W×D array in Hounsfield-like units: a -1000 (air) background, a soft-tissue
ball (~40 HU) whose radius depends on the class, a bright "bone" slab (~700 HU) at a random
height, and Gaussian noise (std 20).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from anymae.datasets.volume.io import write_nifti


def ct_like_volume(size: int | tuple[int, int, int], label: int, rng: np.random.Generator) -> np.ndarray:
    """One H×W×D float32 volume in HU (module doc)."""
    h, w, d = (size,) * 3 if isinstance(size, int) else size
    zz, yy, xx = np.meshgrid(*(np.linspace(-1, 1, n) for n in (h, w, d)), indexing="ij")  # each H×W×D
    vol = np.full((h, w, d), -1000.0)
    vol[zz**2 + yy**2 + xx**2 < (0.5 + 0.2 * label) ** 2] = 40.0
    top = int(rng.integers(0, max(1, h - 2)))
    vol[top : top + 2] = 700.0
    return (vol + rng.normal(0, 20, vol.shape)).astype(np.float32)


def write_volume_folder(
    root: str | Path, n_per_class: int, num_classes: int = 2, *, size: int | tuple[int, int, int] = 20,
    fmt: Literal["npy", "nii", "nii.gz"] = "npy", seed: int = 0,
) -> Path:
    """Write `n_per_class` volumes per class into `root/class_k/vol_i.<fmt>`; returns `root`."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for label in range(num_classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            vol = ct_like_volume(size, label, rng)
            path = folder / f"vol_{i}.{fmt}"
            if fmt == "npy":
                np.save(path, vol)
            else:
                write_nifti(path, vol)
    return root
