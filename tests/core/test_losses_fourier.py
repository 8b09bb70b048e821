"""ChA-MAEViT's MSE + Fourier-magnitude loss in core/losses.py."""

from __future__ import annotations

import pytest
import torch

from anymae.core.losses import LOSSES, fourier_magnitude_l1, get_loss, masked_mse, masked_mse_fourier


def _brute_patch_fourier(pred: torch.Tensor, target: torch.Tensor, p: int) -> torch.Tensor:
    """Per-token L1 of FFT magnitudes of each p×p patch, looping over tokens: B×M."""
    b, m, _ = pred.shape
    out = torch.zeros(b, m)
    for i in range(b):
        for j in range(m):
            fp = torch.fft.fft2(pred[i, j].view(p, p)).abs()
            ft = torch.fft.fft2(target[i, j].view(p, p)).abs()
            out[i, j] = (fp - ft).abs().mean()
    return out


def test_mse_fourier_equals_the_brute_force_combination() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    weight = torch.tensor([[1.0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
    per_token = _brute_patch_fourier(pred, target, 4)
    assert torch.allclose(fourier_magnitude_l1(pred, target), per_token, atol=1e-5)
    fourier = (per_token * weight).sum() / weight.sum()
    expected = 0.99 * masked_mse(pred, target, weight) + 0.01 * fourier
    assert torch.allclose(masked_mse_fourier(pred, target, weight), expected, atol=1e-6)
    assert LOSSES["mse_fourier"] is masked_mse_fourier
    half = get_loss("mse_fourier", fourier_weight=0.5)(pred, target, weight)
    assert torch.allclose(half, 0.5 * masked_mse(pred, target, weight) + 0.5 * fourier, atol=1e-6)
    assert torch.equal(masked_mse_fourier(pred, target, weight, fourier_weight=0.0), masked_mse(pred, target, weight))


def test_fft_shape_reproduces_the_reference_blocks_on_so2sat_geometry() -> None:
    """The reference views the B×L×p² reconstruction as B×(-1)×√(hw)×√(hw) blocks; at 32 px, patch 8
    (hw = 16, p² = 64) the 4×4 blocks lie inside tokens and `fft_shape=(4, 4)` equals it."""
    torch.manual_seed(1)
    b, c, hw, p2 = 2, 3, 16, 64
    recon, target = torch.randn(b, c * hw, p2), torch.randn(b, c * hw, p2)
    mask = (torch.rand(b, c * hw) < 0.5).float()
    # the reference's FourierLoss + masked mean (mask_recon_fourier_loss=True), transcribed
    side = int(hw**0.5)
    loss = (torch.fft.fft2(recon.view(b, -1, side, side)).abs() - torch.fft.fft2(target.view(b, -1, side, side)).abs()).abs()
    ref = (loss.reshape(b, -1, p2).mean(-1) * mask).sum() / mask.sum()
    ours = masked_mse_fourier(recon, target, mask, fourier_weight=1.0, fft_shape=(4, 4))
    assert torch.allclose(ours, ref, atol=1e-5)


def test_fourier_shape_errors() -> None:
    x = torch.randn(1, 2, 12)
    with pytest.raises(ValueError, match="square"):
        fourier_magnitude_l1(x, x)
    with pytest.raises(ValueError, match="does not tile"):
        fourier_magnitude_l1(x, x, (5, 2))
    with pytest.raises(ValueError, match="fourier_weight"):
        masked_mse_fourier(x, x, fourier_weight=1.5)
