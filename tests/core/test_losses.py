from __future__ import annotations

import pytest
import torch

from anymae.core.losses import TokenNorm, get_loss, masked_mse


def test_masked_mse_is_reference_formula() -> None:
    pred, target = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 1, 1, 0]], dtype=torch.float32)
    ref = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
    assert torch.allclose(masked_mse(pred, target, mask), ref)
    assert torch.allclose(masked_mse(pred, target), ((pred - target) ** 2).mean())


def test_masked_mse_with_nothing_hidden_is_zero_not_nan() -> None:
    pred = torch.randn(1, 3, 2, requires_grad=True)
    loss = masked_mse(pred, torch.zeros(1, 3, 2), torch.zeros(1, 3))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None


def test_norm_pix_mae_pools_all_values_of_a_patch() -> None:
    t = torch.randn(2, 4, 12)
    mean, var = t.mean(-1, keepdim=True), t.var(-1, keepdim=True)
    ref = (t - mean) / (var + 1e-6) ** 0.5
    assert torch.allclose(TokenNorm().normalize(t), ref, atol=1e-6)


def test_norm_pix_videomae_is_per_channel_with_std_plus_eps() -> None:
    t = torch.randn(2, 4, 8 * 3)  # 8 pixels × 3 channels, channel last
    grouped = t.view(2, 4, 8, 3)
    ref = (grouped - grouped.mean(2, keepdim=True)) / (grouped.var(2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    out = TokenNorm(channels=3, mode="std").normalize(t)
    assert torch.allclose(out, ref.view(2, 4, 24), atol=1e-6)


def test_denormalize_inverts_normalize() -> None:
    t = torch.randn(3, 5, 12) * 4 + 2
    norm = TokenNorm(channels=3)
    assert torch.allclose(norm.denormalize(norm.normalize(t), t), t, atol=1e-5)


def test_unknown_loss_lists_choices() -> None:
    with pytest.raises(ValueError, match="mse"):
        get_loss("l3")


def test_get_loss_binds_parameters_and_refuses_unknown_ones() -> None:
    from anymae.core import losses

    def scaled(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *, k: float = 1.0):
        return k * masked_mse(pred, target, weight)

    losses.LOSSES.register("scaled_test", scaled)
    try:
        pred, target = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
        assert torch.allclose(get_loss("scaled_test", k=3.0)(pred, target, None), 3 * masked_mse(pred, target))
        assert get_loss("scaled_test") is scaled
        with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['gamma'\].*\['k'\]"):
            get_loss("scaled_test", gamma=2.0)
        with pytest.raises(ValueError, match="unknown loss 'nope'"):
            get_loss("nope")
    finally:
        losses.LOSSES.unregister("scaled_test")
    assert "scaled_test" not in losses.LOSSES
