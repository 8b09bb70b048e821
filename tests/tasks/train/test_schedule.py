from __future__ import annotations

import math

import pytest
import torch

from anymae.tasks.train.schedule import absolute_lr, lr_at, set_lr


def test_absolute_lr_is_the_linear_scaling_rule():
    assert absolute_lr(1.5e-4, 4096) == pytest.approx(2.4e-3)  # MAE recipe: 64 GPUs × 64
    assert absolute_lr(1e-3, 256) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="eff_batch=0"):
        absolute_lr(1e-3, 0)


def test_lr_at_hand_computed_values():
    kw = dict(lr=1.0, min_lr=0.1, warmup_epochs=2, epochs=10, iters_per_epoch=4)
    assert lr_at(0, **kw) == 0.0  # warmup starts at 0
    assert lr_at(3, **kw) == pytest.approx(0.375)  # epoch 0.75 of 2
    assert lr_at(4, **kw) == pytest.approx(0.5)  # epoch 1
    assert lr_at(8, **kw) == pytest.approx(1.0)  # end of warmup: the peak
    assert lr_at(24, **kw) == pytest.approx(0.55)  # epoch 6: half way down the cosine, 0.1 + 0.9/2
    assert lr_at(36, **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 7 / 8)))  # epoch 9
    assert lr_at(40, **kw) == pytest.approx(0.1)  # epoch 10: min_lr
    assert lr_at(0, **{**kw, "warmup_epochs": 0}) == pytest.approx(1.0)  # no warmup


def _mae_adjust_learning_rate(epoch: float, lr: float, min_lr: float, warmup: float, epochs: float) -> float:
    """MAE's util/lr_sched.adjust_learning_rate, transcribed."""
    if epoch < warmup:
        return lr * epoch / warmup
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup)))


def test_lr_at_matches_mae_with_gradient_accumulation():
    # MAE calls the schedule at every accum_iter-th loader step with epoch = step / len(loader) + e.
    accum, loader_len, epochs = 2, 10, 3
    for e in range(epochs):
        for data_step in range(0, loader_len, accum):
            want = _mae_adjust_learning_rate(data_step / loader_len + e, 2e-3, 1e-5, 1, epochs)
            it = e * (loader_len // accum) + data_step // accum
            got = lr_at(it, lr=2e-3, min_lr=1e-5, warmup_epochs=1, epochs=epochs, iters_per_epoch=loader_len // accum)
            assert got == pytest.approx(want, rel=1e-12)


def test_set_lr_multiplies_each_group_scale():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [p1], "lr_scale": 0.25}, {"params": [p2]}], lr=1.0)
    set_lr(opt, 0.8)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.2), pytest.approx(0.8)]
