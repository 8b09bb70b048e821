"""Image files on disk as a dataset: folder layouts, RGB loading, clear errors, counted skips.

`ImageFiles` reads a torchvision-ImageFolder tree (one sub-folder per class) or a flat,
unlabeled folder, loads each file with PIL as 8-bit RGB (see `load_rgb` for how other modes are
converted), and either raises a `DataError` naming an unreadable file or, with
``on_error="skip"``, replaces it by the next readable sample and counts the skip in a counter
shared by DataLoader worker processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from anymae.datasets.cache import DecodeCache
from anymae.datasets.contract import SampleDataset
from anymae.datasets.scan import display_name, scan_folder
from anymae.datasets.skips import CountsSkips, COMPRESSED_EXPANSION, DataError, Skips, check_declared_size, check_file, reason

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
LAYOUTS = ("auto", "classes", "flat")
ON_ERROR = ("raise", "skip")


_BITS_PER_BAND: dict[str, int] = {"1": 1, "I": 32, "F": 32, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16}


def check_image_size(im: Image.Image, path: str | Path) -> None:
    """Refuse an opened (not yet decoded) image whose declared size the file cannot hold.

    Raw TIFF and BMP data must fit in the file; compressed formats may expand at most
    `COMPRESSED_EXPANSION` times (PIL's own pixel-count limit also applies).

    Raises:
        DataError: naming the file, the declared size and the file's.
    """
    w, h = im.size
    bands = len(im.getbands())
    declared = (w * h * bands * _BITS_PER_BAND.get(im.mode, 8) + 7) // 8
    raw = (im.format == "TIFF" and im.info.get("compression") == "raw") or (
        im.format == "BMP" and im.info.get("compression", 0) == 0
    )
    check_declared_size(path, declared, what=f"a {w}×{h} {im.mode} image",
                        expansion=1.0 if raw else COMPRESSED_EXPANSION)


def _to_rgb(im: Image.Image, path: str | Path) -> Image.Image:
    """Convert a loaded PIL image of any mode to 8-bit RGB (rules in `load_rgb`)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16"):
        a = np.asarray(im).astype(np.uint16) >> 8  # H×W, 16-bit -> top 8 bits
        return Image.fromarray(a.astype(np.uint8)).convert("RGB")
    if mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)  # H×W
        bad = int((~np.isfinite(a)).sum())
        if bad:
            raise DataError(f"image {display_name(path)}: {bad} of its {a.size} pixels are NaN or Inf; a float "
                            "image must be finite")
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.round(a).astype(np.uint8)).convert("RGB")
    if "A" in mode or "a" in mode or "transparency" in im.info:
        rgba = im.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return im.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Decode one image file fully and return it as an 8-bit RGB PIL image.

    Conversion rules:
      * the EXIF orientation tag is applied (the picture as a viewer shows it);
      * grayscale / palette / CMYK / YCbCr -> RGB by PIL's ``convert``;
      * images with alpha (RGBA, LA, PA, or a transparency key) are composited onto black, so
        fully transparent pixels are black whatever colour they store;
      * 16-bit grayscale (``I;16*``, e.g. 16-bit PNG/TIFF) keeps its top 8 bits (value >> 8),
        the same reduction PIL applies to 16-bit-per-channel RGB TIFFs;
      * 32-bit int / float images (``I``, ``F``) have no fixed range and are stretched
        min..max -> 0..255 per image (a constant image becomes black); a float image with NaN
        or Inf pixels is refused;
      * multi-frame files (GIF, multi-page TIFF) give their first frame.

    The declared size is checked before decoding (`check_image_size`). Truncated files raise
    unless the caller set PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES``.

    Raises:
        DataError: naming the file: missing, not an image, truncated, a declared size the file
            cannot hold, non-finite float pixels, or otherwise undecodable.
    """
    check_file(path, "image")
    try:
        with Image.open(path) as im:
            check_image_size(im, path)
            im.load()
            return _to_rgb(ImageOps.exif_transpose(im), path)
    except DataError:
        raise
    except Exception as err:  # any decode failure, reported with its type and text
        raise DataError(f"cannot read image {display_name(path)}: {reason(err)}") from err


def _normalize_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(extensions, str) or len(extensions) == 0:
        raise ValueError(f"extensions must be a non-empty sequence such as ('.jpg', '.png'), got {extensions!r}")
    return tuple(sorted({e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}))


class ImageFiles(CountsSkips, Dataset, SampleDataset):
    """Images in a folder tree; items are ``(transform(rgb_image), label)``.

    Layouts:
      * ``"classes"``: torchvision-ImageFolder layout, one first-level sub-folder per class
        (searched recursively), classes sorted by name, label = class index.
      * ``"flat"``: an unlabeled folder searched recursively; label -1, ``classes == []``.
      * ``"auto"``: ``"classes"`` when every image lives in a first-level sub-folder and at
        least two sub-folders hold images, else ``"flat"``.

    Files are sorted by relative path (class-major for ``"classes"``); names starting with
    ``.`` (hidden files, macOS ``._*`` resource forks) are ignored.

    Errors: ``on_error="raise"`` raises `DataError` for an unreadable file; ``on_error="skip"``
    returns the next readable one and counts the skip, across DataLoader workers (see
    `datasets.skips`).

    Args:
        root: the folder.
        transform: applied to the RGB PIL image; ``None`` returns the PIL image.
        layout: ``"auto"``, ``"classes"`` or ``"flat"``.
        on_error: ``"raise"`` or ``"skip"``.
        extensions: accepted file name endings (case-insensitive).

    Attributes:
        root: the folder as a Path.
        layout: the resolved layout (``"classes"`` or ``"flat"``).
        classes: class names, index = label (empty when flat).
        class_to_idx: class name -> label.
        samples: list of (path, label), in index order.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        layout: str = "auto",
        on_error: str = "raise",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.root = Path(root)
        self.transform = transform
        self.on_error = on_error
        self.extensions = _normalize_extensions(extensions)
        self.classes, self.samples = scan_folder(self.root, layout, self.extensions, what="image")
        self.layout = "classes" if self.classes else "flat"
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self._skips = Skips(len(self.samples), "image file", f"ImageFiles({display_name(self.root)})", on_error)
        self.decode_cache = DecodeCache(self._decode, len(self.samples), f"ImageFiles({display_name(self.root)})")

    def __len__(self) -> int:
        return len(self.samples)

    @property  # type: ignore[override]
    def labels(self) -> list[int]:
        """The items' labels in index order (-1 when flat), without reading the images."""
        return [label for _, label in self.samples]

    def item_name(self, index: int) -> str:
        """Item `index`'s name in the skip report."""
        return display_name(self.samples[index][0].relative_to(self.root).as_posix())

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self._skips.get(index, self._load)
        return (image if self.transform is None else self.transform(image)), label

    def _load(self, j: int) -> tuple[Image.Image, int]:
        return self.decode_cache(j), self.samples[j][1]

    def _decode(self, j: int) -> Image.Image:
        """The decoded file of item j (deterministic: what `run.cache` keeps, see `datasets.cache`)."""
        return load_rgb(self.samples[j][0])


