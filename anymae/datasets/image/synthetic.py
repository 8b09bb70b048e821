"""Synthetic images for tests and demos: oriented colour gratings whose class is the orientation.

Each picture is a sinusoidal grating ``c + a * sin(2π f (x cos θ + y sin θ) + φ)`` plus pixel
noise, where the class fixes the orientation θ (``label * 180° / num_classes``, jittered by
±15% of the class spacing) and the frequency f (2–4 cycles per image), phase φ, base colour c
and per-channel amplitude a (random sign, so stripes change hue) are random. The class is thus
recoverable from the picture (its dominant Fourier orientation) but not from any single pixel.

`SyntheticImages` holds them in memory, ImageNet-normalized; `write_image_folder` writes them as
real files in the ImageFolder layout; `write_truncated_jpeg` writes a corrupt file.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset
from anymae.datasets.image.transforms import IMAGENET_MEAN, IMAGENET_STD

FORMATS = {"png": "PNG", "jpg": "JPEG", "tif": "TIFF"}
_NOISE_STD = 0.04


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def gratings(labels: Tensor, size: int, num_classes: int, channels: int, generator: torch.Generator) -> Tensor:
    """Draw one grating per label.

    Args:
        labels: LongTensor[B], values in [0, num_classes).
        size: picture side H = W.
        num_classes: number of orientations evenly spread over 180°.
        channels: C.
        generator: torch CPU generator all randomness comes from.

    Returns:
        Float tensor B×C×size×size with values in [0, 1].
    """
    b = labels.shape[0]
    spacing = math.pi / num_classes
    jitter = (torch.rand(b, generator=generator) * 2 - 1) * 0.15 * spacing  # B
    theta = labels.double() * spacing + jitter  # B
    cycles = 2 + 2 * torch.rand(b, generator=generator, dtype=torch.float64)  # B
    phase = 2 * math.pi * torch.rand(b, generator=generator, dtype=torch.float64)  # B
    base = 0.3 + 0.4 * torch.rand(b, channels, generator=generator)  # B×C
    sign = torch.randint(0, 2, (b, channels), generator=generator) * 2 - 1  # B×C
    amp = (0.15 + 0.1 * torch.rand(b, channels, generator=generator)) * sign  # B×C
    coords = torch.arange(size, dtype=torch.float64) / size  # W (and H)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # H×W each
    proj = xx[None] * torch.cos(theta)[:, None, None] + yy[None] * torch.sin(theta)[:, None, None]
    wave = torch.sin(2 * math.pi * cycles[:, None, None] * proj + phase[:, None, None])  # B×H×W
    img = base[:, :, None, None] + amp[:, :, None, None] * wave[:, None].float()  # B×C×H×W
    img = img + _NOISE_STD * torch.randn(img.shape, generator=generator)
    return img.clamp(0.0, 1.0)


def channel_stats(channels: int) -> tuple[list[float], list[float]]:
    """ImageNet mean/std per channel; for C != 3 the RGB values repeat cyclically (c % 3)."""
    return (
        [IMAGENET_MEAN[c % 3] for c in range(channels)],
        [IMAGENET_STD[c % 3] for c in range(channels)],
    )


class SyntheticImages(Dataset, SampleDataset):
    """In-memory oriented gratings, ImageNet-normalized; items are ``(C×size×size float, label)``.

    Labels are balanced (``i % num_classes`` before a seeded shuffle); everything is fixed by
    ``seed``.

    Attributes:
        images: float32 tensor n×C×size×size, normalized with `channel_stats`.
        labels: LongTensor[n].
        classes: names ``"orient_<degrees>"``, index = label.
    """

    def __init__(self, n: int, size: int = 32, num_classes: int = 4, seed: int = 0, channels: int = 3) -> None:
        for name, value in (("n", n), ("size", size), ("num_classes", num_classes)):
            _check_positive(name, value)
        _check_positive("channels", channels)
        g = torch.Generator().manual_seed(seed)
        labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]  # n
        pics = gratings(labels, size, num_classes, channels, g)  # n×C×H×W in [0, 1]
        mean, std = channel_stats(channels)
        m = torch.tensor(mean).view(1, -1, 1, 1)  # 1×C×1×1
        s = torch.tensor(std).view(1, -1, 1, 1)  # 1×C×1×1
        self.images = ((pics - m) / s).float()
        self.labels = labels
        self.classes = [f"orient_{round(180 * k / num_classes):03d}" for k in range(num_classes)]

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])


def _to_pil(pic: Tensor) -> Image.Image:
    """3×H×W float in [0, 1] -> RGB PIL image."""
    hwc = (pic.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()  # H×W×3
    return Image.fromarray(hwc)


def write_image_folder(
    root: str | Path,
    n_per_class: int,
    classes: int | Sequence[str],
    size: int = 32,
    fmt: str = "png",
    seed: int = 0,
) -> Path:
    """Write RGB gratings as image files in the ImageFolder layout.

    Files are ``root/<class>/<class>_<i:04d>.<fmt>``; class k holds orientation k.

    Args:
        root: folder to create (parents too); existing files of the same names are overwritten.
        n_per_class: files per class.
        classes: class folder names, or a count (names ``class_0``, ``class_1``, ...).
        size: picture side.
        fmt: ``"png"``, ``"jpg"`` (quality 95) or ``"tif"``.
        seed: all pixels follow from it.

    Returns:
        ``Path(root)``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {tuple(FORMATS)}, got {fmt!r}")
    names = [f"class_{k}" for k in range(classes)] if isinstance(classes, int) else list(classes)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"classes must be a positive count or distinct names, got {classes!r}")
    _check_positive("n_per_class", n_per_class)
    _check_positive("size", size)
    root = Path(root)
    g = torch.Generator().manual_seed(seed)
    for k, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        labels = torch.full((n_per_class,), k, dtype=torch.long)
        pics = gratings(labels, size, len(names), 3, g)  # n_per_class×3×size×size
        for i, pic in enumerate(pics):
            options = {"quality": 95} if fmt == "jpg" else {}
            _to_pil(pic).save(folder / f"{name}_{i:04d}.{fmt}", FORMATS[fmt], **options)
    return root


def write_truncated_jpeg(path: str | Path, size: int = 64, keep: float = 0.6, seed: int = 0) -> Path:
    """Write a JPEG cut after ``keep`` of its bytes: it opens, but decoding it fails.

    Args:
        path: file to write (parents created).
        size: side of the picture before truncation.
        keep: fraction of the encoded bytes kept, in (0, 1).
        seed: pixel noise seed (noise makes the file long enough to cut mid-scan).
    """
    if not 0.0 < keep < 1.0:
        raise ValueError(f"keep must be in (0, 1), got {keep!r}")
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)  # H×W×3
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: int(len(data) * keep)])
    return path
