"""The volume modality: 3-D patch order, Hi-End-MAE's 3-D sin-cos table, the tokenizer, pictures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anymae.core.pos_embed import FixedSinCos, sincos_grid
from anymae.modalities.volume import VolumeTokenizer, patchify3d, triple, unpatchify3d, volume_pos

pytestmark = pytest.mark.usefixtures("one_thread")


def _reference_patchify(x: np.ndarray, p: int) -> np.ndarray:
    """Hi-End-MAE's `patchify_image`, [B,C,H,W,D] -> [B, gh·gw·gd, ph·pw·pd·C], written with numpy."""
    b, c, h, w, d = x.shape
    g = (h // p, w // p, d // p)
    x = x.reshape(b, c, g[0], p, g[1], p, g[2], p)
    return x.transpose(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, g[0] * g[1] * g[2], p**3 * c)


def test_patchify3d_order_is_row_major_tokens_and_channel_last_values() -> None:
    vol = torch.arange(2 * 4 * 6 * 2, dtype=torch.float32).reshape(1, 2, 4, 6, 2)  # B C H W D, p = 2
    tokens = patchify3d(vol, 2)
    assert tokens.shape == (1, 2 * 3 * 1, 8 * 2)
    # token (h=1, w=2, d=0) is index (1·3 + 2)·1 + 0 = 5; value (ph=1, pw=0, pd=1, c=1) is ((1·2+0)·2+1)·2+1 = 11
    assert tokens[0, 5, 11] == vol[0, 1, 1 * 2 + 1, 2 * 2 + 0, 0 * 2 + 1]
    assert np.array_equal(tokens.numpy(), _reference_patchify(vol.numpy(), 2))


def test_unpatchify3d_inverts_patchify3d() -> None:
    vol = torch.randn(2, 3, 8, 4, 12)
    tokens = patchify3d(vol, 4)
    assert torch.equal(unpatchify3d(tokens, 4, (2, 1, 3), 3), vol)


def test_3d_sincos_matches_a_hand_computation() -> None:
    grid, dim = (2, 3, 2), 12  # six parts of width 2: omega = (1, 1 / 10000 ** (1/2)) = (1, 0.01)
    table = volume_pos(grid, dim)(grid)[0]
    assert table.shape == (12, 12)
    for n, (h, w, d) in enumerate((h, w, d) for h in range(2) for w in range(3) for d in range(2)):
        row = []
        for axis in (h, w, d):  # [sin h, cos h, sin w, cos w, sin d, cos d], each over (1, 0.01)
            row += [math.sin(axis), math.sin(axis * 0.01), math.cos(axis), math.cos(axis * 0.01)]
        assert torch.allclose(table[n], torch.tensor(row), atol=1e-6), (n, h, w, d)


def test_3d_sincos_equals_the_reference_formula_and_differs_from_the_mae_order() -> None:
    grid, dim = (3, 2, 4), 24
    hh, ww, dd = torch.meshgrid(*(torch.arange(g, dtype=torch.float32) for g in grid), indexing="ij")
    omega = 1.0 / 10000.0 ** (torch.arange(dim // 6, dtype=torch.float32) / (dim // 6))
    outs = [torch.einsum("m,d->md", a.flatten(), omega) for a in (hh, ww, dd)]
    ref = torch.cat([f(o) for o in outs for f in (torch.sin, torch.cos)], dim=1)  # build_3d_sincos_position_embedding
    assert torch.allclose(sincos_grid(grid, dim, axis_order="first"), ref, atol=1e-6)
    assert not torch.allclose(sincos_grid(grid, dim), ref, atol=1e-3)  # MAE's order encodes the last axis first
    pos = FixedSinCos(grid, dim, axis_order="first")
    assert torch.allclose(pos((2, 2, 2))[0], sincos_grid((2, 2, 2), dim, axis_order="first"))


def test_3d_positions_need_a_width_divisible_by_6_and_a_known_order() -> None:
    with pytest.raises(ValueError, match="divisible by 6"):
        volume_pos((2, 2, 2), 64)
    with pytest.raises(ValueError, match="axis_order='middle'"):
        sincos_grid((2, 2), 8, axis_order="middle")  # type: ignore[arg-type]


def test_the_patch_embedding_is_a_linear_map_of_the_target_values() -> None:
    tok = VolumeTokenizer((8, 4, 4), 2, 2, 12)
    vol = torch.randn(2, 2, 8, 4, 4)
    tokens = tok(vol)
    assert tokens.grid == (4, 2, 2) and tokens.x.shape == (2, 16, 12) and tokens.target.shape == (2, 16, 16)
    w = tok.patch_embed.proj.weight  # D×C×p×p×p
    linear = w.permute(0, 2, 3, 4, 1).reshape(12, -1)  # D×(p_h p_w p_d c): the target's value order
    assert torch.allclose(tokens.x, tokens.target @ linear.T + tok.patch_embed.proj.bias, atol=1e-5)
    assert torch.equal(tok.untokenize(tokens.target, tokens), vol)
    assert tok.pos_embed(tokens.grid).shape == (1, 16, 12)  # no cls row: prefix tokens get no position


def test_the_tokenizer_refuses_bad_shapes() -> None:
    tok = VolumeTokenizer(8, 4, 1, 6)
    with pytest.raises(ValueError, match=r"B×1×H×W×D"):
        tok(torch.zeros(2, 8, 8, 8))
    with pytest.raises(ValueError, match="not divisible by the patch size 4"):
        tok(torch.zeros(1, 1, 8, 8, 6))
    with pytest.raises(ValueError, match="one or three values"):
        triple((8, 8))


def test_pictures_show_the_central_slice_across_each_axis() -> None:
    tok = VolumeTokenizer((4, 6, 8), 2, 1, 6)
    vol = torch.zeros(1, 1, 4, 6, 8)
    vol[0, 0, 2] = 1.0  # the central slice across H (h = 2) is white
    pics = tok.to_pictures(vol)
    assert pics.shape == (1, 6, 8 + 8 + 6, 3) and pics.dtype == np.uint8
    assert (pics[0, :6, :8] == 255).all()  # across H: W×D = 6×8, all white
    assert (pics[0, 4:, 8:16] == 0).all()  # across W: H×D = 4×8, padded to 6 rows with black
    assert (pics[0, 2, 8:16] == 255).all() and (pics[0, 1, 8:16] == 0).all()  # row h = 2 white
    assert (pics[0, 2, 16:22] == 255).all()  # across D: H×W, row h = 2 white
    fill = tok.picture_fill(tok(vol), level=0.25, low=-1.0, high=1.0)
    assert fill.shape == (1, 1, 8) and torch.allclose(fill, torch.full((1, 1, 8), -0.5))
    assert (tok.to_pictures(torch.full((1, 1, 4, 6, 8), -0.5), low=-1.0, high=1.0)[0, :4] == 64).all()
