"""Windowed (Swin-style) attention blocks over a 2-D token grid, a decoder option of the core.

Audio-MAE's local decoder (`decoder_mode=1`, facebookresearch/AudioMAE `models_mae.py`) runs 16
Swin blocks of the "v2 cr" family (timm `swin_transformer_v2_cr`, patched by the reference):
scaled cosine attention inside non-overlapping windows, a log-spaced continuous relative position
bias from a small MLP (`meta_mlp`: 2 -> 384 -> heads, ReLU), POST-norm residual branches
(`x + norm1(attn(x))`, `x + norm2(mlp(x))`), and a cyclic shift on every other block. On Audio-MAE's
64x8 grid the window is 4x4 and the shift (2, 0), i.e. only along time.

`WindowedBlock` is timm's `SwinTransformerV2CrBlock` with three changes that make it the
reference's block (timm >= 0.9 differs from the patched timm 0.5 block the reference uses):

- the requested shift is kept per axis (timm now replaces any non-zero shift by half the window on
  BOTH axes, which would turn the reference's (2, 0) into (2, 2));
- the attention temperature starts at tau = 1 (timm: logit_scale = log 10); timm stores it as
  `logit_scale = -log(tau)`, the same forward (`1 / max(tau, 0.01)` == `exp(min(logit_scale,
  log 100))`), so official `attn.tau` weights import as `-log(tau)`;
- the meta-MLP dropout is 0.1 after both of its layers (timm: 0.125 after the first only), and
  no layer-scale init (timm's `init_values=0` would zero the post-norm weights).

Blocks take and return B×N×D tokens in grid (row-major) order.
"""

from __future__ import annotations

from functools import partial

import torch
from einops import rearrange
from timm.models.swin_transformer_v2_cr import SwinTransformerV2CrBlock
from torch import Tensor, nn

META_DROP = 0.1  # the reference's meta-MLP dropout, after fc1 and after fc2


class WindowedBlock(SwinTransformerV2CrBlock):
    """One Swin-v2-cr block on a fixed 2-D grid with an exact per-axis shift (see module doc).

    Args:
        dim: token width.
        num_heads: attention heads.
        grid: (H, W) token grid (feat_size).
        window: (h, w) window; clipped to the grid where the grid is smaller (then no shift there).
        shift: (sh, sw) cyclic shift, (0, 0) for none.
        mlp_ratio: MLP hidden width / dim.
        drop_path: stochastic depth of both branches.
        norm_eps: LayerNorm eps.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        grid: tuple[int, int],
        window: tuple[int, int],
        shift: tuple[int, int] = (0, 0),
        *,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__(
            dim, num_heads, feat_size=tuple(grid), window_size=tuple(window), shift_size=tuple(shift),
            mlp_ratio=mlp_ratio, init_values=None, drop_path=drop_path,
            norm_layer=partial(nn.LayerNorm, eps=norm_eps),
        )  # fmt: skip
        meta = self.attn.meta_mlp
        meta.drop1, meta.drop2 = nn.Dropout(META_DROP), nn.Dropout(META_DROP)
        nn.init.zeros_(self.attn.logit_scale)  # tau = 1, as the reference initializes it

    def _calc_window_shift(self, target_window_size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """Window clipped to the grid; the requested shift kept per axis (0 where the window covers the axis)."""
        window = tuple(min(f, w) for f, w in zip(self.feat_size, target_window_size))
        shift = tuple(0 if f <= w else s for f, w, s in zip(self.feat_size, window, self.target_shift_size))
        return window, shift  # type: ignore[return-value]

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """x: B×N×D tokens in grid order (N = H·W) -> B×N×D."""
        h, w = self.feat_size
        x = rearrange(x, "b (h w) d -> b h w d", h=h, w=w)
        return rearrange(super().forward(x), "b h w d -> b (h w) d")


def make_windowed_blocks(
    dim: int,
    depth: int,
    num_heads: int,
    *,
    grid: tuple[int, int],
    window: tuple[int, int],
    shift: tuple[int, int],
    mlp_ratio: float = 4.0,
    norm_eps: float = 1e-6,
) -> nn.ModuleList:
    """`depth` windowed blocks; even blocks unshifted, odd blocks shifted by `shift` (Swin order)."""
    if len(grid) != 2 or len(window) != 2 or len(shift) != 2:
        raise ValueError(f"windowed attention needs a 2-D grid, window and shift, got {grid}, {window}, {shift}")
    if dim % num_heads:
        raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
    return nn.ModuleList(
        WindowedBlock(
            dim, num_heads, tuple(grid), tuple(window), (0, 0) if i % 2 == 0 else tuple(shift),  # type: ignore[arg-type]
            mlp_ratio=mlp_ratio, norm_eps=norm_eps,
        )
        for i in range(depth)
    )


def tau_to_logit_scale(tau: Tensor) -> Tensor:
    """Official `attn.tau` (heads) -> timm `attn.logit_scale` = -log(tau)."""
    return -torch.log(tau)


def logit_scale_to_tau(logit_scale: Tensor) -> Tensor:
    """The inverse of `tau_to_logit_scale`."""
    return torch.exp(-logit_scale)
