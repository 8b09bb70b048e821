"""MAE linear probe: schedule, head, learning on clusters, seeding, and final vs best-on-val."""

from __future__ import annotations

import math

import pytest
import torch

from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.linear import linear_head, linear_probe
from anymae.tasks.train.schedule import lr_at as _lr_at


def lr_at(step, steps_per_epoch, lr, epochs, warmup_epochs):
    return _lr_at(step, lr=lr, min_lr=0.0, warmup_epochs=warmup_epochs, epochs=epochs, iters_per_epoch=steps_per_epoch)


def _clusters(n: int, seed: int, d: int = 16, c: int = 4) -> FeatureSet:
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(c, d, generator=torch.Generator().manual_seed(99)) * 1.5
    y = torch.randint(0, c, (n,), generator=gen)
    return FeatureSet(centers[y] + torch.randn(n, d, generator=gen) + 5.0, y)


def test_schedule_warmup_then_half_cosine() -> None:
    # 10 steps per epoch, 10 epochs, 2 warmup epochs, peak 1.0
    assert lr_at(0, 10, 1.0, 10, 2) == 0.0
    assert lr_at(10, 10, 1.0, 10, 2) == pytest.approx(0.5)
    assert lr_at(20, 10, 1.0, 10, 2) == pytest.approx(1.0)
    assert lr_at(60, 10, 1.0, 10, 2) == pytest.approx(0.5)  # halfway through the cosine
    assert lr_at(40, 10, 1.0, 10, 2) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(100, 10, 1.0, 10, 0) == pytest.approx(0.0, abs=1e-12)


def test_head_is_bn_without_affine_then_linear() -> None:
    torch.manual_seed(0)
    head = linear_head(64, 10)
    bn, linear = head
    assert isinstance(bn, torch.nn.BatchNorm1d) and not bn.affine and bn.eps == 1e-6
    assert linear.weight.shape == (10, 64) and torch.all(linear.bias == 0)
    assert 0.008 < float(linear.weight.detach().std()) < 0.011  # trunc_normal std 0.01 (cut at ±2)
    assert float(linear.weight.detach().abs().max()) <= 2.0


# LARS' trust ratio (0.001 * ||w|| / ||g||) needs many steps at a large lr (the reference runs
# lr 6.4 for ~7000 steps), so the tiny LARS case gets a large blr and more epochs.
@pytest.mark.parametrize(("optimizer", "blr", "epochs"), [("adamw", None, 6), ("lars", 100.0, 20)])
def test_learns_separable_clusters(optimizer: str, blr: float | None, epochs: int) -> None:
    train, test = _clusters(256, 0), _clusters(128, 1)
    result = linear_probe(
        train, test, epochs=epochs, batch_size=64, warmup_epochs=1,
        optimizer=optimizer, blr=blr,  # type: ignore[arg-type]
    )
    assert result.top1 >= 95.0
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_val_top1 is None and result.test_top1_at_best_val is None
    assert "final-epoch" in result.protocol and optimizer in result.protocol


def test_same_seed_same_result_and_global_rng_untouched() -> None:
    train, test = _clusters(128, 0), _clusters(64, 1)
    state = torch.get_rng_state()
    a = linear_probe(train, test, epochs=2, batch_size=32, warmup_epochs=1, optimizer="adamw", seed=3)
    assert torch.equal(state, torch.get_rng_state())
    b = linear_probe(train, test, epochs=2, batch_size=32, warmup_epochs=1, optimizer="adamw", seed=3)
    c = linear_probe(train, test, epochs=2, batch_size=32, warmup_epochs=1, optimizer="adamw", seed=4)
    assert a.history == b.history and a.top1 == b.top1
    assert a.history != c.history


def test_best_epoch_is_chosen_on_val_and_scored_on_test() -> None:
    train, test = _clusters(128, 0), _clusters(64, 1)
    # val = test makes the check exact: the best-val head scored on test equals its val score.
    result = linear_probe(train, test, epochs=4, batch_size=32, warmup_epochs=1, optimizer="adamw", blr=3e-3, val=test)
    val_curve = [h["val_top1"] for h in result.history]
    assert result.best_val_top1 == max(val_curve)
    assert result.best_val_epoch == val_curve.index(max(val_curve))
    assert result.test_top1_at_best_val == result.best_val_top1
    assert result.top1 == val_curve[-1]  # final-epoch number is the last epoch's, not the best
    assert result.best_val_epoch < 3 and result.best_val_top1 > result.top1  # this run peaks early


def test_bad_input_names_the_problem() -> None:
    train, test = _clusters(32, 0), _clusters(16, 1)
    tokens = FeatureSet(torch.zeros(8, 3, 16), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="pooling 'cls' or 'mean'"):
        linear_probe(tokens, test)
    with pytest.raises(ValueError, match="width"):
        linear_probe(train, FeatureSet(torch.zeros(4, 8), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match="optimizer"):
        linear_probe(train, test, optimizer="sgd")  # type: ignore[arg-type]


def test_selection_uses_val_never_test() -> None:
    train, test = _clusters(256, 0), _clusters(128, 1)
    # A val set whose labels are shifted by one class rewards the *worst* classifier of the run:
    # selection on it must pick an early, poor epoch, and that head is what gets scored on test.
    misleading = FeatureSet(test.features, (test.labels + 1) % 4)
    result = linear_probe(train, test, epochs=6, batch_size=64, warmup_epochs=1, optimizer="adamw", val=misleading)
    assert result.top1 >= 95.0
    assert result.best_val_epoch is not None and result.best_val_epoch < 5
    assert result.test_top1_at_best_val is not None and result.test_top1_at_best_val < result.top1 - 20


def test_the_default_optimizer_works_at_small_data_sizes_where_the_papers_lars_does_not() -> None:
    # 300 samples, batch 256: one step per epoch, 90 steps, far from LARS' 16k-sample batches
    train, test = _clusters(300, 0, d=32, c=10), _clusters(200, 1, d=32, c=10)
    default = linear_probe(train, test)
    assert "; adamw blr=0.01 lr=0.01 (blr*batch/256) batch=256 epochs=90" in default.protocol
    assert default.top1 == linear_probe(train, test, optimizer="adamw", blr=1e-2).top1 >= 95.0
    lars = linear_probe(train, test, optimizer="lars")  # the paper's protocol: blr 0.1
    assert "lars blr=0.1" in lars.protocol and lars.top1 < 50.0
