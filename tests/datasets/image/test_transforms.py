"""Tests for anymae/datasets/transforms.py: the MAE reference transforms and denormalize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from anymae.datasets.image.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    eval_transform,
    finetune_transform,
    pretrain_transform,
)


def _photo(w: int = 40, h: int = 30, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))


def test_pretrain_transform_is_the_mae_augmentation():
    t = pretrain_transform(16)
    crop, flip, to_tensor, norm = t.transforms
    assert isinstance(crop, T.RandomResizedCrop) and crop.size == (16, 16)
    assert crop.scale == (0.2, 1.0) and crop.interpolation == InterpolationMode.BICUBIC
    assert isinstance(flip, T.RandomHorizontalFlip) and flip.p == 0.5
    assert isinstance(to_tensor, T.ToTensor)
    assert tuple(norm.mean) == IMAGENET_MEAN and tuple(norm.std) == IMAGENET_STD


def test_pretrain_transform_matches_a_manual_crop_flip_normalize():
    img = _photo()
    torch.manual_seed(3)
    out = pretrain_transform(16)(img)
    torch.manual_seed(3)
    i, j, h, w = T.RandomResizedCrop.get_params(img, scale=[0.2, 1.0], ratio=[3 / 4, 4 / 3])
    manual = F.resized_crop(img, i, j, h, w, [16, 16], InterpolationMode.BICUBIC)
    if torch.rand(1) < 0.5:
        manual = F.hflip(manual)
    expected = _normalize(F.to_tensor(manual))
    assert out.shape == (3, 16, 16)
    torch.testing.assert_close(out, expected)


def test_pretrain_transform_without_flip_and_custom_scale():
    t = pretrain_transform(8, scale=(0.5, 0.5), hflip=False)
    assert not any(isinstance(s, T.RandomHorizontalFlip) for s in t.transforms)
    assert t.transforms[0].scale == (0.5, 0.5)


def test_eval_transform_resizes_256_center_crops_224_at_224():
    t = eval_transform(224)
    resize, crop = t.transforms[:2]
    assert resize.size == 256 and resize.interpolation == InterpolationMode.BICUBIC
    assert crop.size == (224, 224)
    assert eval_transform(32).transforms[0].size == 36  # int(32 / 0.875)


def test_eval_transform_values_are_deterministic_and_match_manual():
    img = _photo(50, 40)
    out = eval_transform(16)(img)
    manual = F.center_crop(F.resize(img, 18, InterpolationMode.BICUBIC), [16, 16])
    torch.testing.assert_close(out, _normalize(F.to_tensor(manual)))
    torch.testing.assert_close(eval_transform(16)(img), out)


@pytest.mark.parametrize(
    "call",
    [
        lambda: pretrain_transform(0),
        lambda: pretrain_transform(16, scale=(0.8, 0.2)),
        lambda: eval_transform(16, crop_pct=1.5),
        lambda: eval_transform(16, mean=(0.5, 0.5), std=(0.2,)),
        lambda: eval_transform(16, std=(0.2, 0.0, 0.2)),
    ],
)
def test_bad_arguments_raise_clear_errors(call):
    with pytest.raises(ValueError):
        call()


def test_denormalize_inverts_normalize_and_clamps():
    x = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(denormalize(_normalize(x)), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(denormalize(_normalize(x[0])), x[0], atol=1e-6, rtol=0)
    far = torch.full((1, 3, 2, 2), 100.0)
    assert torch.equal(denormalize(far), torch.ones_like(far))
    assert torch.equal(denormalize(-far), torch.zeros_like(far))


def test_denormalize_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="C=3"):
        denormalize(torch.zeros(2, 4, 5, 5))


def test_finetune_transform_follows_the_reference() -> None:
    train_tf, eval_tf = finetune_transform(32), eval_transform(32)
    names = [type(t).__name__ for t in train_tf.transforms]
    assert names[0] == "RandomResizedCropAndInterpolation" and "RandAugment" in names
    assert names[-1] == "RandomErasing" and train_tf.transforms[-1].probability == 0.25
    assert "ColorJitter" not in names
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    torch.manual_seed(0)
    a, b = train_tf(img), train_tf(img)
    assert a.shape == (3, 32, 32) and not torch.equal(a, b)  # random augmentation
    torch.testing.assert_close(eval_tf(img), eval_transform(32)(img))
