"""Reading and writing multi-channel stacks: multi-page TIFF, npy / npz, one image per channel.

Every reader returns float32 numpy arrays; every error names the file (and the channel) and says
what was expected. tifffile (the `multichannel` extra) is imported on use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from anymae.extras import require
from anymae.datasets.image.files import DataError

STACK_EXTENSIONS: tuple[str, ...] = (".npy", ".npz", ".tif", ".tiff")
CHANNEL_IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".npy")
Layout = Literal["auto", "chw", "hwc"]


def _tifffile():
    return require("tifffile", "multichannel", purpose="reading TIFF stacks")


def read_array(path: str | Path, *, npz_key: str | None = None) -> np.ndarray:
    """The array stored in a .npy / .npz / .tif(f) file, as float32 (any shape).

    Raises:
        DataError: unreadable file, unknown extension, or an npz without a single / the named array.
    """
    p = Path(path)
    ext = p.suffix.lower()
    try:
        if ext == ".npy":
            arr = np.load(p, allow_pickle=False)
        elif ext == ".npz":
            with np.load(p, allow_pickle=False) as z:
                keys = list(z.keys())
                key = npz_key if npz_key is not None else (keys[0] if len(keys) == 1 else None)
                if key is None or key not in keys:
                    want = f"the array {npz_key!r}" if npz_key is not None else "exactly one array (or set npz_key)"
                    raise DataError(f"{p}: expected {want}; the file holds {keys}")
                arr = z[key]
        elif ext in (".tif", ".tiff"):
            arr = _tifffile().imread(p)
        elif ext in CHANNEL_IMAGE_EXTENSIONS:
            from PIL import Image

            with Image.open(p) as im:
                arr = np.asarray(im)
        else:
            raise DataError(f"{p}: unknown file type {ext!r}; expected one of {', '.join(STACK_EXTENSIONS)}")
    except DataError:
        raise
    except Exception as err:  # any decode failure, reported with its type and text
        raise DataError(f"cannot read {p}: {type(err).__name__}: {err}") from err
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise DataError(f"{p}: expected real numbers, found dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def to_chw(arr: np.ndarray, names: Sequence[str], *, layout: Layout = "auto", path: str | Path = "") -> np.ndarray:
    """A stack as C×H×W with C = len(names) (the channels stored in the file, in order).

    `layout`: "chw" (channels first, e.g. multi-page TIFF), "hwc" (channels last) or "auto"
    (channels first when the first axis has C entries, else channels last when the last one
    has; a 2-D array is one channel).

    Raises:
        DataError: the array does not hold C channels (naming the file, the shape and the names).
    """
    c = len(names)
    if arr.ndim == 2:
        arr = arr[None]
    chw_ok = arr.ndim == 3 and arr.shape[0] == c
    hwc_ok = arr.ndim == 3 and arr.shape[-1] == c
    if layout == "chw" and chw_ok or layout == "auto" and chw_ok:
        return arr
    if layout in ("hwc", "auto") and hwc_ok:
        return np.ascontiguousarray(np.moveaxis(arr, -1, 0))
    where = {"auto": "on the first or last axis", "chw": "on the first axis", "hwc": "on the last axis"}[layout]
    raise DataError(
        f"{path}: expected a stack of {c} channels {list(names)} {where}, found an array of shape {arr.shape}"
    )


def read_channel_image(path: str | Path, channel: str) -> np.ndarray:
    """One channel stored as its own 2-D image file (png / tif / ...) -> H×W float32.

    Raises:
        DataError: unreadable, or not a single-channel 2-D image (naming the file and the channel).
    """
    try:
        arr = read_array(path)
    except DataError as err:
        raise DataError(f"channel {channel!r}: {err}") from err
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and np.all(arr[..., :3] == arr[..., :1]):
        arr = arr[..., 0]  # gray saved as RGB(A)
    if arr.ndim != 2:
        raise DataError(f"{path}: channel {channel!r} must be a single-channel 2-D image, found shape {arr.shape}")
    return arr


def write_stack(path: str | Path, stack: np.ndarray, *, npz_key: str = "image") -> Path:
    """Write a C×H×W stack as .npy, .npz (under `npz_key`) or multi-page .tif(f) (one page per channel)."""
    from anymae.core.io import atomic_path

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ext = p.suffix.lower()
    with atomic_path(p) as tmp:
        if ext == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, stack)
        elif ext == ".npz":
            with open(tmp, "wb") as f:
                np.savez(f, **{npz_key: stack})
        elif ext in (".tif", ".tiff"):
            _tifffile().imwrite(tmp, stack)
        else:
            raise ValueError(f"write_stack: unknown extension {ext!r}; expected one of {', '.join(STACK_EXTENSIONS)}")
    return p
