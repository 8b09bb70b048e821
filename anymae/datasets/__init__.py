"""Data layer: readers for real formats, transforms, per-sample seeding, synthetic and demo data.

Images: `ImageFiles` (folders of image files), `pretrain_transform` / `eval_transform` (the MAE
reference transforms), `SeededSamples` (per-sample seeds for exact resume and rank-invariant
DDP), `SyntheticImages` / `write_image_folder` (test data), `demo_photo_crops` /
`demo_unlabeled` (real photos shipped by installed packages, no download).
"""

from __future__ import annotations

from anymae.datasets.image.demo import PHOTOS, PhotoCrops, demo_photo_crops, demo_unlabeled
from anymae.datasets.image.files import IMAGE_EXTENSIONS, DataError, ImageFiles, load_rgb
from anymae.datasets.seeding import SeededSamples, sample_seed
from anymae.datasets.image.synthetic import SyntheticImages, write_image_folder, write_truncated_jpeg
from anymae.datasets.image.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    eval_transform,
    pretrain_transform,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "PHOTOS",
    "DataError",
    "ImageFiles",
    "PhotoCrops",
    "SeededSamples",
    "SyntheticImages",
    "demo_photo_crops",
    "demo_unlabeled",
    "denormalize",
    "eval_transform",
    "load_rgb",
    "pretrain_transform",
    "sample_seed",
    "write_image_folder",
    "write_truncated_jpeg",
]
