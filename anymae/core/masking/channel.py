"""Strategies on a (C, ...) token grid whose first axis is the channel: ChA-MAEViT's dynamic channel & patch masking."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from anymae.core.masking.plan import MASKINGS, SampleRNG, check_ratio


@MASKINGS.register("dcp")
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
        self.ratio = check_ratio(ratio)
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
