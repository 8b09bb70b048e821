"""Fine-tuning: recipe defaults, the classification objective (plain / mixup), a short run through the engine."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import TensorDataset

import anymae
from anymae.core.config import from_dict, to_dict
from anymae.datasets.image.synthetic import SyntheticImages
from anymae.tasks.train.checkpoint import load_checkpoint
from anymae.tasks.finetune.classifier import Classifier
from anymae.tasks.finetune.run import (
    ClassificationObjective,
    FinetuneConfig,
    classifier_from_config,
    finetune,
    mae_finetune_optim,
)
from anymae.tasks.train.config import RunConfig


pytestmark = pytest.mark.usefixtures("one_thread")


def _mae() -> anymae.MaskedAutoencoder:
    torch.manual_seed(0)
    return anymae.create_model("mae_vit_tiny_patch4", depth=2, decoder_depth=1)


def _cfg(num_classes: int = 4, **fields: object) -> FinetuneConfig:
    optim = dataclasses.replace(mae_finetune_optim(), epochs=4, warmup_epochs=1, batch_size=8, lr=2e-3)
    return FinetuneConfig(num_classes=num_classes, optim=optim, **fields)  # type: ignore[arg-type]


def _run_cfg(tmp_path: Path, **fields: object) -> RunConfig:
    return RunConfig(out_dir=str(tmp_path / "run"), device="cpu", num_workers=0, tensorboard=False, log_every=1,
                     **fields)  # type: ignore[arg-type]  # fmt: skip


def _separable(n: int, seed: int, num_classes: int = 4, shift: float = 3.0) -> TensorDataset:
    """SyntheticImages gratings plus a class-dependent offset of the red channel: separable by its mean."""
    data = SyntheticImages(n, 32, num_classes, seed=seed)
    x = data.images.clone()  # n×3×32×32
    x[:, 0] += shift * (data.labels.float() - (num_classes - 1) / 2)[:, None, None]
    return TensorDataset(x, data.labels)


def _batch(n: int = 6, num_classes: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = SyntheticImages(n, 32, num_classes, seed=3)
    return data.images.clone(), data.labels.clone(), torch.arange(100, 100 + n, dtype=torch.long)


def test_defaults_are_the_mae_vit_b_recipe_and_round_trip_through_config() -> None:
    cfg = FinetuneConfig(num_classes=1000)
    o = cfg.optim
    assert (o.blr, o.layer_decay, o.weight_decay, tuple(o.betas)) == (5e-4, 0.65, 0.05, (0.9, 0.999))
    assert (o.epochs, o.warmup_epochs, o.min_lr, o.decay_tokens) == (100, 5, 1e-6, False)
    assert (cfg.drop_path, cfg.mixup, cfg.cutmix, cfg.label_smoothing, cfg.pool) == (0.1, 0.8, 1.0, 0.1, "mean")
    assert from_dict(FinetuneConfig, to_dict(cfg)) == cfg


def test_bad_config_values_are_named() -> None:
    with pytest.raises(ValueError, match="batch_size must be even, got 7"):
        FinetuneConfig(num_classes=3, optim=dataclasses.replace(mae_finetune_optim(), batch_size=7))
    FinetuneConfig(num_classes=3, mixup=0, cutmix=0, optim=dataclasses.replace(mae_finetune_optim(), batch_size=7))
    with pytest.raises(ValueError, match=r"FinetuneConfig.label_smoothing=1.0: expected in \[0, 1\)"):
        FinetuneConfig(num_classes=3, label_smoothing=1.0)
    with pytest.raises(ValueError, match="FinetuneConfig.pool='median'"):  # 'max' is a pool since the one vocabulary
        FinetuneConfig(num_classes=3, pool="median")  # type: ignore[arg-type]


def test_plain_objective_is_label_smoothed_cross_entropy() -> None:
    clf = Classifier.from_mae(_mae(), 4).eval()
    x, y, seeds = _batch()
    objective = ClassificationObjective(_cfg(mixup=0.0, cutmix=0.0, label_smoothing=0.2))
    loss, _ = objective(clf, (x, y, seeds))
    with torch.no_grad():
        logp = F.log_softmax(clf(x), dim=-1)  # B×C
    expected = 0.8 * F.nll_loss(logp, y) + 0.2 * (-logp.mean(dim=-1)).mean()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"labels must be in \[0, num_classes=4\), got values in \[0, 4\]"):
        objective(clf, (x, torch.tensor([0, 1, 2, 3, 4, 0]), seeds))


def test_mixup_loss_is_soft_target_ce_on_the_mixed_batch_and_targets() -> None:
    clf = Classifier.from_mae(_mae(), 4).eval()
    x, y, seeds = _batch()
    objective = ClassificationObjective(_cfg(mixup=0.8, cutmix=0.0, label_smoothing=0.1))
    np_state = np.random.get_state()
    loss, _ = objective(clf, (x.clone(), y, seeds))
    assert np.array_equal(np.random.get_state()[1], np_state[1])  # numpy's global RNG is left alone
    mixed, target = objective.mix(x.clone(), y, seeds)  # same seeds -> same mixing
    # mixup: mixed = λ x + (1 - λ) x.flip(0); recover λ and rebuild the soft targets
    other = x.flip(0)
    lam = float(((mixed - other) * (x - other)).sum() / ((x - other) ** 2).sum())
    assert 0.0 < lam < 1.0 and lam != pytest.approx(1.0)
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * other, rtol=1e-4, atol=1e-5)
    smooth = F.one_hot(y, 4).float() * 0.9 + 0.1 / 4  # B×C label-smoothed one-hot
    torch.testing.assert_close(target, lam * smooth + (1 - lam) * smooth.flip(0), rtol=1e-4, atol=1e-5)
    assert target.shape == (6, 4) and bool((target.max(dim=1).values < 0.9).all())  # soft, not one-hot
    torch.testing.assert_close(target.sum(dim=1), torch.ones(6))
    with torch.no_grad():
        expected = (-target * F.log_softmax(clf(mixed), dim=-1)).sum(dim=-1).mean()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    other_mix, _ = objective.mix(x.clone(), y, seeds + 1)
    assert not torch.allclose(other_mix, mixed)  # other seeds, other λ


def test_cutmix_refuses_inputs_that_are_not_bchw() -> None:
    objective = ClassificationObjective(_cfg(mixup=0.0, cutmix=1.0))
    clips = torch.zeros(2, 3, 4, 8, 8)  # B×C×T×H×W
    labels, seeds = torch.tensor([0, 1]), torch.tensor([1, 2])
    with pytest.raises(ValueError, match=r"cutmix=1.0 cuts boxes in B×C×H×W inputs, got .* \(2, 3, 4, 8, 8\)"):
        objective.mix(clips, labels, seeds)
    mixed, target = ClassificationObjective(_cfg(mixup=0.8, cutmix=0.0)).mix(clips + 1, labels, seeds)
    assert mixed.shape == clips.shape and target.shape == (2, 4)  # mixup alone works on any tensor


def test_short_finetune_beats_chance_and_loss_decreases(tmp_path: Path) -> None:
    cfg = _cfg(num_classes=4, mixup=0.0, cutmix=0.0)
    clf = classifier_from_config(_mae(), cfg)
    result = finetune(clf, _separable(32, seed=0), _separable(64, seed=1), cfg, _run_cfg(tmp_path))
    with open(result.train.out_dir / "metrics.csv", newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 16 and result.train.step == 16  # 4 epochs × 32 // 8
    assert sum(losses[-3:]) < 0.75 * sum(losses[:3])
    assert result.top1 > 70.0  # chance is 25%
    assert result.num_val == 64 and "final-epoch top-1 on val" in result.protocol
    saved = load_checkpoint(result.train.checkpoint)
    assert saved["model"].keys() == clf.state_dict().keys()
    assert saved["config"]["finetune"]["num_classes"] == 4
    written = yaml.safe_load((result.train.out_dir / "config.yaml").read_text())
    assert written["task"] == "finetune" and written["model"]["pool"] == "mean"


def test_finetune_with_mixup_and_cutmix_runs_and_checks_the_classifier(tmp_path: Path) -> None:
    cfg = _cfg(num_classes=4)  # mixup 0.8, cutmix 1.0, smoothing 0.1
    result = finetune(classifier_from_config(_mae(), cfg), _separable(16, 0), _separable(8, 1), cfg,
                      _run_cfg(tmp_path, max_steps=2))  # fmt: skip
    assert result.train.step == 2 and np.isfinite(result.train.last_loss)
    assert 0.0 <= result.top1 <= 100.0
    wrong = Classifier.from_mae(_mae(), 4, drop_path=0.0)
    with pytest.raises(ValueError, match="drop_path: classifier 0.0 vs config 0.1"):
        finetune(wrong, _separable(16, 0), _separable(8, 1), cfg, _run_cfg(tmp_path / "b"))
