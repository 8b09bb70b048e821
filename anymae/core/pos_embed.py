"""Position information for tokens: fixed sin-cos tables and learned modules.

Closed forms (the reference MAE's `util/pos_embed.py`):
- 1-D, width d (even), positions p: omega_i = 1 / 10000^(i / (d/2)), i < d/2;
  emb(p) = [sin(p * omega), cos(p * omega)] ("concat"), or the same values interleaved
  sin, cos, sin, cos ... ("interleave", VideoMAE's `get_sinusoid_encoding_table`).
- N-D on a grid (g_0, ..., g_{k-1}), tokens flattened row-major: the width is split into k even
  parts and the parts encode the axes in REVERSE order, so that in 2-D the first half encodes the
  column index and the second half the row index, exactly as MAE's `meshgrid(w, h)` does (this
  matters on non-square grids, e.g. Audio-MAE's 64x8). In 3-D the parts encode (w, h, t).
  `axis_order="first"` encodes the axes in grid order instead: Hi-End-MAE's 3-D table
  (`build_3d_sincos_position_embedding`: meshgrid(h, w, d) with "ij" indexing, width split in six
  D/6 parts [sin h, cos h, sin w, cos w, sin d, cos d], width divisible by 6, no cls row).

Every position module maps a token layout to (1 or B)×N×D and is called as `pos(grid, coords)`.
Fixed tables are buffers, not parameters: they are saved in checkpoints (timm's `pos_embed`
needs them) but not trained or counted as trainable parameters.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

SinCosLayout = Literal["concat", "interleave"]
AxisOrder = Literal["last", "first"]  # which grid axis the first width part encodes


def sincos_1d(positions: Tensor, dim: int, *, layout: SinCosLayout = "concat") -> Tensor:
    """Sin-cos embedding of positions (N,) -> N×dim (float64 math, float32 result)."""
    if dim % 2:
        raise ValueError(f"a sin-cos embedding needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # dim/2
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # N×dim/2
    if layout == "concat":
        emb = torch.cat([angles.sin(), angles.cos()], dim=1)
    elif layout == "interleave":
        emb = torch.stack([angles.sin(), angles.cos()], dim=2).flatten(1)  # N×(dim/2)×2 -> N×dim
    else:
        raise ValueError(f"unknown sin-cos layout {layout!r}; expected 'concat' or 'interleave'")
    return emb.float()


def _axis_widths(dim: int, num_axes: int) -> list[int]:
    base = (dim // num_axes) // 2 * 2
    widths = [base] * num_axes
    widths[0] += dim - base * num_axes  # the remainder goes to the first part (the last axis)
    if any(w <= 0 or w % 2 for w in widths):
        raise ValueError(f"cannot split width {dim} into {num_axes} even sin-cos parts")
    return widths


def sincos_grid(grid: tuple[int, ...], dim: int, *, axis_order: AxisOrder = "last") -> Tensor:
    """Separable sin-cos table for a row-major token grid -> prod(grid)×dim.

    Args:
        grid: (g_0, ..., g_{k-1}); token n sits at the row-major position of its index.
        dim: width, split into k even parts (equal when k·2 divides it; else the first part
            takes the remainder).
        axis_order: "last": the first part encodes the last axis (MAE's 2-D order); "first": it
            encodes axis 0 (Hi-End-MAE's 3-D order).
    """
    if axis_order not in ("last", "first"):
        raise ValueError(f"axis_order={axis_order!r}: expected 'last' (MAE) or 'first' (Hi-End-MAE)")
    coords = torch.meshgrid(*[torch.arange(g) for g in grid], indexing="ij")  # each g0×...×gk
    widths = _axis_widths(dim, len(grid))
    axes = reversed(coords) if axis_order == "last" else iter(coords)
    parts = [sincos_1d(axis_coords.flatten(), width) for axis_coords, width in zip(axes, widths)]
    return torch.cat(parts, dim=1)  # prod(grid)×dim


class FixedSinCos(nn.Module):
    """Fixed sin-cos table for a token grid; recomputed on the fly for another grid.

    Args:
        grid: token grid, e.g. (14, 14) for 224² images at patch 16, (8, 14, 14) for video.
        dim: embedding width.
        flat: if True, one 1-D table over the flattened token index (VideoMAE), else separable.
        layout: sin/cos arrangement of the 1-D table ("interleave" is VideoMAE's).
        axis_order: which axis the first width part of a separable table encodes (`sincos_grid`).
    """

    def __init__(
        self, grid: tuple[int, ...], dim: int, *, flat: bool = False, layout: SinCosLayout = "concat",
        axis_order: AxisOrder = "last",
    ) -> None:
        super().__init__()
        self.grid, self.dim, self.flat, self.layout = tuple(grid), dim, flat, layout
        self.axis_order: AxisOrder = axis_order
        self.register_buffer("table", self._compute(self.grid).unsqueeze(0))  # 1×N×D

    def _compute(self, grid: tuple[int, ...]) -> Tensor:
        if self.flat:
            return sincos_1d(torch.arange(math.prod(grid)), self.dim, layout=self.layout)
        return sincos_grid(grid, self.dim, axis_order=self.axis_order)

    def forward(self, grid: tuple[int, ...], coords: Tensor | None = None) -> Tensor:
        """-> 1×N×D for N = prod(grid)."""
        if tuple(grid) == self.grid:
            return self.table
        return self._compute(tuple(grid)).unsqueeze(0).to(self.table)


class LearnedTable(nn.Module):
    """A learned table of positions (trunc-normal 0.02), one row per token of a fixed grid."""

    def __init__(self, grid: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.table = nn.Parameter(torch.zeros(1, math.prod(self.grid), dim))  # 1×N×D
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, grid: tuple[int, ...], coords: Tensor | None = None) -> Tensor:
        if tuple(grid) != self.grid:
            raise ValueError(f"learned position table is for grid {self.grid}, got tokens on grid {tuple(grid)}")
        return self.table


class CoordMLP(nn.Module):
    """Positions from coordinates with a small MLP (Point-MAE: Linear 3->128, GELU, Linear 128->D)."""

    def __init__(self, in_dim: int, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, grid: tuple[int, ...], coords: Tensor | None = None) -> Tensor:
        """coords: B×N×in_dim -> B×N×D."""
        if coords is None:
            raise ValueError("CoordMLP positions need token coordinates (tokens.coords is None)")
        return self.mlp(coords)
