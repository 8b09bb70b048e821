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
    assert t.size == 16 and t.scale == (0.2, 1.0) and t.RATIO == (3 / 4, 4 / 3) and t.hflip
    assert t.mean == IMAGENET_MEAN and t.std == IMAGENET_STD


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
    assert not t.hflip and t.scale == (0.5, 0.5)


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


def _torchvision_pretrain(size: int, scale=(0.2, 1.0), hflip: bool = True) -> T.Compose:
    """MAE's main_pretrain.py augmentation as torchvision composes it (the reference for PretrainAugment)."""
    steps = [T.RandomResizedCrop(size, scale=scale, interpolation=InterpolationMode.BICUBIC)]
    steps += [T.RandomHorizontalFlip()] if hflip else []
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))])


@pytest.mark.parametrize("w, h, size, scale, hflip", [
    (40, 30, 16, (0.2, 1.0), True),    # downscaled crops
    (32, 32, 32, (0.2, 1.0), True),    # the tiny preset: crops at most the output size (upscaled or kept)
    (300, 12, 24, (0.2, 1.0), True),   # a strip: every try misses, the centre crop fallback
    (12, 300, 24, (0.5, 0.9), False),  # a tall strip, no flip
    (64, 48, 16, (1.0, 1.0), True),    # the whole area
])
def test_pretrain_augment_equals_torchvision_bit_for_bit_and_draw_for_draw(w, h, size, scale, hflip):
    ours, reference = pretrain_transform(size, scale=scale, hflip=hflip), _torchvision_pretrain(size, scale, hflip)
    for seed in range(25):
        img = _photo(w, h, seed)
        torch.manual_seed(seed)
        got = ours(img)
        after = torch.get_rng_state()
        torch.manual_seed(seed)
        want = reference(img)
        assert torch.equal(got, want), f"seed {seed}"
        assert torch.equal(after, torch.get_rng_state()), "the same number of RNG draws"
    gray = _photo(w, h, 99).convert("L")
    one_channel = pretrain_transform(size, scale=scale, hflip=hflip, mean=(0.5,), std=(0.25,))
    torch.manual_seed(1)
    got = one_channel(gray)
    torch.manual_seed(1)
    steps = _torchvision_pretrain(size, scale, hflip).transforms[:-1] + [T.Normalize(mean=[0.5], std=[0.25])]
    assert torch.equal(got, T.Compose(steps)(gray))


def test_pretrain_augment_names_what_it_cannot_read():
    with pytest.raises(TypeError, match="RGB or L PIL image, got Tensor"):
        pretrain_transform(16)(torch.zeros(3, 16, 16))
    with pytest.raises(TypeError, match="of mode RGBA"):
        pretrain_transform(16)(Image.new("RGBA", (20, 20)))
    with pytest.raises(ValueError, match="1 channel"):
        pretrain_transform(16)(Image.new("L", (20, 20)))  # ImageNet statistics have 3 channels
