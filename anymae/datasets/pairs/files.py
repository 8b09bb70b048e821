"""Image pairs on disk as a two-view dataset (CroCo's pretraining data).

Layout: one folder (searched recursively) of pairs named `<name>_1.<ext>` and `<name>_2.<ext>`
(CroCo's own listing: `<name>_1.jpg` / `<name>_2.jpg`, Habitat renders `_1.jpeg` / `_2.jpeg`),
any image extension, the two files of a pair side by side. A file whose partner is missing, or
whose name ends neither in `_1` nor in `_2`, is an error naming it.

Transforms, CroCo's `crop224+acolor` (datasets/transforms.py): each view gets its OWN random crop
of `img_size` (`RandomCropPair`: "the crop will be intentionally different for the two images";
`same_crop=True` crops both at one place), no resize, then an asymmetric colour jitter (every
view draws its own brightness, contrast and saturation factor in [0.6, 1.4] and order; no hue:
`ColorJitterPair(assymetric_prob=1.0)`), ToTensor and ImageNet normalization. Without
augmentation both views are centre-cropped. An image smaller than the crop is an error naming it.
Random draws use torch's generator, which `SeededSamples` seeds per sample.

Items are `((view1, view2), -1)`; `collate_x` returns `Views((B×3×S×S, B×3×S×S))`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import ColorJitter, Normalize, RandomCrop, ToTensor
from torchvision.transforms import functional as TF

from anymae.core.skeleton.steps import Views
from anymae.datasets.contract import SampleDataset
from anymae.datasets.image.files import IMAGE_EXTENSIONS, load_rgb
from anymae.datasets.scan import display_name, extension_filter, walk_files
from anymae.datasets.skips import CountsSkips, DataError, Skips

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
JITTER = (0.6, 1.4)  # CroCo's acolor: brightness, contrast, saturation factors; hue 0


def find_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """[(`<name>_1.<ext>`, `<name>_2.<ext>`)] under `root`, sorted by path.

    Raises:
        ValueError: no images, or a file that is not part of a complete pair (named).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image pairs root {display_name(root)} is not a folder")
    files = sorted(walk_files(root, extension_filter(IMAGE_EXTENSIONS)).files)
    if not files:
        raise ValueError(f"no image files under {display_name(root)} (expected pairs <name>_1.png / <name>_2.png)")
    halves: dict[tuple[Path, str], dict[str, Path]] = {}
    for path in files:
        stem = path.stem
        if not stem.endswith(("_1", "_2")):
            raise ValueError(f"image {display_name(path)} is not part of a pair: pairs are named <name>_1.<ext> and "
                             "<name>_2.<ext>")
        halves.setdefault((path.parent, stem[:-2]), {})[stem[-1]] = path
    pairs = []
    for (folder, name), found in sorted(halves.items()):
        if set(found) != {"1", "2"}:
            have = next(iter(found.values()))
            missing = "2" if "1" in found else "1"
            raise ValueError(f"image {display_name(have)} has no partner {name}_{missing}.<ext> in "
                             f"{display_name(folder)}: every pair needs both views")
        pairs.append((found["1"], found["2"]))
    return pairs


def _crop_box(image: Image.Image, size: int, path: Path, train: bool) -> tuple[int, int, int, int]:
    """(top, left, size, size) of a random (train) or centre crop; a DataError naming `path` if too small."""
    w, h = image.size
    if w < size or h < size:
        raise DataError(f"image {display_name(path)} is {w}×{h}, smaller than the {size}×{size} crop (data.img_size)")
    if train:
        return RandomCrop.get_params(image, (size, size))  # type: ignore[return-value]
    return (h - size) // 2, (w - size) // 2, size, size


class ImagePairs(CountsSkips, Dataset, SampleDataset):
    """Image pairs as two views (module doc).

    Args:
        root: the folder of pairs.
        img_size: the crop size (no resize, as CroCo).
        train: random crops and colour jitter (pretraining) or centre crops.
        same_crop: crop both views at the same place (CroCo crops them independently).
        color_jitter: CroCo's asymmetric colour jitter when training.
        on_error: "raise" or "skip" (an unreadable pair is replaced by the next readable one).
    """

    def __init__(
        self, root: str | Path, img_size: int, *, train: bool = True, same_crop: bool = False,
        color_jitter: bool = True, on_error: str = "raise",
    ) -> None:
        self.root, self.img_size, self.train = Path(root), int(img_size), train
        self.same_crop, self.color_jitter = same_crop, color_jitter
        self.pairs = find_pairs(self.root)
        self._skips = Skips(len(self.pairs), "image pair", f"ImagePairs({display_name(self.root)})", on_error)
        self._jitter = ColorJitter(brightness=JITTER, contrast=JITTER, saturation=JITTER, hue=0.0)
        self._to_tensor, self._normalize = ToTensor(), Normalize(IMAGENET_MEAN, IMAGENET_STD)

    def __len__(self) -> int:
        return len(self.pairs)

    @property  # type: ignore[override]
    def labels(self) -> list[int]:
        return [-1] * len(self.pairs)

    def item_name(self, index: int) -> str:
        """Item `index`'s name in the skip report."""
        return display_name(self.pairs[index][0])

    def __getitem__(self, index: int) -> tuple[tuple[Tensor, Tensor], int]:
        return self._skips.get(index, self._load), -1

    def _load(self, j: int) -> tuple[Tensor, Tensor]:
        paths = self.pairs[j]
        images = [load_rgb(p) for p in paths]
        box = _crop_box(images[0], self.img_size, paths[0], self.train)
        views = []
        for k, (image, path) in enumerate(zip(images, paths)):
            if k == 1 and not self.same_crop:
                box = _crop_box(image, self.img_size, path, self.train)  # CroCo: each view its own crop
            elif k == 1:
                _crop_box(image, self.img_size, path, False)  # size check only
            image = TF.crop(image, *box)
            if self.train and self.color_jitter:
                image = self._jitter(image)  # own factors per view (asymmetric)
            views.append(self._normalize(self._to_tensor(image)))
        return views[0], views[1]

    def collate_x(self, xs: list[Any]) -> Views:
        """[(view1 3×S×S, view2 3×S×S)] -> Views((B×3×S×S, B×3×S×S))."""
        return Views((torch.stack([a for a, _ in xs]), torch.stack([b for _, b in xs])))


def write_pair_folder(root: str | Path, count: int, *, size: int = 40, shift: int = 6, seed: int = 0) -> Path:
    """`count` synthetic pairs `pair{i}_1.png` / `pair{i}_2.png`: two overlapping crops (offset by
    `shift` pixels) of one smooth random picture, like two views of one scene; returns `root`."""
    import numpy as np

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        base = rng.uniform(0, 255, (size // 4 + 2, size // 4 + 2, 3)).astype(np.uint8)
        big = np.asarray(Image.fromarray(base).resize((size + shift, size + shift), Image.BILINEAR))
        Image.fromarray(big[:size, :size]).save(root / f"pair{i:03d}_1.png")
        Image.fromarray(big[shift:, shift:]).save(root / f"pair{i:03d}_2.png")
    return root


