"""Every loss part of a model reaches metrics.csv, TensorBoard and the progress bar, also across a resume."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from anymae.datasets.seeding import SeededSamples
from anymae.tasks.train.config import OptimConfig, RunConfig
from anymae.tasks.train.engine import pretrain_objective, train
from anymae.tasks.train.logging import read_metrics
from anymae.tasks.train.loader.sampler import ShardedBatchSampler

pytestmark = pytest.mark.usefixtures("one_thread")
N, BATCH, ACCUM, EPOCHS = 8, 2, 2, 2  # 2 optimizer steps per epoch, 4 in all


class Indexed(Dataset):
    """Item i: x = (i, i, i, i), so a batch's mean input is the mean of its indices."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return torch.full((4,), float(i)), 0


class PartsModel(nn.Module):
    """A stub autoencoder: loss ((w·x) - 1)² averaged; parts {"rec": the loss, "x_mean": mean input}."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((4,), 0.01))

    def forward(self, x: Tensor, seeds: Tensor) -> SimpleNamespace:
        assert seeds.shape == (x.shape[0],)  # one mask seed per input
        loss = ((x * self.w).sum(1) - 1).pow(2).mean()
        return SimpleNamespace(loss=loss, parts={"rec": loss.detach(), "x_mean": x.mean().detach()})


def _train(out, **run):
    optim = OptimConfig(blr=1e-3, epochs=EPOCHS, warmup_epochs=0, batch_size=BATCH, accum_iter=ACCUM)
    cfg = RunConfig(out_dir=str(out), device="cpu", num_workers=0, log_every=1, seed=5, **{"tensorboard": False, **run})
    torch.manual_seed(0)
    return train(PartsModel(), SeededSamples(Indexed(), 5), pretrain_objective, optim, cfg, full_config={"t": 1})


def _expected_x_mean(step: int) -> float:
    """Mean index of optimizer step `step` (1-based): its ACCUM micro-batches of the sampler."""
    epoch, within = divmod(step - 1, N // (BATCH * ACCUM))
    micro = list(ShardedBatchSampler(N, BATCH, accum_iter=ACCUM, seed=5, epoch=epoch))
    indices = [i for m in micro[within * ACCUM : (within + 1) * ACCUM] for i in m]
    return sum(indices) / len(indices)


def test_every_loss_part_is_a_column_with_its_values_and_reaches_tensorboard(tmp_path):
    _train(tmp_path / "run", tensorboard=True)
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        assert next(csv.reader(f)) == ["step", "epoch", "loss", "rec", "x_mean", "lr", "samples_per_s"]
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [r["step"] for r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert [r["rec"] for r in rows] == [r["loss"] for r in rows]
    assert [r["x_mean"] for r in rows] == pytest.approx([_expected_x_mean(s) for s in (1, 2, 3, 4)], abs=1e-6)
    assert len({r["x_mean"] for r in rows}) > 1  # the steps saw different samples
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/x_mean")] == [1, 2, 3, 4]
    assert [e.value for e in events.Scalars("train/rec")] == pytest.approx([r["rec"] for r in rows])


def test_the_progress_bar_shows_the_parts(tmp_path, capsys):
    _train(tmp_path / "run", max_steps=1)
    err = capsys.readouterr().err
    assert f"x_mean={_expected_x_mean(1):.4f}" in err and "rec=" in err and "loss=" in err


def test_a_resumed_run_appends_the_parts_under_one_header(tmp_path):
    _train(tmp_path / "run", max_steps=2, ckpt_every=1)
    _train(tmp_path / "run", resume=True)
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,loss,rec,x_mean,lr,samples_per_s"
    assert sum(line.startswith("step,") for line in lines) == 1
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [r["step"] for r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert [r["x_mean"] for r in rows] == pytest.approx([_expected_x_mean(s) for s in (1, 2, 3, 4)], abs=1e-6)
    whole = _train(tmp_path / "whole")
    assert read_metrics(whole.out_dir / "metrics.csv")[3]["rec"] == pytest.approx(rows[3]["rec"], rel=1e-6)


def test_metrics_named_like_engine_columns_are_refused(tmp_path):
    def clashing(model, batch):
        loss, _ = pretrain_objective(model, batch)
        return loss, {"lr": 1.0}

    optim = OptimConfig(blr=1e-3, epochs=1, warmup_epochs=0, batch_size=BATCH)
    run = RunConfig(out_dir=str(tmp_path / "r"), device="cpu", num_workers=0, tensorboard=False)
    with pytest.raises(ValueError, match=r"objective metric\(s\) \['lr'\] clash with the engine's columns"):
        train(PartsModel(), SeededSamples(Indexed(), 0), clashing, optim, run, full_config={})
