"""Strategies on a (T, ...) token grid whose first axis is time: VideoMAE's tubes, VideoMAE V2's running cells."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from anymae.core.config import FieldError
from anymae.core.masking.plan import MASKINGS, SampleRNG, check_ratio


def _split_time(grid: tuple[int, ...], who: str) -> tuple[int, int]:
    """(T, S): the first axis of `grid` is time, the rest one spatial slot per token."""
    if len(grid) < 2:
        raise ValueError(f"{who} needs a token grid (T, ...spatial), got grid {grid}")
    return grid[0], math.prod(grid[1:])


@MASKINGS.register("tube")
class TubeMasking:
    """Tube masking (VideoMAE's `TubeMaskingGenerator`): one spatial mask repeated over time.

    On a (T, H, W) grid (any grid whose first axis is time) every temporal slot hides the same
    `int(ratio * S)` of its S = H·W spatial positions, so `num_keep = T * (S - int(ratio * S))`
    (VideoMAE at 0.9 on 8×14×14: 176 hidden and 20 kept per slot, 160 visible of 1568). The
    noise is one uniform draw per spatial position, repeated over T: the argsort primitive then
    keeps whole tubes.
    """

    def __init__(self, ratio: float = 0.9) -> None:
        self.ratio = check_ratio(ratio)

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        if grid is None:
            raise ValueError("TubeMasking needs the token grid (T, H, W) to count kept tokens")
        t, s = _split_time(grid, "TubeMasking")
        return t * (s - int(self.ratio * s))

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        t, s = _split_time(grid, "TubeMasking")
        return rng.rand(s).repeat(1, t)  # B×S -> B×(T·S), time-major as the token order


@MASKINGS.register("running_cell")
class RunningCellMasking:
    """VideoMAE V2's decoder mask (`RunningCellMaskingGenerator`): a running 2×2 cell pattern.

    Each 2×2 spatial cell holds the 4-slot queue `[1]*m + [0]*(4-m)` with m = int(4 * ratio)
    (1 = dropped from the decoder; ratio 0.5 -> [1, 1, 0, 0]). For phase p (one of 4, drawn per
    sample) temporal slot t reads the queue rotated by p + t + 1 (the reference advances the
    pointer before reading), laid out row-major on the cell and tiled over the (H, W) grid. Kept
    tokens (small noise) are the 0 entries: exactly `T * (H/2)(W/2) * (4 - m)` per sample.
    Used as `MaskedAutoencoder(decoder_masking=...)`: the decoder predicts the kept tokens.
    """

    def __init__(self, ratio: float = 0.5) -> None:
        self.ratio = check_ratio(ratio)
        self.num_masks = int(4 * self.ratio)
        if not 0 < self.num_masks < 4:
            raise FieldError(None, ratio, "a mask ratio with 0 < int(4 * ratio) < 4 (running-cell masking)")

    def _check_grid(self, grid: tuple[int, ...] | None) -> tuple[int, int, int]:
        if grid is None or len(grid) != 3 or grid[1] % 2 or grid[2] % 2:
            raise ValueError(f"RunningCellMasking needs a (T, H, W) grid with even H and W, got {grid}")
        return grid[0], grid[1], grid[2]

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        t, h, w = self._check_grid(grid)
        return t * (h // 2) * (w // 2) * (4 - self.num_masks)

    def maps(self, grid: tuple[int, ...]) -> Tensor:
        """4×N: the drop map (1 = dropped) of each phase, in token order."""
        t, h, w = self._check_grid(grid)
        queue = torch.tensor([1.0] * self.num_masks + [0.0] * (4 - self.num_masks))  # 4
        phase = torch.arange(4)[:, None, None] + torch.arange(t)[None, :, None] + 1  # 4×T×1
        cells = queue[(torch.arange(4)[None, None, :] + phase) % 4]  # 4×T×4 (cell row-major)
        cells = cells.view(4, t, 2, 2).repeat(1, 1, h // 2, w // 2)  # 4×T×H×W (np.tile)
        return cells.flatten(1)  # 4×N

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        maps = self.maps(grid).to(rng.device)  # 4×N
        u = rng.rand(1 + math.prod(grid))  # B×(1+N): the phase draw, then a tie-breaker per token
        phase = (u[:, 0] * 4).long().clamp(max=3)  # B
        return maps[phase] + 0.5 * u[:, 1:]  # B×N: dropped tokens score in [1, 1.5), kept in [0, 0.5)
