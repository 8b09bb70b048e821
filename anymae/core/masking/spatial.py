"""Strategies on any token layout: uniform random, BEiT blocks, Point-MAE's nearest-anchor block, Audio-MAE lines."""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import Tensor

from anymae.core.masking.plan import MASKINGS, SampleRNG, check_ratio


@MASKINGS.register("random")
class RandomMasking:
    """Uniform random masking.

    The references round differently: MAE / Audio-MAE / ChA-MAEViT keep `int(N * (1 - ratio))`
    tokens (`count="keep"`; 196 at 0.75 -> 49 kept), Point-MAE's `rand` and GraphMAE hide
    `int(N * ratio)` (`count="hide"`, registered as "random_hide"; 64 at 0.6 -> 38 hidden, 26
    kept, where MAE's rounding keeps 25). The draw is the same: uniform noise, so the hidden set
    and its order (`MaskPlan.hide`) are a uniform random permutation, as `randperm` is.
    """

    def __init__(self, ratio: float = 0.75, *, count: Literal["keep", "hide"] = "keep") -> None:
        self.ratio = check_ratio(ratio)
        if count not in ("keep", "hide"):
            raise ValueError(f"RandomMasking count={count!r}: expected 'keep' or 'hide'")
        self.count = count

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        if self.count == "hide":
            return num_tokens - int(num_tokens * self.ratio)
        return int(num_tokens * (1 - self.ratio))

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        return rng.rand(math.prod(grid))


MASKINGS.register("random_hide", functools.partial(RandomMasking, count="hide"))


@MASKINGS.register("block")
class BlockMasking:
    """BEiT-style block-wise masking on a 2-D grid.

    Rectangles of random area (>= `min_block` tokens, at most what is still to hide) and aspect
    ratio in [min_aspect, 1/min_aspect] are hidden until the target count is reached, as BEiT's
    generator does; a shortfall (when no further block fits) is filled with random tokens so that
    every sample hides exactly `N - num_keep` tokens. Block tokens score in [1, 2), the rest in
    [0, 1), so the argsort primitive hides blocks first.
    """

    def __init__(
        self, ratio: float = 0.4, *, min_block: int = 16, min_aspect: float = 0.3, max_tries: int = 10
    ) -> None:
        self.ratio = check_ratio(ratio)
        self.min_block = min_block
        self.log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
        self.max_tries = max_tries

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return num_tokens - int(num_tokens * self.ratio)

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        if len(grid) != 2:
            raise ValueError(f"BlockMasking needs a 2-D token grid, got grid {grid}")
        h, w = grid
        target = int(h * w * self.ratio)
        blocks = torch.stack(
            [self._sample_blocks(h, w, target, rng.sample_generator(i)) for i in range(rng.batch_size)]
        ).to(rng.device)  # B×h×w in {0, 1}
        return blocks.flatten(1) + rng.rand(h * w)  # B×N

    def _sample_blocks(self, h: int, w: int, target: int, gen: torch.Generator) -> Tensor:
        mask = torch.zeros(h, w)
        count = 0
        while count < target:
            remaining = target - count
            added = 0
            for _ in range(self.max_tries):
                u = torch.rand(2, generator=gen).tolist()
                area = self.min_block + u[0] * (remaining - self.min_block)  # BEiT: uniform(min, remaining)
                aspect = math.exp(self.log_aspect[0] + u[1] * (self.log_aspect[1] - self.log_aspect[0]))
                bh, bw = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
                if not (0 < bh < h and 0 < bw < w):  # strict, as BEiT
                    continue
                top = int(torch.randint(0, h - bh + 1, (1,), generator=gen))
                left = int(torch.randint(0, w - bw + 1, (1,), generator=gen))
                patch = mask[top : top + bh, left : left + bw]
                new = int((patch == 0).sum())
                if 0 < new <= remaining:
                    patch.fill_(1.0)
                    added = new
                    break
            if added == 0:
                break
            count += added
        return mask


@MASKINGS.register("nearest_anchor")
class NearestAnchorMasking:
    """Hide the `int(N * ratio)` tokens nearest to a random anchor token, in token coordinates.

    Point-MAE's `block` mask (`_mask_center_block`): one anchor group center drawn uniformly per
    sample, Euclidean distances of all centers to it, the nearest `int(ratio * G)` hidden (the
    anchor first). Needs `coords` (B×N×k, e.g. point-cloud group centers). The noise is the
    negated distance, so the argsort primitive keeps the farthest tokens; exact distance ties
    may be broken differently from the reference's argsort.
    """

    def __init__(self, ratio: float = 0.6) -> None:
        self.ratio = check_ratio(ratio)

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return num_tokens - int(num_tokens * self.ratio)

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        n = math.prod(grid)
        if coords is None or coords.ndim != 3 or coords.shape[1] != n:
            got = None if coords is None else tuple(coords.shape)
            raise ValueError(f"NearestAnchorMasking needs token coordinates B×{n}×k, got {got}")
        anchor = (rng.rand(1)[:, 0] * n).long().clamp(max=n - 1).to(coords.device)  # B
        rows = torch.arange(coords.shape[0], device=coords.device)
        dist = (coords - coords[rows, anchor].unsqueeze(1)).float().norm(dim=-1)  # B×N
        return (-dist).to(rng.device)


@MASKINGS.register("grid_lines")
class GridLineMasking:
    """Hide whole rows and whole columns of a 2-D token grid (Audio-MAE's `mask_2d`).

    Audio-MAE's `random_masking_2d` (models_mae.py) on its 64 (time) × 8 (frequency) grid: keep
    `int(T·(1 - ratio))` rows (time steps) and `int(F·(1 - col_ratio))` columns (frequency bands),
    each chosen as the smallest of per-sample uniform noise (rows drawn first, then columns); a
    token is visible only if both its row and its column are kept, so `num_keep` is the product
    (pretraining t 0.7, f 0.3: 19 × 5 = 95 of 512 visible). Visible and hidden tokens are ordered
    by grid index, as the reference's `argsort(index + 999·mask)`.

    `ratio` is the share of hidden rows (grid axis 0, time for spectrograms), `col_ratio` that of
    hidden columns (axis 1, frequency); `col_ratio` defaults to `ratio`.
    """

    def __init__(self, ratio: float = 0.7, *, col_ratio: float | None = None) -> None:
        self.ratio = check_ratio(ratio)
        self.col_ratio = self.ratio if col_ratio is None else check_ratio(col_ratio)

    def _kept(self, grid: tuple[int, ...] | None) -> tuple[int, int]:
        if grid is None or len(grid) != 2:
            raise ValueError(f"GridLineMasking needs a 2-D token grid, got grid {grid}")
        return int(grid[0] * (1 - self.ratio)), int(grid[1] * (1 - self.col_ratio))

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        rows, cols = self._kept(grid)
        return rows * cols

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        keep_rows, keep_cols = self._kept(grid)
        h, w = grid
        def hidden_lines(n: int, keep: int) -> Tensor:  # B×n, 1 = hidden line
            order = torch.argsort(rng.rand(n), dim=1)  # B×n, small noise kept
            return torch.ones_like(order, dtype=torch.float32).scatter(1, order[:, :keep], 0.0)
        rows, cols = hidden_lines(h, keep_rows), hidden_lines(w, keep_cols)  # B×h, B×w
        hidden = 1 - (1 - rows[:, :, None]) * (1 - cols[:, None, :])  # B×h×w
        index = torch.arange(h * w, device=hidden.device, dtype=torch.float32) / (h * w)  # N, in [0, 1)
        return hidden.flatten(1) + index  # B×N: visible in grid order, then hidden in grid order


@MASKINGS.register("random_cells")
class CellMasking:
    """SimMIM's `MaskGenerator`: random masking of `cell`×`cell` blocks of tokens on a 2-D grid.

    The (H/cell)×(W/cell) cells are masked at random, `ceil(cells · ratio)` of them (SimMIM's
    rounding: 32-px cells of a 224-px ViT-B/16 input, 7×7 = 49 cells, 30 hidden -> 120 of 196
    tokens; DMJD's `block`), each hidden cell hiding its cell² tokens. A cell's tokens share its
    uniform draw's rank, plus a tie-break by token index below 1, so the argsort primitive keeps whole cells.
    """

    def __init__(self, ratio: float = 0.6, *, cell: int = 2) -> None:
        self.ratio = check_ratio(ratio)
        if cell < 1:
            raise ValueError(f"CellMasking cell={cell}: expected a cell side >= 1 (tokens)")
        self.cell = int(cell)

    def _cells(self, grid: tuple[int, ...] | None) -> tuple[int, int]:
        c = self.cell
        if grid is None or len(grid) != 2 or grid[0] % c or grid[1] % c:
            raise ValueError(f"CellMasking needs a 2-D token grid divisible by cell={c}, got grid {grid}")
        return grid[0] // c, grid[1] // c

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        ch, cw = self._cells(grid)
        return (ch * cw - math.ceil(ch * cw * self.ratio)) * self.cell**2

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        ch, cw = self._cells(grid)
        c, n = self.cell, math.prod(grid)
        u = rng.rand(ch * cw)  # B×cells, one draw per cell
        rank = torch.argsort(torch.argsort(u, dim=1), dim=1).float().view(-1, ch, cw)  # B×ch×cw in 0..cells-1
        per_token = rank.repeat_interleave(c, dim=1).repeat_interleave(c, dim=2)  # B×H×W
        tie = torch.arange(n, device=u.device, dtype=torch.float32) / n  # in [0, 1): whole cells stay together
        return per_token.flatten(1) + tie
