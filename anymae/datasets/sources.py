"""Data sources by name: the `data:` section of a run config -> a Dataset.

Each source is a small typed config plus a builder; `source:` picks one, the other keys are that
config's fields (an unknown key is an error listing the valid ones). Each modality keeps its
sources in its own module (`datasets/<modality>_sources.py`, listed in `_MODALITY_SOURCE_MODULES`)
with a `SOURCES` dict like the one below and a `FILE_SOURCES` entry; those modules import
without their modality's extra (readers are imported when a dataset is built).

    data:
      source: image_folder
      root: /data/imagenet/train
      img_size: 224
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Literal

from torch.utils.data import Dataset

Augment = Literal["pretrain", "finetune", False]

from anymae.core.config import ConfigError, from_dict
from anymae.datasets.image.demo import demo_photo_crops, demo_unlabeled
from anymae.datasets.image.files import ImageFiles
from anymae.datasets.image.synthetic import SyntheticImages
from anymae.datasets.image.transforms import eval_transform, finetune_transform, pretrain_transform


@dataclass
class ImageFolderSource:
    """Image files: a folder per class (ImageFolder) or a flat, unlabeled folder (searched recursively).

    `img_size` defaults to the model's input size. Training uses MAE's augmentation
    (RandomResizedCrop `scale`, bicubic, horizontal flip); evaluation resizes and center-crops.
    """

    root: str
    layout: Literal["auto", "classes", "flat"] = "auto"
    img_size: int | None = None
    scale: tuple[float, float] = (0.2, 1.0)
    hflip: bool = True
    on_error: Literal["raise", "skip"] = "raise"


@dataclass
class DemoPhotosSource:
    """Crops of real photographs shipped by installed packages (the demo's data; no download).

    Training crops come from one part of each photo, evaluation crops from a disjoint part; the
    label is the photo a crop comes from.
    """

    img_size: int = 32
    n_per_photo: int = 512
    n_test_per_photo: int = 64
    seed: int = 0


@dataclass
class SyntheticImagesSource:
    """Synthetic gratings whose class is their orientation (tests and smoke runs)."""

    n: int = 512
    img_size: int = 32
    num_classes: int = 4
    seed: int = 0


def _image_size(value: int | None, model_config: dict[str, Any]) -> int:
    if value is not None:
        return value
    size = model_config.get("img_size", 224)
    return int(size if isinstance(size, int) else size[0])


def _image_folder(cfg: ImageFolderSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    size = _image_size(cfg.img_size, model_config)
    if augment == "pretrain":
        tf = pretrain_transform(size, scale=cfg.scale, hflip=cfg.hflip)
    elif augment == "finetune":
        tf = finetune_transform(size)
    else:
        tf = eval_transform(size)
    return ImageFiles(cfg.root, tf, layout=cfg.layout, on_error=cfg.on_error)


def _demo_photos(cfg: DemoPhotosSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    if split == "pretrain":
        return demo_unlabeled(size=cfg.img_size, n_per_photo=cfg.n_per_photo, seed=cfg.seed)
    train, test, _ = demo_photo_crops(
        size=cfg.img_size, n_train_per_photo=cfg.n_per_photo, n_test_per_photo=cfg.n_test_per_photo, seed=cfg.seed
    )
    return train if split == "train" else test


def _synthetic(cfg: SyntheticImagesSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    seed = cfg.seed + (0 if split in ("train", "pretrain") else 1)
    return SyntheticImages(cfg.n, size=cfg.img_size, num_classes=cfg.num_classes, seed=seed)


SOURCES: dict[str, tuple[type, Callable[[Any, str, Augment, dict[str, Any]], Dataset]]] = {
    "image_folder": (ImageFolderSource, _image_folder),
    "demo_photos": (DemoPhotosSource, _demo_photos),
    "synthetic_images": (SyntheticImagesSource, _synthetic),
}

# modality -> (source, fixed fields): the source that reads a user's file or folder given as
# `root` (`anymae reconstruct --input PATH`).
FILE_SOURCES: dict[str, tuple[str, dict[str, Any]]] = {"image": ("image_folder", {"layout": "flat"})}

_MODALITY_SOURCE_MODULES: tuple[str, ...] = ("anymae.datasets.points.sources", "anymae.datasets.multichannel.sources",
                                            "anymae.datasets.audio.sources", "anymae.datasets.graph.sources",
                                            "anymae.datasets.video.sources")

for _module in _MODALITY_SOURCE_MODULES:
    _mod = importlib.import_module(_module)
    SOURCES.update(_mod.SOURCES)
    FILE_SOURCES.update(_mod.FILE_SOURCES)


def files_section(modality: str, root: str) -> dict[str, Any]:
    """The `data:` section that reads the file or folder `root` for a model of `modality`."""
    if modality not in FILE_SOURCES:
        raise ConfigError(f"no file reader for modality {modality!r}; known: {', '.join(sorted(FILE_SOURCES))}")
    name, fixed = FILE_SOURCES[modality]
    return {"source": name, "root": root, **fixed}


def build_dataset(
    section: dict[str, Any],
    *,
    split: Literal["pretrain", "train", "test"],
    augment: Augment | None = None,
    model_config: dict[str, Any] | None = None,
) -> Dataset:
    """Build the dataset a `data:` section describes; items are (x, label), label -1 if unlabeled.

    Args:
        section: `{"source": name, **fields}`.
        split: "pretrain" (unlabeled training data), "train" or "test" (labelled, for probes and
            fine-tuning; sources with one folder serve the same files for every split).
        augment: "pretrain" (MAE's crop + flip), "finetune" (MAE's RandAugment recipe) or False
            (evaluation transform); default "pretrain" for the pretrain split, else False. Sources
            held in memory (demo, synthetic) have no augmentation.
        model_config: the model's plain config (for defaults such as the image size).
    """
    values = dict(section)
    name = values.pop("source", None)
    if name not in SOURCES:
        raise ConfigError(f"data.source={name!r}: expected one of {', '.join(sorted(SOURCES))}")
    cls, build = SOURCES[name]
    cfg = from_dict(cls, values, where="data")
    if augment is None:
        augment = "pretrain" if split == "pretrain" else False
    return build(cfg, split, augment, model_config or {})
