"""Reading volumes: `.npy` (numpy, never unpickled) and NIfTI `.nii` / `.nii.gz` (nibabel, the `volume` extra).

Every reader returns a C×H×W×D float32 array whose values are all finite, or raises `DataError`
naming the file and what was expected:

- `.npy`: a 3-D H×W×D array (one channel) or 4-D C×H×W×D (channels first, as torch / MONAI);
  the header is checked against the file size before anything is read
  (`datasets.multichannel.io.load_npy`);
- NIfTI: a 3-D image or a 4-D one whose 4th axis holds the channels (NIfTI's own convention);
  values are the scaled ones (`scl_slope` / `scl_inter` applied: Hounsfield units for CT); the
  header's shape is checked against the file size (uncompressed) or `COMPRESSED_EXPANSION` times
  it (`.nii.gz`) before the data is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymae.datasets.multichannel.io import load_npy
from anymae.datasets.scan import display_name
from anymae.datasets.skips import COMPRESSED_EXPANSION, DataError, check_declared_size, check_file, reason
from anymae.extras import require

VOLUME_SUFFIXES: tuple[str, ...] = (".npy", ".nii", ".nii.gz")


def is_volume_name(name: str) -> bool:
    """Whether a file name ends in one of `VOLUME_SUFFIXES` (case-insensitive)."""
    return name.lower().endswith(VOLUME_SUFFIXES)


def _nibabel():
    return require("nibabel", "volume", purpose="reading NIfTI volumes (.nii, .nii.gz)")


def read_nifti(path: Path) -> np.ndarray:
    """A NIfTI file's scaled voxel values (any ndim, float32), after checking its declared size."""
    check_file(path, "volume")
    nib = _nibabel()
    try:
        image = nib.load(str(path))
        shape, dtype = tuple(int(s) for s in image.shape), np.dtype(image.get_data_dtype())
        compressed = path.name.lower().endswith(".gz")
        offset = 0 if compressed else int(getattr(image.dataobj, "offset", 0))
        check_declared_size(
            path, offset + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize,
            what=f"a NIfTI image of shape {shape} {dtype}", expansion=COMPRESSED_EXPANSION if compressed else 1.0,
        )
        with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become Inf: refused after
            return np.asarray(image.dataobj, dtype=np.float32)
    except DataError:
        raise
    except Exception as err:  # a bad header, truncated or corrupt data: one line naming the file
        raise DataError(f"cannot read NIfTI file {display_name(path)}: {reason(err)}") from err


def to_channels_first(arr: np.ndarray, path: Path, *, channels: int | None) -> np.ndarray:
    """A 3-D or 4-D array -> C×H×W×D (NIfTI: channels on the 4th axis; .npy: on the 1st).

    Raises:
        DataError: another ndim, an empty axis, or a channel count other than `channels`.
    """
    nifti = not path.name.lower().endswith(".npy")
    if arr.ndim == 3:
        arr = arr[None]  # 1×H×W×D
    elif arr.ndim == 4:
        arr = np.moveaxis(arr, -1, 0) if nifti else arr  # C×H×W×D
    else:
        expected = "H×W×D or H×W×D×C (NIfTI)" if nifti else "H×W×D or C×H×W×D (.npy, channels first)"
        raise DataError(f"{display_name(path)}: expected a 3-D volume ({expected}), got an array of shape {arr.shape}")
    if 0 in arr.shape:
        raise DataError(f"{display_name(path)}: the volume has an empty axis (C×H×W×D = {arr.shape})")
    if channels is not None and arr.shape[0] != channels:
        raise DataError(
            f"{display_name(path)}: {arr.shape[0]} channel(s) (C×H×W×D = {arr.shape}), the model takes {channels}"
        )
    return arr


def check_finite_volume(arr: np.ndarray, path: Path) -> np.ndarray:
    """`arr` when every value is finite, else `DataError` naming the file, the count and the first voxel."""
    finite = np.isfinite(arr)
    if finite.all():
        return arr
    first = tuple(int(v) for v in np.argwhere(~finite)[0])
    raise DataError(
        f"{display_name(path)}: {int((~finite).sum())} NaN or Inf voxel(s) (first at C,H,W,D = {first}; values "
        "beyond float32's range count as Inf); every value must be finite"
    )


def read_volume(path: str | Path, *, channels: int | None = None) -> np.ndarray:
    """The volume in a `.npy` / `.nii` / `.nii.gz` file as C×H×W×D float32 (checked, finite).

    Args:
        path: the file.
        channels: the channel count the caller needs (None: any).

    Raises:
        DataError: naming the file: unknown suffix, unreadable / truncated / corrupt, objects or
            strings, a declared size the file cannot hold, a wrong ndim or channel count, NaN / Inf.
    """
    p = Path(path)
    if not is_volume_name(p.name):
        raise DataError(f"{display_name(p)}: not a volume file; expected one of {', '.join(VOLUME_SUFFIXES)}")
    if p.name.lower().endswith(".npy"):
        with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become Inf: refused after
            arr = np.asarray(load_npy(p), dtype=np.float32)
    else:
        arr = read_nifti(p)
    return check_finite_volume(to_channels_first(arr, p, channels=channels), p)


def write_nifti(path: str | Path, volume: np.ndarray, *, spacing: tuple[float, float, float] = (1.5, 1.5, 1.5)) -> Path:
    """Write an H×W×D (or H×W×D×C) array as NIfTI (`.nii` or `.nii.gz`) with a diagonal affine of `spacing` mm."""
    nib = _nibabel()
    affine = np.diag([*spacing, 1.0])
    nib.save(nib.Nifti1Image(np.asarray(volume), affine), str(path))
    return Path(path)
