"""Real photographs for demos, with no download: crops of photos that installed packages ship.

Ten natural colour photos shipped inside the wheels of scikit-image (pinned for the demo at
scikit-image==0.26.0), scikit-learn and matplotlib are read in place from the installed package
folders (found with ``importlib.util.find_spec``; nothing is imported, fetched or written). A
crop's label is the photo it comes from.

Generalisation, not memory: each photo is cut into a grid of 2 rows × 3 columns of cells;
the top-right and bottom-left cells (`TEST_CELLS`, a third of the area) are the test region, the
other four the train region. Every crop lies entirely inside one cell of its split, so a test
crop shares no pixel with any train (or unlabeled pretraining) crop, while both splits still see
every row and column of the photo. Every crop records its box and cell, so this can be checked.

Crops: each photo (after its region of interest, see `Photo.roi`) is resized so its short side
is ``8 * size`` pixels; a crop is a square whose side is a uniform fraction ``scale`` of that
short side (capped to fit its cell), placed uniformly inside a uniformly chosen cell of its
split, resized to ``size`` × ``size`` (bicubic) and, for train crops, flipped horizontally with
probability 0.5. Everything follows from ``seed`` (one numpy stream per photo and split).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset
from anymae.datasets.image.transforms import IMAGENET_MEAN, IMAGENET_STD

_PIP_NAMES = {
    "skimage": "scikit-image==0.26.0",
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
}
_SPLIT_TRAIN, _SPLIT_TEST, _SPLIT_UNLABELED = 0, 1, 2
GRID: tuple[int, int] = (2, 3)  # rows, columns of cells per photo
TEST_CELLS: tuple[tuple[int, int], ...] = ((0, 2), (1, 0))  # (row, column): top-right, bottom-left


@dataclass(frozen=True)
class Photo:
    """A photo shipped inside an installed package.

    Attributes:
        name: class name.
        package: top-level import name of the package that ships the file.
        relpath: the file's path inside that package folder.
        licence: licence and author as the package documents them.
        roi: (left, top, right, bottom) fractions of the photo that the demo uses.
    """

    name: str
    package: str
    relpath: str
    licence: str
    roi: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)


PHOTOS: tuple[Photo, ...] = (
    Photo("astronaut", "skimage", "data/astronaut.png", "public domain (NASA, Eileen Collins)"),
    Photo("cat", "skimage", "data/chelsea.png", "CC0 (Stefan van der Walt)"),
    Photo("coffee", "skimage", "data/coffee.png", "CC0 (Rachel Michetti)"),
    Photo("galaxies", "skimage", "data/hubble_deep_field.jpg", "public domain (NASA)"),
    Photo("tissue", "skimage", "data/ihc.png", "no known copyright restrictions (CMMI)"),
    # The fundus photo is a disc on black: use the square inside the disc.
    Photo("retina", "skimage", "data/retina.jpg", "CC0 (Mikael Häggström)", (0.18, 0.18, 0.82, 0.82)),
    Photo("rocket", "skimage", "data/rocket.jpg", "public domain (SpaceX)"),
    Photo("palace", "sklearn", "datasets/images/china.jpg", "CC BY 2.0 (danielbuechele)"),
    Photo("dahlia", "sklearn", "datasets/images/flower.jpg", "CC BY 2.0 (vultilion)"),
    Photo(
        "officer",
        "matplotlib",
        "mpl-data/sample_data/grace_hopper.jpg",
        "public domain (U.S. Navy photo of Grace Hopper)",
    ),
)


def photo_path(photo: Photo) -> Path:
    """The photo's file inside its installed package (the package is located, not imported).

    Raises:
        ModuleNotFoundError: the package is not installed (the message says what to install).
        FileNotFoundError: the package is installed but does not ship the file.
    """
    wanted = _PIP_NAMES.get(photo.package, photo.package)
    spec = importlib.util.find_spec(photo.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"demo photo {photo.name!r} ships with the package {photo.package!r}, which is not "
            f"installed; install {wanted}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / photo.relpath
    if not path.is_file():
        raise FileNotFoundError(
            f"demo photo {photo.name!r} is not at {path}; this version of {photo.package!r} "
            f"does not ship it (the demo expects {wanted})"
        )
    return path


@functools.lru_cache(maxsize=32)
def _working_photo(index: int, short_side: int) -> Image.Image:
    """Photo ``index``, cut to its roi and resized so its short side is ``short_side``."""
    photo = PHOTOS[index]
    with Image.open(photo_path(photo)) as raw:
        im = raw.convert("RGB")
    w, h = im.size
    x0, y0, x1, y1 = photo.roi
    im = im.crop((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)))
    factor = short_side / min(im.size)
    new = (max(short_side, round(im.width * factor)), max(short_side, round(im.height * factor)))
    return im.resize(new, Image.BICUBIC)


class PhotoCrops(Dataset, SampleDataset):
    """Crops of the demo photos in memory; items are ``(3×size×size float, label)``.

    Coordinates are pixels of a photo's working image (its roi resized to short side
    ``8 * size``); boxes are half-open (left, top, right, bottom).

    Attributes:
        images: float32 n×3×size×size, normalized with ImageNet mean/std.
        labels: LongTensor[n]: the source photo's index, or -1 for unlabeled crops.
        photo: LongTensor[n]: the source photo's index (always set).
        boxes: LongTensor n×4: each crop's box.
        cells: LongTensor[n]: the grid cell (row * columns + column) each crop lies in.
        regions: LongTensor len(PHOTOS)×K×4: the boxes of the K cells this split draws from,
            per photo.
        classes: photo names, index = label (empty for unlabeled crops).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        photo: Tensor,
        boxes: Tensor,
        cells: Tensor,
        regions: Tensor,
        classes: list[str],
    ) -> None:
        self.images, self.labels, self.photo = images, labels, photo
        self.boxes, self.cells, self.regions, self.classes = boxes, cells, regions, classes

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])


def _check_args(size: int, counts: dict[str, int], scale: tuple[float, float]) -> None:
    for name, value in {"size": size, **counts}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale!r}")


def split_cells(width: int, height: int, test: bool) -> list[tuple[int, tuple[int, int, int, int]]]:
    """The cells of one split of a width×height working image: [(cell index, (l, t, r, b))]."""
    rows, cols = GRID
    xs = [round(c * width / cols) for c in range(cols + 1)]
    ys = [round(r * height / rows) for r in range(rows + 1)]
    return [
        (r * cols + c, (xs[c], ys[r], xs[c + 1], ys[r + 1]))
        for r in range(rows)
        for c in range(cols)
        if ((r, c) in TEST_CELLS) == test
    ]


def _crops(size: int, n_per_photo: int, seed: int, split: int, scale: tuple[float, float]) -> PhotoCrops:
    """Draw ``n_per_photo`` crops from every photo's train (split 0, 2) or test (1) cells."""
    short = 8 * size
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)  # 3×1×1
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)  # 3×1×1
    images, labels, boxes, cells, regions = [], [], [], [], []
    for p in range(len(PHOTOS)):
        im = _working_photo(p, short)
        own = split_cells(im.width, im.height, test=split == _SPLIT_TEST)
        regions.append([box for _, box in own])
        rng = np.random.default_rng([seed, p, split])
        for _ in range(n_per_photo):
            cell, (rl, rt, rr, rb) = own[int(rng.integers(len(own)))]
            side = round(rng.uniform(*scale) * short)
            side = int(min(max(side, 1), rr - rl, rb - rt))
            left = int(rng.integers(rl, rr - side + 1))
            top = int(rng.integers(rt, rb - side + 1))
            crop = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
            if split == _SPLIT_TRAIN and rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            hwc = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0)  # size×size×3
            images.append((hwc.permute(2, 0, 1) - mean) / std)  # 3×size×size
            boxes.append((left, top, left + side, top + side))
            cells.append(cell)
            labels.append(p)
    photo = torch.tensor(labels, dtype=torch.long)
    unlabeled = split == _SPLIT_UNLABELED
    return PhotoCrops(
        images=torch.stack(images),  # n×3×size×size
        labels=torch.full_like(photo, -1) if unlabeled else photo.clone(),
        photo=photo,
        boxes=torch.tensor(boxes, dtype=torch.long),
        cells=torch.tensor(cells, dtype=torch.long),
        regions=torch.tensor(regions, dtype=torch.long),
        classes=[] if unlabeled else [ph.name for ph in PHOTOS],
    )


def demo_photo_crops(
    size: int = 32,
    n_train_per_photo: int = 64,
    n_test_per_photo: int = 16,
    seed: int = 0,
    *,
    scale: tuple[float, float] = (0.1, 0.3),
) -> tuple[PhotoCrops, PhotoCrops, list[str]]:
    """Labeled crops for a probe demo: train crops from train cells, test crops from test cells.

    Args:
        size: crop side in pixels after resizing.
        n_train_per_photo: train crops per photo (randomly flipped).
        n_test_per_photo: test crops per photo (never flipped).
        seed: all randomness follows from it.
        scale: crop side as a fraction of the photo's short side (capped to fit the cell).

    Returns:
        (train, test, classes): train has ``n_train_per_photo * len(classes)`` items, test
        ``n_test_per_photo * len(classes)``; items are (3×size×size float, photo index),
        grouped by photo.
    """
    counts = {"n_train_per_photo": n_train_per_photo, "n_test_per_photo": n_test_per_photo}
    _check_args(size, counts, scale)
    train = _crops(size, n_train_per_photo, seed, _SPLIT_TRAIN, scale)
    test = _crops(size, n_test_per_photo, seed, _SPLIT_TEST, scale)
    return train, test, list(train.classes)


def demo_unlabeled(
    size: int = 32,
    n_per_photo: int = 256,
    seed: int = 0,
    *,
    scale: tuple[float, float] = (0.1, 0.3),
) -> PhotoCrops:
    """Unlabeled crops for pretraining, from the train cells only.

    Same arguments as `demo_photo_crops`; crops are not flipped (leave that to the pipeline)
    and come from their own random stream, so they differ from the labeled train crops.
    Items are (3×size×size float, -1); ``.photo`` still records each crop's source photo.
    """
    _check_args(size, {"n_per_photo": n_per_photo}, scale)
    return _crops(size, n_per_photo, seed, _SPLIT_UNLABELED, scale)
