"""Reading and writing multi-channel stacks: multi-page TIFF, npy / npz, one image per channel.

Every reader returns float32 numpy arrays; every error names the file (and the channel) and says
what was expected. Untrusted files are checked before anything is allocated: a .npy header's
shape against the file size (`load_npy`), an .npz member against its stored bytes, a TIFF's
series against the file size (raw) or `COMPRESSED_EXPANSION` times it (compressed); object and
string arrays are refused (never unpickled); values must be finite (`check_finite`). tifffile
(the `multichannel` extra) is imported on use.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Literal

import numpy as np

from anymae.datasets.image.files import check_image_size
from anymae.datasets.scan import display_name
from anymae.datasets.skips import COMPRESSED_EXPANSION, DataError, check_declared_size, check_file, reason
from anymae.extras import require

STACK_EXTENSIONS: tuple[str, ...] = (".npy", ".npz", ".tif", ".tiff")
CHANNEL_IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".npy")
Layout = Literal["auto", "chw", "hwc"]


def _tifffile():
    return require("tifffile", "multichannel", purpose="reading TIFF stacks")


def _npy_header(f: IO[bytes], path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of the .npy stream `f`; refuses objects and non-numbers."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise DataError(f"{display_name(path)}: .npy format version {version} is not supported (1.0 or 2.0)")
    if dtype.hasobject or dtype.kind not in "iuf":
        never = " (object arrays are never unpickled)" if dtype.hasobject else ""
        raise DataError(f"{display_name(path)}: expected an array of real numbers, found dtype {dtype}{never}")
    return tuple(shape), dtype, f.tell()


def load_npy(path: str | Path, *, mmap: bool = False) -> np.ndarray:
    """A .npy array whose header was checked first: real numbers, and no more bytes than the file holds.

    Args:
        path: the file.
        mmap: map the data read-only instead of loading it (memory bounded by what is indexed).

    Raises:
        DataError: naming the file: unreadable, not .npy, objects / strings, or a shape the file cannot hold.
    """
    p = Path(path)
    check_file(p, "array file")
    try:
        with open(p, "rb") as f:
            shape, dtype, offset = _npy_header(f, p)
        check_declared_size(p, offset + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize,
                            what=f"an array of shape {shape} {dtype}")
        use_mmap = mmap and int(np.prod(shape)) > 0
        return np.load(p, mmap_mode="r" if use_mmap else None, allow_pickle=False)
    except DataError:
        raise
    except Exception as err:  # any decode failure, reported with its type and text
        raise DataError(f"cannot parse .npy file {display_name(p)}: {reason(err)}") from err


def _load_npz(p: Path, npz_key: str | None) -> np.ndarray:
    """The named (or only) array of an .npz, after checking its header against the member's bytes."""
    with zipfile.ZipFile(p) as zf:
        keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        key = npz_key if npz_key is not None else (keys[0] if len(keys) == 1 else None)
        if key is None or key not in keys:
            want = f"the array {npz_key!r}" if npz_key is not None else "exactly one array (or set npz_key)"
            raise DataError(f"{display_name(p)}: expected {want}; the file holds {keys}")
        info = zf.getinfo(key + ".npy")
        check_declared_size(p, info.compress_size, what=f"an .npz member {key!r}")
        if info.compress_type != zipfile.ZIP_STORED:
            check_declared_size(p, info.file_size, what=f"an .npz member {key!r} of {info.file_size:,} bytes",
                                stored=info.compress_size, expansion=COMPRESSED_EXPANSION)
        with zf.open(info) as f:
            shape, dtype, offset = _npy_header(f, p)
        check_declared_size(p, offset + int(np.prod(shape, dtype=np.float64)) * dtype.itemsize,
                            what=f"an array {key!r} of shape {shape} {dtype}", stored=info.file_size)
    with np.load(p, allow_pickle=False) as z:
        return z[key]


def _load_tiff(p: Path) -> np.ndarray:
    """The first series of a TIFF, after checking its shape against the file size."""
    with _tifffile().TiffFile(p) as tf:
        if not tf.series:
            raise DataError(f"{display_name(p)}: the TIFF holds no image")
        series = tf.series[0]
        raw = int(series.keyframe.compression) == 1
        check_declared_size(p, int(np.prod(series.shape, dtype=np.float64)) * series.dtype.itemsize,
                            what=f"{len(series.pages)} page(s), an image of shape {series.shape} {series.dtype}",
                            expansion=1.0 if raw else COMPRESSED_EXPANSION)
        return series.asarray()


def read_array(path: str | Path, *, npz_key: str | None = None) -> np.ndarray:
    """The array stored in a .npy / .npz / .tif(f) file (or a channel image), as float32 (any shape).

    Raises:
        DataError: unreadable file, unknown extension, an npz without a single / the named array,
            non-numbers, or declared sizes the file cannot hold (naming the file).
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".npy":
        arr = load_npy(p)
    else:
        check_file(p, "file")
        try:
            if ext == ".npz":
                arr = _load_npz(p, npz_key)
            elif ext in (".tif", ".tiff"):
                arr = _load_tiff(p)
            elif ext in CHANNEL_IMAGE_EXTENSIONS:
                from PIL import Image

                with Image.open(p) as im:
                    check_image_size(im, p)
                    arr = np.asarray(im)
            else:
                raise DataError(f"{display_name(p)}: unknown file type {ext!r}; expected one of "
                                f"{', '.join(STACK_EXTENSIONS)}")
        except DataError:
            raise
        except Exception as err:  # any decode failure, reported with its type and text
            raise DataError(f"cannot read {display_name(p)}: {reason(err)}") from err
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise DataError(f"{display_name(p)}: expected real numbers, found dtype {arr.dtype}")
    with np.errstate(over="ignore"):  # values beyond float32 become Inf, refused by `check_finite`
        return arr.astype(np.float32, copy=False)


def check_finite(stack: np.ndarray, names: Sequence[str], path: str | Path) -> np.ndarray:
    """`stack` (C×H×W, channels `names`) when every value is finite, else `DataError` naming the
    file, the first bad channel, how many values and where the first one is."""
    finite = np.isfinite(stack)  # C×H×W
    if finite.all():
        return stack
    bad = ~finite
    c = int(np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))[0])
    row, col = (int(v) for v in np.argwhere(bad[c])[0])
    raise DataError(
        f"{display_name(path)}: channel {names[c]!r} has {int(bad[c].sum())} NaN or Inf value(s) (first at row "
        f"{row}, column {col}; values beyond float32's range count as Inf); every value must be finite"
    )


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
    if layout in ("chw", "auto") and chw_ok:
        out = arr
    elif layout in ("hwc", "auto") and hwc_ok:
        out = np.ascontiguousarray(np.moveaxis(arr, -1, 0))
    else:
        where = {"auto": "on the first or last axis", "chw": "on the first axis", "hwc": "on the last axis"}[layout]
        raise DataError(f"{display_name(path)}: expected a stack of {c} channels {list(names)} {where}, found an "
                        f"array of shape {arr.shape}")
    if out.shape[1] == 0 or out.shape[2] == 0:
        raise DataError(f"{display_name(path)}: the stack is {out.shape[1]}×{out.shape[2]} pixels; expected at "
                        "least 1×1")
    return out


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
    if arr.ndim != 2 or 0 in arr.shape:
        raise DataError(f"{display_name(path)}: channel {channel!r} must be a single-channel 2-D image of at least "
                        f"1×1 pixels, found shape {arr.shape}")
    return check_finite(arr[None], [channel], path)[0]


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
