"""Aligned images of several modalities (MultiMAE-style data): `data.source: paired_folder`.

Layout: `root/<modality>/<relative path>`, the same relative path (any image extension) in every
modality's folder, e.g. `root/rgb/kitchen/0001.jpg` + `root/depth/kitchen/0001.png`. The first
modality's folder is scanned like an image folder (a sub-folder per class, or flat: `layout`);
a sample whose file is missing in another modality's folder, or a file of another modality with
no partner in the first, is an error naming the file and the missing modality.

    data:
      source: paired_folder
      root: /data/taskonomy_pairs
      modalities: [rgb, depth]        # default: the model's (`modalities` of a MultiMAE preset)
      img_size: 224

Reading: a 3-channel modality through the image reader (`load_rgb`: 8-bit RGB), a 1-channel one as
grayscale (8-bit `/255`, 16-bit `/65535`, float kept). Values: `rgb` ImageNet-normalized; the
modalities in `standardize` (default depth) standardized per image robustly as MultiMAE does (mean
and variance of the 10–90 % trimmed values, `(x - μ) / sqrt(var + 1e-6)`); others in [0, 1].
Augmentation (pretraining): ONE RandomResizedCrop box (scale 0.2–1, ratio 3/4–4/3) and ONE
horizontal flip (p 0.5) for every modality of a sample (bicubic for RGB, bilinear for the
others); evaluation: short-side resize + centre crop. Items `({"rgb": 3×S×S, "depth": 1×S×S}, label)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as TF

from anymae.core.config import ConfigError
from anymae.datasets.contract import SampleDataset
from anymae.datasets.image.files import IMAGE_EXTENSIONS, load_rgb
from anymae.datasets.scan import display_name, extension_filter, scan_folder, walk_files
from anymae.datasets.skips import CountsSkips, DataError, Skips, check_file, reason
from anymae.datasets.sources import SOURCES

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def robust_standardize(x: Tensor, trim: float = 0.1, eps: float = 1e-6) -> Tensor:
    """C×H×W -> (x - μ) / sqrt(var + eps), μ and var over the values between the `trim` and
    `1 - trim` quantiles (MultiMAE's truncated depth standardization)."""
    flat = torch.sort(x.reshape(-1)).values  # (C·H·W)
    n = flat.numel()
    kept = flat[int(trim * n) : int((1 - trim) * n)]
    kept = kept if kept.numel() > 1 else flat
    return (x - kept.mean()) / torch.sqrt(kept.var() + eps)


def read_channel_image(path: Path) -> Tensor:
    """A single-channel image -> 1×H×W float in [0, 1] (8-bit /255, 16-bit /65535; float kept).

    Raises:
        DataError: naming the file: missing, undecodable, or non-finite.
    """
    check_file(path, "image")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                a = np.asarray(im, dtype=np.float32) / 65535.0
            elif im.mode in ("I", "F"):
                a = np.asarray(im, dtype=np.float32)
            else:
                a = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except Exception as err:
        raise DataError(f"cannot read image {display_name(path)}: {reason(err)}") from err
    if not np.isfinite(a).all():
        raise DataError(f"image {display_name(path)} holds NaN or infinite pixels")
    return torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(0)  # 1×H×W


def find_paired(root: Path, modalities: Sequence[str], layout: str) -> tuple[list[str], list[tuple[dict[str, Path], int]]]:
    """(classes, [({modality: file}, label)]) for `root/<modality>/<same relative path>`.

    Raises:
        DataError: a modality folder missing, or a file without its partner in some modality
            (naming the file and the missing modality).
    """
    for m in modalities:
        if not (root / m).is_dir():
            raise DataError(f"paired folder {display_name(root)} has no folder {m!r} (modalities: {list(modalities)})")
    first = modalities[0]
    try:
        classes, samples = scan_folder(root / first, layout, IMAGE_EXTENSIONS, what="image")  # type: ignore[arg-type]
    except ValueError as err:
        raise DataError(str(err)) from None
    index: dict[str, dict[str, Path]] = {}
    for m in modalities[1:]:
        files = walk_files(root / m, extension_filter(IMAGE_EXTENSIONS)).files
        index[m] = {str(f.relative_to(root / m).with_suffix("")): f for f in files}
    out = []
    for path, label in samples:
        key = str(path.relative_to(root / first).with_suffix(""))
        files = {first: path}
        for m in modalities[1:]:
            partner = index[m].pop(key, None)
            if partner is None:
                raise DataError(f"incomplete pair: {display_name(path)} has no {m!r} image (expected "
                                f"{display_name(root / m / key)}.<image extension>)")
            files[m] = partner
        out.append((files, label))
    for m, rest in index.items():
        if rest:
            orphan = sorted(rest.values())[0]
            raise DataError(f"incomplete pair: {display_name(orphan)} has no {first!r} image "
                            f"({len(rest)} {m!r} file(s) without partner)")
    return classes, out


class PairedImages(CountsSkips, Dataset, SampleDataset):
    """Aligned images per modality; items `({modality: C×S×S}, label)` (module doc).

    Args:
        samples: ({modality: file}, label) pairs (`find_paired`).
        channels: modality -> channel count (3: RGB reader, 1: grayscale reader).
        img_size: the output side S.
        train: a shared random resized crop + flip; else short-side resize + centre crop.
        scale: the crop's area range.
        standardize: modalities standardized per image (robustly).
        on_error: "raise" or "skip".
    """

    def __init__(
        self, samples: Sequence[tuple[dict[str, Path], int]], channels: dict[str, int], *, img_size: int = 224,
        train: bool = False, scale: tuple[float, float] = (0.2, 1.0), standardize: Sequence[str] = ("depth",),
        on_error: str = "raise", classes: Sequence[str] = (), root: str | Path = "",
    ) -> None:
        bad = {m: c for m, c in channels.items() if c not in (1, 3)}
        if bad:
            raise ValueError(f"paired images: channel counts must be 1 or 3, got {bad}")
        if not samples:
            raise ValueError(f"no paired images found{f' under {display_name(root)}' if root else ''}")
        self.samples, self.channels = list(samples), dict(channels)
        self.img_size, self.train, self.scale = int(img_size), bool(train), tuple(scale)
        self.standardize = tuple(standardize)
        self.classes = list(classes)
        self._skips = Skips(len(self.samples), "image pair", f"PairedImages({root})", on_error)

    def __len__(self) -> int:
        return len(self.samples)

    @property  # type: ignore[override]
    def labels(self) -> list[int]:
        return [int(label) for _, label in self.samples]

    def _read(self, m: str, path: Path) -> Tensor:
        """C×H×W float in [0, 1]."""
        if self.channels[m] == 3:
            return TF.to_tensor(load_rgb(path))  # 3×H×W
        return read_channel_image(path)  # 1×H×W

    def _load(self, index: int) -> tuple[dict[str, Tensor], int]:
        files, label = self.samples[index]
        images = {m: self._read(m, files[m]) for m in self.channels}
        sizes = {m: tuple(x.shape[-2:]) for m, x in images.items()}
        if len(set(sizes.values())) > 1:
            raise DataError(f"pair {display_name(files[next(iter(files))])}: the modalities' sizes differ {sizes}")
        s = self.img_size
        if self.train:  # one box and one flip for every modality
            top, left, h, w = RandomResizedCrop.get_params(next(iter(images.values())), list(self.scale), [3 / 4, 4 / 3])
            flip = bool(torch.rand(()) < 0.5)
        out = {}
        for m, x in images.items():
            mode = InterpolationMode.BICUBIC if self.channels[m] == 3 else InterpolationMode.BILINEAR
            if self.train:
                x = TF.resized_crop(x, top, left, h, w, [s, s], interpolation=mode, antialias=True)  # C×S×S
                x = TF.hflip(x) if flip else x
            else:
                x = TF.center_crop(TF.resize(x, s, interpolation=mode, antialias=True), [s, s])  # C×S×S
            if self.channels[m] == 3:
                x = TF.normalize(x.clamp(0, 1), IMAGENET_MEAN, IMAGENET_STD)
            elif m in self.standardize:
                x = robust_standardize(x)
            out[m] = x
        return out, label

    def item_name(self, index: int) -> str:
        """Item `index`'s name in the skip report."""
        return display_name(next(iter(self.samples[index][0].values())))

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], int]:
        return self._skips.get(index, self._load)


@dataclass
class PairedFolderSource:
    """Aligned images `root/<modality>/<same relative path>` (MultiMAE), a folder per class or flat."""

    root: str = ""
    modalities: list[str] | None = None  # default: the model's modalities, else the sub-folders of root
    channels: dict[str, int] = field(default_factory=dict)  # modality -> 1 or 3 (default: the model's; rgb 3, else 1)
    img_size: int | None = None
    layout: Literal["auto", "classes", "flat"] = "auto"
    scale: tuple[float, float] = (0.2, 1.0)
    standardize: list[str] = field(default_factory=lambda: ["depth"])
    on_error: Literal["raise", "skip"] = "raise"


@SOURCES.register("paired_folder", config=PairedFolderSource, modality="multi-image", files={"layout": "flat"})
def _paired_folder(cfg: PairedFolderSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    root = Path(cfg.root)
    if not cfg.root or not root.is_dir():
        raise ConfigError(f"data.root={cfg.root!r}: expected a folder holding one sub-folder per modality")
    model_modalities = model_config.get("modalities")
    names = cfg.modalities or (list(model_modalities) if isinstance(model_modalities, dict) else None) or \
        sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))  # fmt: skip
    known = dict(model_modalities) if isinstance(model_modalities, dict) else {}
    channels = {m: int(cfg.channels.get(m, known.get(m, 3 if m == "rgb" else 1))) for m in names}
    size = cfg.img_size if cfg.img_size is not None else model_config.get("img_size", 224)
    size = size if isinstance(size, int) else int(size[0])
    classes, samples = find_paired(root, names, cfg.layout)
    return PairedImages(samples, channels, img_size=size, train=bool(augment), scale=tuple(cfg.scale),  # type: ignore[arg-type]
                        standardize=cfg.standardize, on_error=cfg.on_error, classes=classes, root=root)
