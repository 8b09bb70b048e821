"""Image files on disk as a dataset: folder layouts, RGB loading, clear errors, counted skips.

`ImageFiles` reads a torchvision-ImageFolder tree (one sub-folder per class) or a flat,
unlabeled folder, loads each file with PIL as 8-bit RGB (see `load_rgb` for how other modes are
converted), and either raises a `DataError` naming an unreadable file or, with
``on_error="skip"``, replaces it by the next readable sample and counts the skip in a counter
shared by DataLoader worker processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset
from anymae.datasets.skips import DataError, Skips

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
LAYOUTS = ("auto", "classes", "flat")
ON_ERROR = ("raise", "skip")


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert a loaded PIL image of any mode to 8-bit RGB (rules in `load_rgb`)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16"):
        a = np.asarray(im).astype(np.uint16) >> 8  # H×W, 16-bit -> top 8 bits
        return Image.fromarray(a.astype(np.uint8)).convert("RGB")
    if mode in ("I", "F"):
        a = np.nan_to_num(np.asarray(im, dtype=np.float64))  # H×W
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
        min..max -> 0..255 per image (a constant image becomes black);
      * multi-frame files (GIF, multi-page TIFF) give their first frame.

    Truncated files raise unless the caller set PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES``.

    Raises:
        DataError: the file is missing, not an image, truncated or otherwise undecodable.
    """
    try:
        with Image.open(path) as im:
            im.load()
            return _to_rgb(ImageOps.exif_transpose(im))
    except Exception as err:  # any decode failure, reported with its type and text
        raise DataError(f"cannot read image {path}: {type(err).__name__}: {err}") from err


def _normalize_extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(extensions, str) or len(extensions) == 0:
        raise ValueError(f"extensions must be a non-empty sequence such as ('.jpg', '.png'), got {extensions!r}")
    return tuple(sorted({e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}))


def _find_images(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    """All image files under ``folder`` (recursive, following links, hidden names skipped),
    sorted by their path relative to ``folder``."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _scan(root: Path, layout: str, extensions: tuple[str, ...]) -> tuple[list[str], list[tuple[Path, int]]]:
    """Resolve the layout and list (classes, samples) for ``root``."""
    if not root.exists():
        raise ValueError(f"image root {root} does not exist")
    if root.is_file():  # a single image: a flat, unlabeled dataset of one
        if root.suffix.lower() not in extensions or layout == "classes":
            raise ValueError(f"image root {root} is a file; expected a folder or one image ({', '.join(extensions)})")
        return [], [(root, -1)]
    files = _find_images(root, extensions)
    if not files:
        raise ValueError(
            f"no image files under {root} (searched recursively for extensions "
            f"{', '.join(extensions)}; hidden files and folders are ignored)"
        )
    rel = [f.relative_to(root).parts for f in files]
    at_top = [f for f, parts in zip(files, rel, strict=True) if len(parts) == 1]
    if layout == "auto":
        holders = {parts[0] for parts in rel if len(parts) > 1}
        layout = "classes" if not at_top and len(holders) >= 2 else "flat"
    if layout == "flat":
        return [], [(f, -1) for f in files]

    if at_top:
        raise ValueError(
            f"layout='classes' expects every image of {root} inside a class sub-folder, but "
            f"{len(at_top)} lie directly in it (e.g. {at_top[0].name}); use layout='flat' or "
            "move them into class folders"
        )
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    by_class: dict[str, list[Path]] = {c: [] for c in classes}
    for f, parts in zip(files, rel, strict=True):
        by_class[parts[0]].append(f)
    empty = [c for c in classes if not by_class[c]]
    if empty:
        raise ValueError(
            f"class folder(s) {', '.join(str(root / c) for c in empty)} hold no image files "
            f"(extensions {', '.join(extensions)}); remove them or add images, so that class "
            "indices stay the same across splits"
        )
    samples = [(f, label) for label, c in enumerate(classes) for f in by_class[c]]
    return classes, samples


class ImageFiles(Dataset, SampleDataset):
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
        self.classes, self.samples = _scan(self.root, layout, self.extensions)
        self.layout = "classes" if self.classes else "flat"
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self._skips = Skips(len(self.samples), "image file", f"ImageFiles({self.root})", on_error)

    def __len__(self) -> int:
        return len(self.samples)

    @property  # type: ignore[override]
    def labels(self) -> list[int]:
        """The items' labels in index order (-1 when flat), without reading the images."""
        return [label for _, label in self.samples]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self._skips.get(index, self._load)
        return (image if self.transform is None else self.transform(image)), label

    def _load(self, j: int) -> tuple[Image.Image, int]:
        path, label = self.samples[j]
        return load_rgb(path), label

    def skipped(self) -> int:
        """How many distinct unreadable files were skipped so far, across all workers."""
        return self._skips.count()

    def skip_report(self) -> str:
        """One line for an end-of-run report: the skip count and the first skipped names."""
        return self._skips.report(lambda j: self.samples[j][0].relative_to(self.root).as_posix())
