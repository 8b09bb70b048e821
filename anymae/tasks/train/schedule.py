"""Learning-rate scaling and MAE's per-iteration warmup + half-cycle cosine schedule.

The schedule is a pure function of the iteration index, so a resumed run gets the same lr
without saving any scheduler state.
"""

from __future__ import annotations

import math

import torch


def absolute_lr(blr: float, eff_batch: int) -> float:
    """The linear scaling rule: ``blr * eff_batch / 256``.

    Args:
        blr: base lr (per 256 samples).
        eff_batch: samples per optimizer step = batch_size × accum_iter × world_size.
    """
    if eff_batch < 1:
        raise ValueError(f"eff_batch={eff_batch}: expected >= 1")
    return blr * eff_batch / 256


def lr_at(
    it: int, *, lr: float, min_lr: float, warmup_epochs: float, epochs: float, iters_per_epoch: int
) -> float:
    """The lr of optimizer iteration ``it`` (0-based), as MAE's ``util/lr_sched.adjust_learning_rate``.

    MAE works in fractional epochs, ``epoch = it / iters_per_epoch``: linear warmup from 0 to
    ``lr`` over ``warmup_epochs``, then a half-cycle cosine from ``lr`` down to ``min_lr`` at
    ``epochs``.
    """
    if iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch={iters_per_epoch}: expected >= 1")
    epoch = it / iters_per_epoch
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    span = epochs - warmup_epochs
    progress = (epoch - warmup_epochs) / span if span > 0 else 1.0
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every param group's lr to ``lr`` times its ``lr_scale`` (1 when absent)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
