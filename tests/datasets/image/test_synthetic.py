"""Tests for anymae/datasets/synthetic.py: gratings, image folders, corrupt files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from anymae.datasets.image.synthetic import (
    SyntheticImages,
    channel_stats,
    write_image_folder,
    write_truncated_jpeg,
)
from anymae.datasets.image.transforms import denormalize


def _fourier_orientation_class(images: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Classify B×C×H×W pictures by the angle of their strongest spatial frequency."""
    x = images - images.mean(dim=(2, 3), keepdim=True)  # B×C×H×W, DC removed
    power = torch.fft.fft2(x).abs().pow(2).sum(1)  # B×H×W, summed over channels
    h, w = power.shape[1:]
    ky = torch.fft.fftfreq(h) * h  # H, cycles per image along rows
    kx = torch.fft.fftfreq(w) * w  # W
    peak = power.flatten(1).argmax(1)  # B
    angle = torch.atan2(ky[peak // w], kx[peak % w]) % math.pi  # B
    return torch.round(angle / (math.pi / num_classes)).long() % num_classes


def test_shapes_labels_balance_and_normalization():
    ds = SyntheticImages(40, size=16, num_classes=4, seed=0)
    assert len(ds) == 40 and ds.images.shape == (40, 3, 16, 16)
    assert ds.images.dtype == torch.float32
    assert torch.bincount(ds.labels).tolist() == [10, 10, 10, 10]
    x, y = ds[3]
    assert x.shape == (3, 16, 16) and isinstance(y, int) and y == int(ds.labels[3])
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in channel_stats(3))
    pixels = ds.images * std + mean  # back to [0, 1] without clamping
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    torch.testing.assert_close(denormalize(ds.images), pixels.clamp(0, 1))
    assert ds.images.min() < -1.0 and ds.images.max() > 0.5  # ImageNet-normalized, not [0, 1]
    assert ds.classes == ["orient_000", "orient_045", "orient_090", "orient_135"]


def test_class_is_recoverable_from_the_picture():
    ds = SyntheticImages(96, size=32, num_classes=6, seed=1)
    pred = _fourier_orientation_class(ds.images, 6)
    assert (pred == ds.labels).float().mean() >= 0.95


def test_pixel_statistics_alone_do_not_give_the_class():
    ds = SyntheticImages(200, size=16, num_classes=2, seed=2)
    means = ds.images.mean(dim=(1, 2, 3))  # B
    gap = (means[ds.labels == 0].mean() - means[ds.labels == 1].mean()).abs()
    assert gap < 0.5 * means.std()


def test_seed_determines_everything():
    a, b, c = SyntheticImages(8, seed=5), SyntheticImages(8, seed=5), SyntheticImages(8, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_other_channel_counts_cycle_imagenet_stats():
    ds = SyntheticImages(4, size=8, channels=5)
    assert ds.images.shape == (4, 5, 8, 8)
    mean, std = channel_stats(5)
    assert mean[3:] == mean[:2] and std[4] == std[1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticImages(4, num_classes=0)
    with pytest.raises(ValueError, match="fmt"):
        write_image_folder("unused", 1, 2, fmt="gif")


@pytest.mark.parametrize("fmt", ["png", "jpg", "tif"])
def test_write_image_folder_writes_readable_files_in_imagefolder_layout(tmp_path, fmt):
    root = write_image_folder(tmp_path / "data", 3, ["cats", "dogs"], size=12, fmt=fmt, seed=4)
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*"))
    assert files == [f"{c}/{c}_{i:04d}.{fmt}" for c in ("cats", "dogs") for i in range(3)]
    with Image.open(root / "dogs" / f"dogs_0002.{fmt}") as im:
        assert im.mode == "RGB" and im.size == (12, 12)


def test_write_image_folder_is_deterministic_and_png_is_lossless(tmp_path):
    a = write_image_folder(tmp_path / "a", 2, 2, size=16, seed=9)
    b = write_image_folder(tmp_path / "b", 2, 2, size=16, seed=9)
    for rel in ("class_0/class_0_0000.png", "class_1/class_1_0001.png"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    pics = [np.asarray(Image.open(p), dtype=np.float32) for p in sorted(a.rglob("*.png"))]
    assert all(p.std() > 10 for p in pics)  # a visible grating, not a flat colour


def test_write_truncated_jpeg_opens_but_fails_to_decode(tmp_path):
    path = write_truncated_jpeg(tmp_path / "sub" / "bad.jpg")
    with Image.open(path) as im:
        assert im.format == "JPEG"
        with pytest.raises(OSError, match="truncated"):
            im.load()
