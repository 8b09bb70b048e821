from __future__ import annotations

import math

import pytest
import torch

from anymae.core.pos_embed import CoordMLP, FixedSinCos, LearnedTable, sincos_1d, sincos_grid


def _closed_form_1d(p: float, dim: int) -> list[float]:
    """MAE: omega_i = 1 / 10000^(i / (dim/2)); [sin(p omega), cos(p omega)]."""
    omega = [1.0 / 10000 ** (i / (dim / 2)) for i in range(dim // 2)]
    return [math.sin(p * w) for w in omega] + [math.cos(p * w) for w in omega]


def test_1d_matches_closed_form() -> None:
    emb = sincos_1d(torch.arange(7), 8)
    for p in range(7):
        assert emb[p].tolist() == pytest.approx(_closed_form_1d(p, 8), abs=1e-6)


def test_1d_interleave_is_videomae_layout() -> None:
    # VideoMAE: angle(p, j) = p / 10000^(2 (j // 2) / d); sin on even j, cos on odd j.
    d = 6
    emb = sincos_1d(torch.arange(5), d, layout="interleave")
    for p in range(5):
        ref = [
            (math.sin if j % 2 == 0 else math.cos)(p / 10000 ** (2 * (j // 2) / d)) for j in range(d)
        ]
        assert emb[p].tolist() == pytest.approx(ref, abs=1e-6)


def test_2d_first_half_encodes_column_second_half_row_on_rectangular_grid() -> None:
    h, w, d = 3, 5, 8
    table = sincos_grid((h, w), d)
    assert table.shape == (h * w, d)
    for i in range(h):
        for j in range(w):
            row = table[i * w + j].tolist()
            assert row[: d // 2] == pytest.approx(_closed_form_1d(j, d // 2), abs=1e-6)
            assert row[d // 2 :] == pytest.approx(_closed_form_1d(i, d // 2), abs=1e-6)


def test_2d_matches_mae_numpy_reference_for_square_grid() -> None:
    np = pytest.importorskip("numpy")
    gs, d = 4, 16
    grid_h, grid_w = np.arange(gs, dtype=np.float32), np.arange(gs, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape(2, 1, gs, gs)

    def one(dim: int, pos: "np.ndarray") -> "np.ndarray":
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    ref = np.concatenate([one(d // 2, grid[0]), one(d // 2, grid[1])], axis=1)
    assert torch.allclose(sincos_grid((gs, gs), d), torch.from_numpy(ref).float(), atol=1e-6)


def test_3d_splits_width_into_even_parts_w_h_t() -> None:
    t, h, w, d = 2, 3, 4, 12
    table = sincos_grid((t, h, w), d)
    row = table[(1 * h + 2) * w + 3].tolist()  # token at t=1, h=2, w=3
    assert row[:4] == pytest.approx(_closed_form_1d(3, 4), abs=1e-6)
    assert row[4:8] == pytest.approx(_closed_form_1d(2, 4), abs=1e-6)
    assert row[8:] == pytest.approx(_closed_form_1d(1, 4), abs=1e-6)


def test_odd_width_is_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        sincos_1d(torch.arange(3), 7)


def test_fixed_table_is_a_buffer_and_follows_other_grids() -> None:
    pos = FixedSinCos((2, 2), 8)
    assert not list(pos.parameters()) and "table" in pos.state_dict()
    assert torch.equal(pos((2, 2)), pos.table)
    assert torch.allclose(pos((3, 4))[0], sincos_grid((3, 4), 8))


def test_flat_table_is_one_dimensional_over_token_index() -> None:
    pos = FixedSinCos((2, 3), 6, flat=True, layout="interleave")
    assert torch.allclose(pos.table[0], sincos_1d(torch.arange(6), 6, layout="interleave"))


def test_learned_table_rejects_other_grids_and_coord_mlp_needs_coords() -> None:
    with pytest.raises(ValueError, match="grid"):
        LearnedTable((2, 2), 4)((3, 3))
    mlp = CoordMLP(3, 8)
    assert mlp((5,), torch.randn(2, 5, 3)).shape == (2, 5, 8)
    with pytest.raises(ValueError, match="coordinates"):
        mlp((5,))
