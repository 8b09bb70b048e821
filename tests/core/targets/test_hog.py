"""HOG targets: hand-computed histograms for known gradients (both reference conventions), the
per-cell normalizations, the per-patch layouts and the un-normalization of the input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from anymae.core.targets.hog import HOGTargets, gaussian_window, hog_cells
from anymae.core.tokens import Tokens


def _edge(vertical: bool) -> torch.Tensor:
    """1×1×16×16: 0 then 1 across the middle (columns 8.. for a vertical edge, rows 8.. else)."""
    x = torch.zeros(1, 1, 16, 16)
    if vertical:
        x[..., 8:] = 1
    else:
        x[..., 8:, :] = 1
    return x


def test_maskfeat_vertical_and_horizontal_edges_by_hand() -> None:
    # vertical edge: gx = left - right = (1 + 2 + 1)·(0 - 1) = -4 at columns 7 and 8, gy = 0;
    # atan2(gx, gy) = -π/2 -> -4.5 -> floor -5 -> mod 9 = bin 4; 8 rows · 4 per cell
    h = hog_cells(_edge(True), norm="none")
    assert h.shape == (1, 1, 9, 2, 2)
    expected = torch.zeros(9)
    expected[4] = 32.0
    for r in range(2):
        for c in range(2):
            assert torch.allclose(h[0, 0, :, r, c], expected)
    # horizontal edge: gy = top - bottom = -4, gx = 0: atan2(0, -4) = π -> 9 -> mod 9 = bin 0
    h = hog_cells(_edge(False), norm="none")
    expected = torch.zeros(9)
    expected[0] = 32.0
    assert torch.allclose(h[0, 0, :, 0, 0], expected)


def test_maskfeat_diagonal_ramp_with_reflect_borders_by_hand() -> None:
    # x[i, j] = i + j: interior gx = gy = -8 -> atan2 = -3π/4 -> -6.75 -> floor -7 -> bin 2,
    # magnitude 8√2 (49 pixels of cell (0, 0)); reflect padding makes gy = 0 on row 0 (bin 4,
    # magnitude 8, 7 pixels) and gx = 0 on column 0 (bin 0, 7 pixels); pixel (0, 0) has none.
    i = torch.arange(16.0)
    x = (i[:, None] + i[None, :]).view(1, 1, 16, 16)
    h = hog_cells(x, norm="none")[0, 0, :, 0, 0]
    expected = torch.zeros(9)
    expected[2] = 49 * 8 * math.sqrt(2)
    expected[4] = 56.0
    expected[0] = 56.0
    assert torch.allclose(h, expected, rtol=1e-5)


def test_skimage_style_edges_by_hand() -> None:
    # DMJD: central differences, zero border; vertical edge: g_col = 1 at columns 7, 8, g_row = 0:
    # 0° -> bin 0, mean over the 64 pixels of a cell = 8 / 64
    h = hog_cells(_edge(True), norm="none", style="skimage")
    expected = torch.zeros(9)
    expected[0] = 8 / 64
    assert torch.allclose(h[0, 0, :, 0, 0], expected) and torch.allclose(h[0, 0, :, 1, 1], expected)
    # horizontal edge: g_row = 1: 90° -> bin floor(90 / 20) = 4
    h = hog_cells(_edge(False), norm="none", style="skimage")
    expected = torch.zeros(9)
    expected[4] = 8 / 64
    assert torch.allclose(h[0, 0, :, 0, 1], expected)


def test_normalizations() -> None:
    x = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    raw = hog_cells(x, norm="none")
    l2 = hog_cells(x, norm="l2")
    assert torch.allclose(l2, F.normalize(raw, dim=2))
    assert torch.allclose(l2.norm(dim=2), torch.ones(2, 3, 2, 3), atol=1e-5)
    ln = hog_cells(x, norm="layernorm", style="skimage")
    assert torch.allclose(ln.mean(dim=2), torch.zeros(()), atol=1e-5)
    raw_sk = hog_cells(x, norm="none", style="skimage")
    var = raw_sk.var(dim=2, unbiased=False)
    assert torch.allclose(ln.pow(2).mean(dim=2), var / (var + 1e-5), atol=1e-4)  # LayerNorm eps 1e-5


def test_gaussian_window_weights_magnitudes() -> None:
    k = gaussian_window(8)
    assert torch.allclose(k.sum(), torch.tensor(1.0)) and torch.allclose(k, k.t())
    x = _edge(True)
    plain = hog_cells(x, norm="none", cell=8)
    windowed = hog_cells(x, norm="none", cell=8, gaussian_window=8)
    # column 7 of cell (0, 0) carries weights k[:, 7]; column 8 is column 0 of the tiled window
    assert torch.allclose(windowed[0, 0, 4, 0, 0], 4 * k[:, 7].sum())
    assert torch.allclose(windowed[0, 0, 4, 0, 1], 4 * k[:, 0].sum())
    assert plain[0, 0, 4, 0, 0] == 32


@pytest.mark.parametrize("layout", ["cells_bins_channels", "channels_bins_cells"])
def test_patch_layout_matches_a_loop(layout: str) -> None:
    x = torch.rand(2, 2, 16, 32, generator=torch.Generator().manual_seed(1))
    t = HOGTargets(16, 2, cell=8, layout=layout)  # type: ignore[arg-type]
    assert t.dim == 2 * 2 * 9 * 2
    got = t.hog_patches(x)
    cells = hog_cells(x)  # B×C×9×2×4
    assert got.shape == (2, 2, t.dim)
    for n in range(2):  # patches row-major over a 1×2 grid
        values = []
        if layout == "cells_bins_channels":
            for dh in range(2):
                for dw in range(2):
                    for d in range(9):
                        for c in range(2):
                            values.append(cells[:, c, d, dh, 2 * n + dw])
        else:
            for c in range(2):
                for d in range(9):
                    for dh in range(2):
                        for dw in range(2):
                            values.append(cells[:, c, d, dh, 2 * n + dw])
        assert torch.equal(got[:, n], torch.stack(values, dim=1))


def test_unnormalizes_with_mean_and_std() -> None:
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    normed = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    t = HOGTargets(16, 3, norm="none", mean=mean, std=std)
    assert torch.allclose(t.hog_patches(normed), HOGTargets(16, 3, norm="none").hog_patches(x), atol=1e-4)
    tokens = Tokens(x=torch.zeros(1, 1, 8), target=None, grid=(1, 1))
    assert torch.allclose(t(tokens, normed, {}, torch.nn.Module()), t.hog_patches(normed))


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="cell=8 must divide patch_size=4"):
        HOGTargets(4, 3)
    with pytest.raises(ValueError, match="norm"):
        HOGTargets(16, 3, norm="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="both mean and std"):
        HOGTargets(16, 3, mean=(0.5,))
    with pytest.raises(ValueError, match="B×3×H×W"):
        HOGTargets(16, 3).hog_patches(torch.zeros(1, 1, 16, 16))
    tokens = Tokens(x=torch.zeros(1, 3, 8), target=None, grid=(1, 3))
    with pytest.raises(ValueError, match="tokenizer made 3 tokens"):
        HOGTargets(16, 3)(tokens, torch.zeros(1, 3, 16, 16), {}, torch.nn.Module())


def test_builds_on_the_meta_device() -> None:
    # `anymae info` and parameter counts build models on meta: option checks must not read tensors
    with torch.device("meta"):
        t = HOGTargets(16, 3, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    assert t.std is not None and t.std.is_meta and t.dim == 108
    with pytest.raises(ValueError, match="std values must be > 0"):
        HOGTargets(16, 3, mean=(0.5,), std=(0.0,))
