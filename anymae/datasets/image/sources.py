"""Image data sources for `data:` sections: image folders, the demo's photo crops, synthetic gratings.

    data:
      source: image_folder
      root: /data/imagenet/train        # a folder per class, or a flat folder (searched recursively)
      img_size: 224                     # default: the model's input size
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.datasets.image.demo import demo_photo_crops, demo_unlabeled
from anymae.datasets.image.files import ImageFiles
from anymae.datasets.image.synthetic import SyntheticImages
from anymae.datasets.image.transforms import eval_transform, finetune_transform, pretrain_transform
from anymae.datasets.sources import SOURCES, Augment


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


@SOURCES.register("image_folder", config=ImageFolderSource, modality="image", files={"layout": "flat"})
def _image_folder(cfg: ImageFolderSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    size = _image_size(cfg.img_size, model_config)
    if augment == "pretrain":
        tf = pretrain_transform(size, scale=cfg.scale, hflip=cfg.hflip)
    elif augment == "finetune":
        tf = finetune_transform(size)
    else:
        tf = eval_transform(size)
    return ImageFiles(cfg.root, tf, layout=cfg.layout, on_error=cfg.on_error)


@SOURCES.register("demo_photos", config=DemoPhotosSource, modality="image")
def _demo_photos(cfg: DemoPhotosSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    if split == "pretrain":
        return demo_unlabeled(size=cfg.img_size, n_per_photo=cfg.n_per_photo, seed=cfg.seed)
    train, test, _ = demo_photo_crops(
        size=cfg.img_size, n_train_per_photo=cfg.n_per_photo, n_test_per_photo=cfg.n_test_per_photo, seed=cfg.seed
    )
    return train if split == "train" else test


@SOURCES.register("synthetic_images", config=SyntheticImagesSource, modality="image")
def _synthetic(cfg: SyntheticImagesSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    seed = cfg.seed + (0 if split in ("train", "pretrain") else 1)
    return SyntheticImages(cfg.n, size=cfg.img_size, num_classes=cfg.num_classes, seed=seed)
