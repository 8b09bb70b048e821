"""Masking variable-length sequences padded to a common length (`Tokens.valid`).

A batch of sequences with L_i real tokens, padded to N, still needs rectangular index sets
(`MaskPlan.keep` is B×Nv). The rule, exact per sample as LV-MAE's data loader is:

- sample i keeps `k_i = max(1, strategy.num_keep(L_i))` of its real tokens: the k_i real tokens with the
  smallest scores (the strategy's usual scores, drawn for all N positions);
- Nv = max_i k_i; sample i fills its Nv - k_i remaining keep slots with padding tokens
  (always possible: N - L_i >= Nv - k_i for a count that grows by at most one per token);
- every other token is hidden: first the remaining padding, then the L_i - k_i hidden real
  tokens in score order.

`MaskPlan.valid` carries the padding: `mask` / `loss_mask` are 0 there, so the loss never scores
padding, and the encoder is handed `valid` gathered at `keep` (`TransformerEncoder(valid=...)`)
so no token attends to a filler slot. Without padding the plan equals `plan_from_noise(scores,
num_keep(N))` exactly (same keep / hide order).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from anymae.core.masking.plan import MaskContext, MaskDraw, MaskPlan, SampleRNG, plan_from_noise

if TYPE_CHECKING:
    from anymae.core.masking.plan import MaskingStrategy


def plan_padded(scores: Tensor, valid: Tensor, num_keep: Tensor) -> MaskPlan:
    """The padding rule (module doc) for given scores.

    Args:
        scores: B×N float, small = kept (padding entries are ignored).
        valid: B×N bool, False at padding.
        num_keep: B long, real tokens each sample keeps (1 <= k_i < L_i).

    Returns:
        a `MaskPlan` with B×max(k) `keep` and `valid` set.
    """
    b, n = scores.shape
    if valid.shape != (b, n) or valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool tensor of shape {(b, n)}, got {valid.dtype} {tuple(valid.shape)}")
    lengths = valid.sum(1)  # B
    num_keep = num_keep.to(lengths.device)
    bad = ((num_keep < 1) | (num_keep >= lengths)).nonzero().flatten().tolist()
    if bad:
        i = bad[0]
        raise ValueError(
            f"sample {i} has {int(lengths[i])} real tokens and would keep {int(num_keep[i])}: a padded sequence "
            "needs at least one visible and one hidden real token (check the mask ratio and the shortest length)"
        )
    nv = int(num_keep.max())
    if bool((nv - num_keep > n - lengths).any()):
        raise ValueError(f"the masking's visible counts {num_keep.tolist()} cannot be padded to {nv} with lengths "
                         f"{lengths.tolist()} of {n}")
    ranked = torch.where(valid, scores.float(), torch.full_like(scores, math.inf, dtype=torch.float32))
    rank = torch.argsort(torch.argsort(ranked, dim=1), dim=1)  # B×N, real tokens ranked 0..L_i-1 by score
    kept = valid & (rank < num_keep[:, None])
    group = torch.where(kept, 0, torch.where(valid, 2, 1))  # kept real, padding, hidden real
    index = torch.arange(n, device=scores.device).expand(b, n)
    key = group * n + torch.where(valid, rank, index)  # B×N distinct int keys: the order above
    plan = plan_from_noise(key, nv)
    return MaskPlan(plan.keep, plan.hide, plan.restore, None, valid)


def padded_plan(
    strategy: MaskingStrategy,
    grid: tuple[int, ...],
    batch_size: int,
    valid: Tensor,
    *,
    device: torch.device | str,
    seeds: Tensor | None = None,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    coords: Tensor | None = None,
    context: MaskContext | None = None,
) -> MaskPlan:
    """`make_plan` for padded tokens: the strategy's scores (or the injected `noise`), then
    `plan_padded` with `k_i = max(1, strategy.num_keep(L_i, (L_i,)))`: a short sequence keeps at
    least one real token (LV-MAE's loader would leave a 2-segment window at ratio 0.7 with none,
    and its encoder with the cls token alone).

    Raises:
        ValueError for a strategy whose draw sets its own visible count or a loss set (their
        counts are for N tokens, not each sample's L_i), or a `valid` not shaped B×N.
    """
    n = math.prod(grid)
    if tuple(valid.shape) != (batch_size, n):
        raise ValueError(f"Tokens.valid has shape {tuple(valid.shape)}, expected {(batch_size, n)}")
    if noise is None:
        rng = SampleRNG(batch_size, seeds=seeds, generator=generator, device=device)
        if getattr(strategy, "reads_context", False):
            ctx = context if context is not None else MaskContext()
            drawn = strategy.noise(grid, rng, coords, ctx)  # type: ignore[call-arg]
        else:
            drawn = strategy.noise(grid, rng, coords)
        if isinstance(drawn, (tuple, MaskDraw)):
            raise ValueError(
                f"{type(strategy).__name__} sets its own visible count or a loss set, which padded sequences "
                "(Tokens.valid) do not support; use a strategy that only scores tokens"
            )
        noise = drawn
    elif noise.shape != (batch_size, n):
        raise ValueError(f"injected noise has shape {tuple(noise.shape)}, expected {(batch_size, n)}")
    lengths = valid.sum(1).tolist()
    counts = [max(1, strategy.num_keep(int(length), (int(length),))) for length in lengths]
    keep = torch.tensor(counts, dtype=torch.long)  # B
    return plan_padded(noise.to(valid.device), valid, keep)
