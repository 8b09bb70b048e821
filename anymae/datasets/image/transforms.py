"""The MAE reference image transforms (pretraining and evaluation) and their inverse.

`pretrain_transform` is exactly the augmentation of MAE pretraining (``main_pretrain.py``):
RandomResizedCrop(scale 0.2–1.0, bicubic) + horizontal flip + ToTensor + Normalize, as one
`PretrainAugment` call that equals torchvision's composition bit for bit.
`eval_transform` is the MAE evaluation transform (``main_finetune.py``): resize the short side to
``int(img_size / crop_pct)`` (256 at 224) with bicubic, center-crop ``img_size``, ToTensor,
Normalize. `denormalize` maps normalized tensors back to [0, 1] for pictures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from anymae.modalities.image import IMAGENET_MEAN, IMAGENET_STD


def _check_size(img_size: int) -> None:
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size <= 0:
        raise ValueError(f"img_size must be a positive int, got {img_size!r}")


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> None:
    if len(mean) != len(std) or len(mean) == 0:
        raise ValueError(
            f"mean and std must have the same non-zero length (one value per channel), "
            f"got mean={tuple(mean)!r} std={tuple(std)!r}"
        )
    if any(s <= 0 for s in std):
        raise ValueError(f"std values must be > 0, got std={tuple(std)!r}")


class PretrainAugment:
    """MAE's pretraining augmentation as one call: PIL image -> normalized tensor C×size×size.

    Equal, bit for bit and draw for draw, to torchvision's
    ``Compose([RandomResizedCrop(size, scale, bicubic), RandomHorizontalFlip(), ToTensor(),
    Normalize(mean, std)])`` on an 8-bit PIL image (mode RGB or L): the same torch RNG calls in the
    same order (two uniforms per try of the crop box, up to 10 tries, two randints, one ``rand``
    for the flip), the same PIL crop and bicubic resize, the same float operations. It does that
    work in about a fifth of the time (no per-call dispatch through five modules), which matters
    when small images make the loader, not the model, the cost of a step.
    """

    RATIO = (3 / 4, 4 / 3)

    def __init__(
        self,
        img_size: int,
        scale: tuple[float, float],
        hflip: bool,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        self.size, self.scale, self.hflip = img_size, (float(scale[0]), float(scale[1])), hflip
        self.mean, self.std = tuple(mean), tuple(std)
        log_ratio = torch.log(torch.tensor(self.RATIO))  # float32, as torchvision computes it
        self._log_ratio = (float(log_ratio[0]), float(log_ratio[1]))
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)  # C×1×1
        self._std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)  # C×1×1

    def __repr__(self) -> str:
        return (f"PretrainAugment(size={self.size}, scale={self.scale}, ratio=(3/4, 4/3), bicubic, "
                f"hflip={self.hflip}, mean={self.mean}, std={self.std})")

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) of a random crop: torchvision's ``RandomResizedCrop.get_params``."""
        area = height * width
        for _ in range(10):
            target_area = area * torch.empty(1).uniform_(*self.scale).item()
            aspect = torch.exp(torch.empty(1).uniform_(*self._log_ratio)).item()
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, size=(1,)).item())
                left = int(torch.randint(0, width - w + 1, size=(1,)).item())
                return top, left, h, w
        in_ratio = width / height  # after 10 misses: the centre crop closest to the ratio range
        if in_ratio < self.RATIO[0]:
            w, h = width, int(round(width / self.RATIO[0]))
        elif in_ratio > self.RATIO[1]:
            w, h = int(round(height * self.RATIO[1])), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: Image.Image) -> Tensor:
        if not isinstance(img, Image.Image) or img.mode not in ("RGB", "L"):
            raise TypeError(f"PretrainAugment expects an RGB or L PIL image, got {type(img).__name__}"
                            + (f" of mode {img.mode}" if isinstance(img, Image.Image) else ""))
        top, left, h, w = self.crop_box(img.height, img.width)
        out = img.crop((left, top, left + w, top + h))
        if (h, w) != (self.size, self.size):
            out = out.resize((self.size, self.size), Image.Resampling.BICUBIC)
        if self.hflip and torch.rand(1) < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.array(out, np.uint8, copy=True))  # H×W×C (L: H×W)
        pixels = pixels.view(self.size, self.size, -1).permute(2, 0, 1).contiguous()  # C×H×W uint8
        if pixels.shape[0] != self._mean.shape[0]:
            raise ValueError(f"PretrainAugment: a {img.mode} image has {pixels.shape[0]} channel(s), but mean/std "
                             f"have {self._mean.shape[0]}")
        return pixels.to(torch.float32).div(255).sub_(self._mean).div_(self._std)


def pretrain_transform(
    img_size: int,
    scale: tuple[float, float] = (0.2, 1.0),
    hflip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> PretrainAugment:
    """The MAE pretraining augmentation: PIL image -> normalized tensor C×img_size×img_size.

    Args:
        img_size: output side in pixels.
        scale: RandomResizedCrop area range, as a fraction of the image area (MAE: 0.2–1.0).
        hflip: add RandomHorizontalFlip(p=0.5) (MAE: yes).
        mean: per-channel mean subtracted after ToTensor.
        std: per-channel std divided after ToTensor.

    Returns:
        A `PretrainAugment`, equal to torchvision's RandomResizedCrop (bicubic) + flip + ToTensor
        + Normalize; uses torch's global RNG (seed it per sample with
        `anymae.datasets.seeding.SeededSamples` for exact reproducibility).
    """
    _check_size(img_size)
    _check_stats(mean, std)
    lo, hi = scale
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale!r}")
    return PretrainAugment(img_size, (lo, hi), hflip, mean, std)


def eval_transform(
    img_size: int,
    crop_pct: float = 0.875,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """The MAE evaluation transform: PIL image -> normalized tensor C×img_size×img_size.

    Resize the short side to ``int(img_size / crop_pct)`` (bicubic), center-crop ``img_size``
    (224 -> resize 256, crop 224), ToTensor, Normalize. Deterministic.

    Args:
        img_size: output side in pixels.
        crop_pct: fraction of the resized short side that the center crop keeps, in (0, 1].
        mean: per-channel mean.
        std: per-channel std.
    """
    _check_size(img_size)
    _check_stats(mean, std)
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct!r}")
    return T.Compose(
        [
            T.Resize(int(img_size / crop_pct), interpolation=InterpolationMode.BICUBIC),
            T.CenterCrop(img_size),
            T.ToTensor(),
            T.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def denormalize(x: Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """Undo Normalize: x * std + mean, clamped to [0, 1].

    Args:
        x: normalized images B×C×H×W (a single C×H×W image works too); C == len(mean).
        mean: the per-channel mean used to normalize.
        std: the per-channel std used to normalize.

    Returns:
        Same shape as ``x``, values in [0, 1], same dtype and device.
    """
    _check_stats(mean, std)
    if x.dim() < 3 or x.shape[-3] != len(mean):
        raise ValueError(
            f"denormalize expects B×C×H×W (or C×H×W) with C={len(mean)} channels, got shape {tuple(x.shape)}"
        )
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)  # C×1×1
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)  # C×1×1
    return (x * s + m).clamp(0.0, 1.0)


def finetune_transform(
    img_size: int,
    *,
    auto_augment: str = "rand-m9-mstd0.5-inc1",
    re_prob: float = 0.25,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> T.Compose:
    """MAE's image fine-tuning augmentation: PIL image -> normalized C×img_size×img_size tensor.

    Training (timm ``create_transform(is_training=True)`` as ``main_finetune.build_transform``):
    RandomResizedCrop (scale 0.08–1, bicubic), horizontal flip, RandAugment
    ``rand-m9-mstd0.5-inc1``, ToTensor, Normalize, RandomErasing (p 0.25, per-pixel noise).
    Evaluation uses :func:`eval_transform`.

    Args:
        img_size: output side in pixels.
        auto_augment: timm auto-augment policy string.
        re_prob: random-erasing probability.
        mean: per-channel mean.
        std: per-channel std.

    """
    from timm.data import create_transform

    return create_transform(
        input_size=img_size, is_training=True, color_jitter=None, auto_augment=auto_augment,
        interpolation="bicubic", re_prob=re_prob, re_mode="pixel", re_count=1, mean=mean, std=std,
    )  # fmt: skip
