"""Dependent masks: a branch's mask drawn from an earlier branch's plan (`MaskContext.plans`).

A model with several branches (`core.skeleton.views`: two masks of one image, or one mask per
view) plans them in order; a strategy with `reads_context = True` sees the plans already made.
Branch 0 draws an ordinary mask; branch k >= 1 derives its mask from branch `source`'s plan:

- `DisjointMasking` ("disjoint", DMJD `models_dmjd.py` `random_masking` / `block_masking`): view 2
  hides `e = int(min(pred_ratio − r, r) · L)` of view 1's visible units and shows `e` of view 1's
  hidden ones, keeping the same count `int(L · (1 − r))`; with pred_ratio 1 and r >= 0.5 the two
  visible sets are disjoint. Units are tokens (`cell=1`, DMJD `rand`) or `cell`×`cell` blocks of a
  2-D grid (`cell=2`, DMJD `block`: a 7×7 cell grid at ViT-B/16, r = 0.6 -> 19 of 49 cells visible
  per view).
- `ConsecutiveKeepMasking` ("shuffle_slices", LUT `models_lut.py` `random_masking`): ONE noise per
  sample; branch k keeps `ids_shuffle[k·K : (k+1)·K]` of branch 0's shuffle (K = int(N·(1 − r))),
  so the views' visible positions are disjoint.

Any token layout works for cell 1 (the strategies read only the plan's indices), so the same
dependent masks apply to audio spectrogram patches, video tubes' tokens or point groups.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from anymae.core.masking.plan import MASKINGS, MaskContext, MaskPlan, SampleRNG, check_ratio


def _earlier_plan(context: MaskContext, source: int, what: str) -> MaskPlan | None:
    """Branch `source`'s plan when planning a later branch; None when planning the first branch."""
    if context.branch == 0 or not context.plans:
        return None
    if not 0 <= source < len(context.plans):
        raise ValueError(f"{what}: source={source} names no earlier branch (branch {context.branch} sees "
                         f"{len(context.plans)} plan(s))")
    return context.plans[source]


def _cell_of_tokens(grid: tuple[int, ...], cell: int, device: torch.device) -> Tensor:
    """N long: the index of the `cell`×`cell` block each token (row-major on a 2-D grid) falls in."""
    h, w = grid
    rows = torch.arange(h, device=device) // cell  # H
    cols = torch.arange(w, device=device) // cell  # W
    return (rows[:, None] * (w // cell) + cols[None, :]).flatten()  # N = H·W, row-major cells


@MASKINGS.register("disjoint")
class DisjointMasking:
    """DMJD's disjoint masks: branch 0 random (per token or per cell), branch k the complement (module doc).

    Args:
        ratio: r, the share of units hidden in every view (DMJD: 0.6).
        cell: 1 = per-token (DMJD `rand`); c >= 2 = c×c blocks of a 2-D grid (DMJD `block`, c = 2).
        pred_ratio: DMJD's `pred_ratio` (1.0: its `--pred_ratio` is parsed but never passed to the
            model), in (r, 1]; e = int(min(pred_ratio − r, r) · L) units change sides.
        source: the branch whose plan later branches complement (0).
    """

    reads_context = True

    def __init__(self, ratio: float = 0.6, *, cell: int = 1, pred_ratio: float = 1.0, source: int = 0) -> None:
        self.ratio = check_ratio(ratio)
        if isinstance(cell, bool) or not isinstance(cell, int) or cell < 1:
            raise ValueError(f"DisjointMasking cell={cell!r}: expected a cell side >= 1 (tokens)")
        if not self.ratio < pred_ratio <= 1.0:
            raise ValueError(
                f"DisjointMasking pred_ratio={pred_ratio}: expected mask ratio {self.ratio} < pred_ratio <= 1"
            )
        self.cell, self.pred_ratio, self.source = cell, float(pred_ratio), int(source)

    def _units(self, num_tokens: int, grid: tuple[int, ...] | None) -> int:
        """L: tokens (cell 1) or cells of the 2-D grid."""
        if self.cell == 1:
            return num_tokens
        c = self.cell
        if grid is None or len(grid) != 2 or grid[0] % c or grid[1] % c:
            raise ValueError(f"DisjointMasking with cell={c} needs a 2-D token grid divisible by {c}, got grid {grid}")
        return (grid[0] // c) * (grid[1] // c)

    def num_keep_units(self, units: int) -> int:
        """Visible units per view: int(L · (1 − r)) (DMJD's `len_keep`)."""
        return int(units * (1 - self.ratio))

    def num_changed(self, units: int) -> int:
        """e = int(min(pred_ratio − r, r) · L): units view 2 hides among view 1's visible (and shows
        among view 1's hidden) (DMJD's `num_extra`)."""
        return int(min(self.pred_ratio - self.ratio, self.ratio) * units)

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return self.num_keep_units(self._units(num_tokens, grid)) * self.cell**2

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None, context: MaskContext) -> Tensor:
        n = math.prod(grid)
        units = self._units(n, grid)
        u = rng.rand(units)  # B×L, one draw per unit
        first = _earlier_plan(context, self.source, "DisjointMasking")
        if first is not None:
            u = self._complement(first, u, grid, units)
        if self.cell == 1:
            return u  # B×N
        cell_of = _cell_of_tokens(grid, self.cell, u.device)  # N
        rank = torch.argsort(torch.argsort(u, dim=1), dim=1).float()  # B×L, 0..L-1
        tie = torch.arange(n, device=u.device, dtype=torch.float32) / n  # [0, 1): a cell's tokens stay together
        return rank[:, cell_of] + tie  # B×N

    def _complement(self, first: MaskPlan, u: Tensor, grid: tuple[int, ...], units: int) -> Tensor:
        """B×L unit scores of view 2 from view 1's plan: group + u, groups in DMJD's order
        [view-1 visible kept, view-1 hidden shown, view-1 visible hidden, view-1 hidden kept hidden]."""
        b = u.shape[0]
        keep = first.keep.to(u.device)
        if self.cell > 1:
            keep = _cell_of_tokens(grid, self.cell, u.device)[keep]  # B×Nv cell ids (repeats are harmless)
        visible = torch.zeros(b, units, dtype=torch.bool, device=u.device).scatter(1, keep, True)  # B×L
        n_vis = visible.sum(1)  # B
        if bool((n_vis != n_vis[0]).any()):
            raise ValueError("DisjointMasking: the first view's visible counts differ between samples")
        n_vis_i = int(n_vis[0])
        n_hid = units - n_vis_i
        e = min(self.num_changed(units), n_vis_i, n_hid)
        # rank of each unit among the units on its side of view 1's mask, by u (0 = smallest)
        side_order = torch.argsort(u + 2.0 * (~visible).float(), dim=1)  # B×L: visible units first, each side by u
        pos = torch.argsort(side_order, dim=1)  # B×L: position in that order
        rank = torch.where(visible, pos, pos - n_vis_i)  # B×L rank within its side
        group = torch.where(
            visible,
            torch.where(rank < e, 2, 0),  # e of view 1's visible become hidden, the rest stay visible
            torch.where(rank < n_hid - e, 3, 1),  # e of view 1's hidden become visible
        )
        return group.float() + u  # B×L

    def __repr__(self) -> str:
        return (f"DisjointMasking(ratio={self.ratio}, cell={self.cell}, pred_ratio={self.pred_ratio}, "
                f"source={self.source})")


@MASKINGS.register("shuffle_slices")
class ConsecutiveKeepMasking:
    """LUT's masks from one noise: branch k keeps positions k·K .. (k+1)·K − 1 of branch 0's shuffle.

    Branch 0 draws uniform noise and keeps its K = int(N · (1 − r)) smallest (`ids_shuffle[:K]`, as
    MAE); branch k >= 1 draws nothing and keeps `ids_shuffle[kK:(k+1)K]`, read from branch 0's
    plan (`cat([keep, hide])` is the shuffle), so every branch's visible set is disjoint from the
    others'. Needs (k+1)·K <= N (LUT: r = 0.75, K = 49 of 196, two views).

    Args:
        ratio: r (LUT: 0.75).
        source: the branch whose shuffle later branches continue (0).
    """

    reads_context = True

    def __init__(self, ratio: float = 0.75, *, source: int = 0) -> None:
        self.ratio = check_ratio(ratio)
        self.source = int(source)

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return int(num_tokens * (1 - self.ratio))

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None, context: MaskContext) -> Tensor:
        n = math.prod(grid)
        first = _earlier_plan(context, self.source, "ConsecutiveKeepMasking")
        if first is None:
            return rng.rand(n)  # B×N
        k, size = context.branch, first.keep.shape[1]
        if (k + 1) * size > n:
            raise ValueError(f"ConsecutiveKeepMasking: branch {k} would keep shuffle positions {k * size}.."
                             f"{(k + 1) * size - 1} of {n} tokens; lower the mask ratio or the number of branches")
        position = first.restore.to(rng.device)  # B×N: each token's position in branch 0's shuffle
        return torch.remainder(position - k * size, n).float()  # B×N, positions kK.. score 0..

    def __repr__(self) -> str:
        return f"ConsecutiveKeepMasking(ratio={self.ratio}, source={self.source})"
