"""Clip transforms: T×H×W×C uint8 frames -> normalized C×T×S×S float clips.

- `multi_scale_crop`: VideoMAE's pretraining augmentation `GroupMultiScaleCrop(size, [1, .875,
  .75, .66])` (max_distort 1, fixed crop offsets incl. the 13 "more fix crop" positions), then a
  bilinear resize to size×size; no flip. Crop sizes and offsets follow the reference exactly
  (python `random`, seeded per sample by `SeededSamples`).
- `random_resized_crop_flip`: fine-tuning: RandomResizedCrop (area 0.08-1, aspect 3/4-4/3) and
  a horizontal flip, the same for every frame of a clip.
- `short_side_crops`: evaluation: resize the short side to `size`, then `num_crops` square crops
  evenly spaced along the long side (VideoMAE's 3-crop test; 1 crop = centre).

Resizing is `F.interpolate(bilinear, antialias=True)` on the whole clip at once; the reference
resizes each frame with PIL's bilinear filter, which differs by rounding only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

PRETRAIN_SCALES: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)


def to_float_clip(frames: Tensor) -> Tensor:
    """T×H×W×C uint8 -> C×T×H×W float on [0, 1]."""
    if frames.ndim != 4 or frames.dtype != torch.uint8:
        raise ValueError(f"expected T×H×W×C uint8 frames, got {tuple(frames.shape)} {frames.dtype}")
    return frames.permute(3, 0, 1, 2).float() / 255.0


def resize(clip: Tensor, size: tuple[int, int]) -> Tensor:
    """C×T×H×W -> C×T×size (bilinear, antialiased)."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip
    return F.interpolate(clip, size=size, mode="bilinear", align_corners=False, antialias=True)  # T as batch: C×T


def normalize(clip: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """C×T×H×W on [0, 1] -> (clip - mean) / std per channel."""
    m = torch.tensor(mean, dtype=clip.dtype).view(-1, 1, 1, 1)
    s = torch.tensor(std, dtype=clip.dtype).view(-1, 1, 1, 1)
    return (clip - m) / s


def fix_offsets(image_w: int, image_h: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
    """The 13 fixed (w, h) crop offsets of `GroupMultiScaleCrop.fill_fix_offset(more_fix_crop=True)`."""
    ws, hs = (image_w - crop_w) // 4, (image_h - crop_h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    return [(a * ws, b * hs) for a, b in grid]


def multi_scale_crop_box(
    image_w: int, image_h: int, size: int, scales: Sequence[float] = PRETRAIN_SCALES, max_distort: int = 1
) -> tuple[int, int, int, int]:
    """(left, top, crop_w, crop_h) as `GroupMultiScaleCrop._sample_crop_size` draws it."""
    base = min(image_w, image_h)
    sizes = [int(base * s) for s in scales]
    crop_h = [size if abs(x - size) < 3 else x for x in sizes]
    crop_w = [size if abs(x - size) < 3 else x for x in sizes]
    pairs = [(w, h) for i, h in enumerate(crop_h) for j, w in enumerate(crop_w) if abs(i - j) <= max_distort]
    w, h = random.choice(pairs)
    left, top = random.choice(fix_offsets(image_w, image_h, w, h))
    return left, top, w, h


def multi_scale_crop(clip: Tensor, size: int, scales: Sequence[float] = PRETRAIN_SCALES) -> Tensor:
    """C×T×H×W -> C×T×size×size: one multi-scale crop for the whole clip, then resize."""
    left, top, w, h = multi_scale_crop_box(clip.shape[-1], clip.shape[-2], size, scales)
    return resize(clip[..., top : top + h, left : left + w], (size, size))


def random_resized_crop_flip(
    clip: Tensor, size: int, scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)
) -> Tensor:
    """C×T×H×W -> C×T×size×size: torchvision's RandomResizedCrop box (10 tries, then centre), flip p=0.5."""
    height, width = clip.shape[-2:]
    area = height * width
    box = None
    for _ in range(10):
        target = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            box = (random.randint(0, height - h), random.randint(0, width - w), h, w)
            break
    if box is None:
        side = min(height, width)
        box = ((height - side) // 2, (width - side) // 2, side, side)
    top, left, h, w = box
    out = resize(clip[..., top : top + h, left : left + w], (size, size))
    return out.flip(-1) if random.random() < 0.5 else out


def short_side_crops(clip: Tensor, size: int, num_crops: int = 1) -> list[Tensor]:
    """C×T×H×W -> `num_crops` C×T×size×size crops along the long side after a short-side resize."""
    h, w = clip.shape[-2:]
    if h <= w:
        clip = resize(clip, (size, max(size, round(w * size / h))))
    else:
        clip = resize(clip, (max(size, round(h * size / w)), size))
    h, w = clip.shape[-2:]
    extra = max(h, w) - size
    starts = [extra // 2] if num_crops == 1 else [int(i * extra / (num_crops - 1)) for i in range(num_crops)]
    if h >= w:
        return [clip[..., s : s + size, :] for s in starts]
    return [clip[..., :, s : s + size] for s in starts]
