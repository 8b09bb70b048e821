"""The MAE reference image transforms (pretraining and evaluation) and their inverse.

`pretrain_transform` is exactly the augmentation of MAE pretraining (``main_pretrain.py``):
RandomResizedCrop(scale 0.2–1.0, bicubic) + horizontal flip + ToTensor + Normalize.
`eval_transform` is the MAE evaluation transform (``main_finetune.py``): resize the short side to
``int(img_size / crop_pct)`` (256 at 224) with bicubic, center-crop ``img_size``, ToTensor,
Normalize. `denormalize` maps normalized tensors back to [0, 1] for pictures.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
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


def pretrain_transform(
    img_size: int,
    scale: tuple[float, float] = (0.2, 1.0),
    hflip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """The MAE pretraining augmentation: PIL image -> normalized tensor C×img_size×img_size.

    Args:
        img_size: output side in pixels.
        scale: RandomResizedCrop area range, as a fraction of the image area (MAE: 0.2–1.0).
        hflip: add RandomHorizontalFlip(p=0.5) (MAE: yes).
        mean: per-channel mean subtracted after ToTensor.
        std: per-channel std divided after ToTensor.

    Returns:
        A torchvision Compose; uses torch's global RNG (seed it per sample with
        `anymae.datasets.seeding.SeededSamples` for exact reproducibility).
    """
    _check_size(img_size)
    _check_stats(mean, std)
    lo, hi = scale
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale!r}")
    steps: list[object] = [T.RandomResizedCrop(img_size, scale=(lo, hi), interpolation=InterpolationMode.BICUBIC)]
    if hflip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(mean=list(mean), std=list(std))]
    return T.Compose(steps)


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
