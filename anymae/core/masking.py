"""Masking: one argsort-over-noise primitive, and strategies that make the noise.

Every strategy answers two questions: how many tokens stay visible (`num_keep`), and which ones
(`noise`: per-sample scores, the smallest are kept). `plan_from_noise` turns scores into index
sets exactly as the reference MAE does (`ids_shuffle = argsort(noise)`, keep the first
`num_keep`, `ids_restore = argsort(ids_shuffle)`), so every strategy gets keep / hide / restore
indices, works batched on any device, and can be driven by injected noise in tests.

Randomness comes from a `SampleRNG`: with per-sample seeds a sample's mask depends only on its
seed (the same mask whatever batch or rank it lands in, which makes resume and DDP exact);
without seeds the global torch generator (or a given one) draws for the whole batch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, Sequence

import torch
from torch import Tensor


@dataclass
class MaskPlan:
    """Which tokens the encoder sees.

    Attributes:
        keep: B×Nv long, indices of visible tokens (in shuffled order).
        hide: B×Nm long, indices of hidden tokens (in shuffled order).
        restore: B×N long, `argsort` of the shuffle: `cat([keep, hide], 1)` gathered with
            `restore` gives `arange(N)` per sample.
    """

    keep: Tensor
    hide: Tensor
    restore: Tensor

    @property
    def num_tokens(self) -> int:
        return self.restore.shape[1]

    @property
    def mask(self) -> Tensor:
        """B×N float, 1 where the token is hidden from the encoder, in original token order."""
        mask = torch.ones_like(self.restore, dtype=torch.float32)
        return mask.scatter(1, self.keep, 0.0)


def plan_from_noise(noise: Tensor, num_keep: int) -> MaskPlan:
    """The masking primitive: keep the `num_keep` tokens with the smallest noise per sample.

    Args:
        noise: B×N scores (any float dtype, any device).
        num_keep: visible tokens per sample, 1 <= num_keep < N.
    """
    n = noise.shape[1]
    if not 0 < num_keep < n:
        raise ValueError(
            f"num_keep={num_keep} leaves no visible or no hidden token out of {n}; "
            f"expected 1 <= num_keep <= {n - 1} (check the mask ratio)"
        )
    shuffle = torch.argsort(noise, dim=1)  # B×N, ascending: small noise is kept
    restore = torch.argsort(shuffle, dim=1)  # B×N
    return MaskPlan(keep=shuffle[:, :num_keep], hide=shuffle[:, num_keep:], restore=restore)


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """Select tokens per sample. x: B×N×D (or B×1×D... broadcast over B), index: B×M -> B×M×D."""
    if x.shape[0] != index.shape[0]:
        x = x.expand(index.shape[0], *x.shape[1:])
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class SampleRNG:
    """Uniform random numbers for a batch, per-sample reproducible when seeds are given.

    Args:
        batch_size: B.
        seeds: optional B int64 seeds; sample i draws from `torch.Generator().manual_seed(seeds[i])`.
        generator: optional generator for the batched path (ignored when seeds are given).
        device: where the results live.
    """

    def __init__(
        self,
        batch_size: int,
        *,
        seeds: Tensor | Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.generator = generator
        self._gens: list[torch.Generator] | None = None
        if seeds is not None:
            seeds = [int(s) for s in (seeds.tolist() if isinstance(seeds, Tensor) else seeds)]
            if len(seeds) != batch_size:
                raise ValueError(f"got {len(seeds)} seeds for a batch of {batch_size}")
            self._gens = [torch.Generator().manual_seed(s & 0x7FFF_FFFF_FFFF_FFFF) for s in seeds]

    def rand(self, *shape: int) -> Tensor:
        """B×shape uniform [0, 1) floats on `self.device`."""
        if self._gens is None:
            gen = self.generator
            dev = gen.device if gen is not None else self.device
            return torch.rand(self.batch_size, *shape, generator=gen, device=dev).to(self.device)
        rows = [torch.rand(*shape, generator=g) for g in self._gens]
        return torch.stack(rows).to(self.device)

    def sample_generator(self, i: int) -> torch.Generator:
        """A CPU generator for sample i, for strategies that draw in Python loops."""
        if self._gens is not None:
            return self._gens[i]
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator).item())
        return torch.Generator().manual_seed(seed)


class MaskingStrategy(Protocol):
    """A way to choose hidden tokens: a visible count and per-sample scores (small = kept)."""

    ratio: float

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        """Visible tokens per sample out of `num_tokens` (laid out on `grid` when given)."""
        ...

    def noise(
        self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None
    ) -> Tensor | tuple[Tensor, int]:
        """B×N scores for N = prod(grid) tokens laid out on `grid` (with optional B×N×k coords).

        A strategy whose visible count depends on its draw (DCP's per-step mode) returns
        `(scores, num_keep)`; `num_keep()` then only serves injected noise.
        """
        ...


def _check_ratio(ratio: float) -> float:
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
    return float(ratio)


class RandomMasking:
    """Uniform random masking.

    The references round differently: MAE / Audio-MAE / ChA-MAEViT keep `int(N * (1 - ratio))`
    tokens (`count="keep"`; 196 at 0.75 -> 49 kept), Point-MAE's `rand` and GraphMAE hide
    `int(N * ratio)` (`count="hide"`, registered as "random_hide"; 64 at 0.6 -> 38 hidden, 26
    kept, where MAE's rounding keeps 25). The draw is the same: uniform noise, so the hidden set
    and its order (`MaskPlan.hide`) are a uniform random permutation, as `randperm` is.
    """

    def __init__(self, ratio: float = 0.75, *, count: Literal["keep", "hide"] = "keep") -> None:
        self.ratio = _check_ratio(ratio)
        if count not in ("keep", "hide"):
            raise ValueError(f"RandomMasking count={count!r}: expected 'keep' or 'hide'")
        self.count = count

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        if self.count == "hide":
            return num_tokens - int(num_tokens * self.ratio)
        return int(num_tokens * (1 - self.ratio))

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        return rng.rand(math.prod(grid))


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
        self.ratio = _check_ratio(ratio)
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


def make_plan(
    strategy: MaskingStrategy,
    grid: tuple[int, ...],
    batch_size: int,
    *,
    device: torch.device | str,
    seeds: Tensor | None = None,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    coords: Tensor | None = None,
) -> MaskPlan:
    """Draw (or take the injected) noise for `grid` and turn it into a plan."""
    n = math.prod(grid)
    if noise is None:
        rng = SampleRNG(batch_size, seeds=seeds, generator=generator, device=device)
        drawn = strategy.noise(grid, rng, coords)
        if isinstance(drawn, tuple):  # (scores, visible count of this draw)
            return plan_from_noise(*drawn)
        noise = drawn
    elif noise.shape != (batch_size, n):
        raise ValueError(f"injected noise has shape {tuple(noise.shape)}, expected {(batch_size, n)}")
    return plan_from_noise(noise, strategy.num_keep(n, grid))


# name -> strategy class; a class takes the ratio first and its own options as keywords.
# Strategies added to this module register here, so configs can name them (`masking: tube`).
MASKINGS: dict[str, Callable[..., MaskingStrategy]] = {
    "random": RandomMasking,
    "random_hide": functools.partial(RandomMasking, count="hide"),
    "block": BlockMasking,
}


def make_masking(name: str, ratio: float, **params: Any) -> MaskingStrategy:
    """A masking strategy by name (`MASKINGS`), e.g. `make_masking("random", 0.75)`."""
    try:
        cls = MASKINGS[name]
    except KeyError:
        raise ValueError(f"masking={name!r}: expected one of {sorted(MASKINGS)}") from None
    return cls(ratio, **params)


def _split_time(grid: tuple[int, ...], who: str) -> tuple[int, int]:
    """(T, S): the first axis of `grid` is time, the rest one spatial slot per token."""
    if len(grid) < 2:
        raise ValueError(f"{who} needs a token grid (T, ...spatial), got grid {grid}")
    return grid[0], math.prod(grid[1:])


class TubeMasking:
    """Tube masking (VideoMAE's `TubeMaskingGenerator`): one spatial mask repeated over time.

    On a (T, H, W) grid (any grid whose first axis is time) every temporal slot hides the same
    `int(ratio * S)` of its S = H·W spatial positions, so `num_keep = T * (S - int(ratio * S))`
    (VideoMAE at 0.9 on 8×14×14: 176 hidden and 20 kept per slot, 160 visible of 1568). The
    noise is one uniform draw per spatial position, repeated over T: the argsort primitive then
    keeps whole tubes.
    """

    def __init__(self, ratio: float = 0.9) -> None:
        self.ratio = _check_ratio(ratio)

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        if grid is None:
            raise ValueError("TubeMasking needs the token grid (T, H, W) to count kept tokens")
        t, s = _split_time(grid, "TubeMasking")
        return t * (s - int(self.ratio * s))

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        t, s = _split_time(grid, "TubeMasking")
        return rng.rand(s).repeat(1, t)  # B×S -> B×(T·S), time-major as the token order


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
        self.ratio = _check_ratio(ratio)
        self.num_masks = int(4 * self.ratio)
        if not 0 < self.num_masks < 4:
            raise ValueError(f"running-cell masking needs 0 < int(4 * ratio) < 4, got ratio {ratio}")

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


MASKINGS["tube"] = TubeMasking
MASKINGS["running_cell"] = RunningCellMasking


class DynamicChannelPatchMasking:
    """Dynamic channel & patch masking (DCP, ChA-MAEViT; chaudatascience/cha_mae_vit).

    Tokens lie on a grid (C, ...) whose first axis is the channel (any group of tokens that may
    be hidden as a whole) and whose other axes are the P patches of one channel, channel-major.
    Once per batch one mode is drawn: "patch" with probability `p_patch`, "channel" with
    `p_channel`, "both" otherwise (alternate: p_patch = p_channel = 0.5; combination:
    p_patch = p_channel = 0). As the reference counts:

    - patch: every channel keeps `int((1 - ratio) * P)` patches (own random choice per sample
      and channel), so `num_keep = C * int((1 - ratio) * P)`;
    - channel: k whole channels are hidden, k uniform in [1, C - 1] (the same channels for the
      whole batch, as the reference's equal-channel case), `num_keep = (C - k) * P`;
    - both: k uniform in [lo, C - 1] channels hidden (lo = 1 with `at_least_one_channel`, else 0)
      plus the per-channel patch mask on the others, `num_keep = (C - k) * int((1 - ratio) * P)`.

    Batch-level draws (mode, k, which channels) come from the per-sample generators: each
    sample draws uniforms and the batch value is the fractional part of their sum (uniform,
    independent of the order of samples in the batch), so they are reproducible from the seeds.

    Deviations from the reference: in "channel" mode k >= 1 always (the reference may draw
    k = 0 when `at_least_one_channel` is off, skipping the decoder and scoring a zero MAE loss
    for that step; a plan here needs a hidden token). With one channel, "channel" mode is
    patch masking. Mixed channel counts within a batch (the reference's padding, value 99) are
    not supported: every sample has the same C.

    The visible count depends on the draw, so `noise` returns `(scores, num_keep)`; `num_keep`
    (used only with injected noise) returns the "patch" count.
    """

    MODES: tuple[str, ...] = ("patch", "channel", "both")

    def __init__(
        self, ratio: float = 0.75, *, p_patch: float = 0.5, p_channel: float = 0.5, at_least_one_channel: bool = False
    ) -> None:
        self.ratio = _check_ratio(ratio)
        if not (0.0 <= p_patch <= 1.0 and 0.0 <= p_channel <= 1.0 and p_patch + p_channel <= 1.0 + 1e-9):
            raise ValueError(
                f"DCP masking needs p_patch, p_channel in [0, 1] with p_patch + p_channel <= 1, "
                f"got p_patch={p_patch}, p_channel={p_channel}"
            )
        self.p_patch, self.p_channel = float(p_patch), float(p_channel)
        self.at_least_one_channel = bool(at_least_one_channel)
        self.last_mode: str | None = None
        self.last_hidden_channels: list[int] = []

    @staticmethod
    def _split(grid: tuple[int, ...] | None) -> tuple[int, int]:
        if grid is None or len(grid) < 2:
            raise ValueError(f"DCP masking needs a token grid (C, ...patches), got grid {grid}")
        return grid[0], math.prod(grid[1:])

    def keep_per_channel(self, patches: int) -> int:
        """Patches kept per channel by the patch mask: `int((1 - ratio) * P)` (reference)."""
        return int((1 - self.ratio) * patches)

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        c, p = self._split(grid)
        return c * self.keep_per_channel(p)

    def draw_mode(self, u_mode: float, u_count: float, channels: int) -> tuple[str, int]:
        """(mode, number of hidden channels k) from two batch-level uniforms."""
        mode = "patch" if u_mode < self.p_patch else "channel" if u_mode < self.p_patch + self.p_channel else "both"
        lo = 1 if (self.at_least_one_channel or mode == "channel") else 0
        if channels - lo <= 0 or (mode == "channel" and channels < 2):
            return "patch", 0  # one channel: nothing to hide as a whole
        if mode == "patch":
            return mode, 0
        return mode, lo + min(int(u_count * (channels - lo)), channels - lo - 1)

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> tuple[Tensor, int]:
        """(B×N scores: visible in [0, 0.5), hidden in [1, 2.5); this draw's visible count)."""
        c, p = self._split(grid)
        batch_u = torch.remainder(rng.rand(2 + c).double().sum(0), 1.0)  # 2+C batch-level uniforms
        mode, k = self.draw_mode(float(batch_u[0]), float(batch_u[1]), c)
        hidden_channels = torch.argsort(batch_u[2:])[:k]  # the k channels hidden for the whole batch
        level = torch.zeros(rng.batch_size, c, p, device=rng.device)  # B×C×P, 0 = visible
        level[:, hidden_channels.to(rng.device)] += 1.0
        keep_pc = self.keep_per_channel(p)
        if mode != "channel":
            rank = torch.argsort(torch.argsort(rng.rand(c, p), dim=-1), dim=-1)  # B×C×P rank of the noise
            level += (rank >= keep_pc).float()  # per channel: the keep_pc smallest stay visible
        num_keep = (c - k) * (p if mode == "channel" else keep_pc)
        self.last_mode, self.last_hidden_channels = mode, sorted(hidden_channels.tolist())
        n = c * p
        tie = torch.arange(n, device=rng.device, dtype=torch.float32) / (2 * n)  # deterministic order in a level
        return level.flatten(1) + tie, num_keep


MASKINGS["dcp"] = DynamicChannelPatchMasking


class NearestAnchorMasking:
    """Hide the `int(N * ratio)` tokens nearest to a random anchor token, in token coordinates.

    Point-MAE's `block` mask (`_mask_center_block`): one anchor group center drawn uniformly per
    sample, Euclidean distances of all centers to it, the nearest `int(ratio * G)` hidden (the
    anchor first). Needs `coords` (B×N×k, e.g. point-cloud group centers). The noise is the
    negated distance, so the argsort primitive keeps the farthest tokens; exact distance ties
    may be broken differently from the reference's argsort.
    """

    def __init__(self, ratio: float = 0.6) -> None:
        self.ratio = _check_ratio(ratio)

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


MASKINGS["nearest_anchor"] = NearestAnchorMasking


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
        self.ratio = _check_ratio(ratio)
        self.col_ratio = self.ratio if col_ratio is None else _check_ratio(col_ratio)

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


MASKINGS["grid_lines"] = GridLineMasking
