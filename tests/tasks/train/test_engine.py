from __future__ import annotations

import csv
import dataclasses
import math

import pytest
import torch
import yaml

from anymae.datasets.seeding import SeededSamples
from anymae.tasks.train.checkpoint import CheckpointError, load_checkpoint
from anymae.tasks.train.engine import NonFiniteLossError, pretrain_objective, train
from anymae.tasks.train.logging import MetricsLogger, read_metrics
from anymae.tasks.train.loader.sampler import ShardedBatchSampler, epoch_permutation, steps_per_epoch
from anymae.tasks.train.schedule import lr_at
from anymae.tasks.train.steps import autocast_dtype
from anymae.tasks.train.config import OptimConfig, RunConfig
from tests.tasks.train._train_script import NoisyPictures, main, tiny_model


pytestmark = pytest.mark.usefixtures("one_thread")


def _losses(run_dir) -> dict[int, float]:
    """Last logged loss per step (a resumed run logs redone steps again)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


def _run(tmp_path, objective=pretrain_objective, *, name="run", optim=None, **run):
    optim_cfg = OptimConfig(**{"blr": 2e-2, "epochs": 1, "warmup_epochs": 0, "batch_size": 8, **(optim or {})})
    defaults = {"log_every": 1, "device": "cpu", "num_workers": 0, "tensorboard": False}
    run_cfg = RunConfig(out_dir=str(tmp_path / name), **{**defaults, **run})
    data = SeededSamples(NoisyPictures(32), base_seed=0)
    return train(tiny_model(), data, objective, optim_cfg, run_cfg, full_config={"note": "test", "n": 1})


class _NanAt:
    """pretrain_objective, except that the listed 0-based calls return a NaN loss."""

    def __init__(self, *calls: int) -> None:
        self.bad, self.calls = set(calls), 0

    def __call__(self, model, batch):
        loss, metrics = pretrain_objective(model, batch)
        self.calls += 1
        return (loss * float("nan") if self.calls - 1 in self.bad else loss), {"calls": self.calls}


def test_sampler_order_depends_only_on_seed_and_epoch_and_shards_the_global_batch():
    assert torch.equal(epoch_permutation(50, 3, 1), epoch_permutation(50, 3, 1))
    assert not torch.equal(epoch_permutation(50, 3, 1), epoch_permutation(50, 3, 2))
    assert not torch.equal(epoch_permutation(50, 3, 1), epoch_permutation(50, 4, 1))
    one = list(ShardedBatchSampler(50, 8, seed=3, epoch=1))  # 6 steps of 8, tail of 2 dropped
    ranks = [list(ShardedBatchSampler(50, 4, world_size=2, rank=r, seed=3, epoch=1)) for r in (0, 1)]
    assert len(one) == 6 and all(len(r) == 6 for r in ranks)
    for step, batch in enumerate(one):
        assert ranks[0][step] + ranks[1][step] == batch  # rank 0 takes the first half, rank 1 the rest
    accum = list(ShardedBatchSampler(50, 4, accum_iter=2, seed=3, epoch=1))
    assert [accum[2 * s] + accum[2 * s + 1] for s in range(6)] == one  # micro-batches cover the step's batch
    assert list(ShardedBatchSampler(50, 8, seed=3, epoch=1, start_step=4)) == one[4:]  # resume mid-epoch
    with pytest.raises(ValueError, match="10 samples, fewer than one optimizer step needs"):
        steps_per_epoch(10, 4, world_size=2, accum_iter=2)


def test_loss_decreases_and_run_dir_is_complete(tmp_path):
    (result,) = main([str(tmp_path / "run"), "--epochs", "2"])
    losses = _losses(result.out_dir)
    assert sorted(losses) == list(range(1, 17)) and result.step == 16
    first, last = [losses[s] for s in (1, 2, 3)], [losses[s] for s in (14, 15, 16)]
    assert sum(last) < 0.8 * sum(first)
    with open(result.out_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    parts = list(tiny_model()(torch.zeros(2, 3, 16, 16), seeds=torch.arange(2)).parts)  # the model's loss parts
    assert list(rows[0]) == ["step", "epoch", "loss", *parts, "lr", "samples_per_s"]
    assert [int(r["epoch"]) for r in rows] == [0] * 8 + [1] * 8
    want_lr = [lr_at(s - 1, lr=2e-2 * 8 / 256, min_lr=1e-4, warmup_epochs=1, epochs=2, iters_per_epoch=8)
               for s in range(1, 17)]  # fmt: skip
    assert [float(r["lr"]) for r in rows] == pytest.approx(want_lr, rel=1e-9)
    config = yaml.safe_load((result.out_dir / "config.yaml").read_text())
    assert config["args"]["epochs"] == 2 and config["script"] == "tests/tasks/train/_train_script.py"
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt["step"] == 16 and ckpt["epoch"] == 2 and ckpt["config"] == config
    assert ckpt["run"]["samples_per_step"] == 8 and ckpt["run"]["peak_lr"] == pytest.approx(2e-2 * 8 / 256)
    assert not torch.equal(ckpt["model"]["encoder.cls_token"], tiny_model().encoder.cls_token)  # trained


def test_accumulation_4x2_equals_8x1_in_the_updated_weights(tmp_path):
    a = _run(tmp_path, name="b8", max_steps=4)
    b = _run(tmp_path, name="b4x2", optim={"batch_size": 4, "accum_iter": 2}, max_steps=4)
    assert _losses(a.out_dir) == pytest.approx(_losses(b.out_dir), abs=1e-6)
    wa, wb = load_checkpoint(a.checkpoint)["model"], load_checkpoint(b.checkpoint)["model"]
    start = tiny_model().state_dict()
    assert all(not torch.equal(wa[k], start[k]) for k in ("tokenizer.patch_embed.proj.weight", "decoder.mask_token"))
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6, msg=key)


def test_loader_workers_do_not_change_the_data(tmp_path):
    # noise "augmentations" are drawn per sample from (seed, epoch, index), in whichever process
    a = _run(tmp_path, name="w0", max_steps=4)
    b = _run(tmp_path, name="w2", max_steps=4, num_workers=2)
    assert _losses(a.out_dir) == _losses(b.out_dir)


def test_nan_loss_stops_naming_the_step_and_last_finite_loss(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 3 \(epoch 0\); "
                                                 r"last finite: loss [0-9.]+ at step 2"):  # fmt: skip
        _run(tmp_path, _NanAt(2), ckpt_every=1)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2  # the last good state survives


def test_nan_loss_skip_drops_the_update_and_counts_it(tmp_path):
    result = _run(tmp_path, _NanAt(2, 3), optim={"batch_size": 4, "accum_iter": 2}, on_nan="skip", max_steps=3,
                  max_skipped_fraction=0.5)  # 1 of 3 steps may be skipped
    assert result.skipped_steps == 1  # both micro-batches of step 2
    losses = _losses(result.out_dir)
    # NaN only at step 2; step 3 is finite, so step 2's NaN gradients never reached the weights
    assert math.isnan(losses[2]) and math.isfinite(losses[1]) and math.isfinite(losses[3])
    with open(result.out_dir / "metrics.csv", newline="") as f:
        assert [float(r["calls"]) for r in csv.DictReader(f)] == [1.5, 3.5, 5.5]  # metrics are micro-means
    assert load_checkpoint(result.checkpoint)["skipped_steps"] == 1


def test_resume_guards_and_step_files(tmp_path):
    _run(tmp_path, max_steps=2, ckpt_every=1, keep_step_checkpoints=True)
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pt")) == ["last.pt", "step_000001.pt", "step_000002.pt"]
    with pytest.raises(FileExistsError, match="already holds a checkpoint; set resume=True"):
        _run(tmp_path, max_steps=2)
    with pytest.raises(CheckpointError, match="trained with samples_per_step=8, this run has 4"):
        _run(tmp_path, optim={"batch_size": 4}, max_steps=4, resume=True)
    done = _run(tmp_path, max_steps=2, resume=True)  # nothing left to do
    assert done.step == 2 and list(_losses(done.out_dir)) == [1, 2]


def test_autocast_dtype_and_config_checks():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp32", cuda) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="warmup_epochs=5: expected between 0 and epochs=2"):
        OptimConfig(epochs=2, warmup_epochs=5)
    with pytest.raises(ValueError, match="precision='fp16'"):
        RunConfig(out_dir="x", precision="fp16")
    assert dataclasses.asdict(OptimConfig())["betas"] == (0.9, 0.95)


def test_metrics_logger_csv_append_and_tensorboard(tmp_path):
    first = MetricsLogger(tmp_path, append=False, tensorboard=True)
    first.log({"step": 1, "loss": 2.0, "lr": 0.1})
    first.close()
    resumed = MetricsLogger(tmp_path, append=True, tensorboard=False)
    resumed.log({"step": 2, "lr": 0.2, "loss": float("nan"), "new_metric": 5.0})  # kept under the old header
    resumed.close()
    MetricsLogger(tmp_path, append=False, tensorboard=False, enabled=False).log({"step": 9})  # other ranks
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert f.readline().strip() == "step,loss,lr"
    rows = read_metrics(tmp_path / "metrics.csv")
    assert rows[0] == {"step": 1.0, "loss": 2.0, "lr": 0.1} and rows[1]["lr"] == 0.2 and len(rows) == 2
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(1, 2.0)]
    MetricsLogger(tmp_path, append=False, tensorboard=False).close()  # a fresh run starts a new file
    assert (tmp_path / "metrics.csv").read_text() == ""


def test_a_run_that_skips_more_than_its_bound_fails_instead_of_saving_unusable_weights(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"on_nan='skip' dropped 1 of the run's 4 optimizer steps for a "
                                                 r"non-finite loss \(the last at step 1\), more than "
                                                 r"run.max_skipped_fraction=0.1; .*no checkpoint was written to "
                                                 r"'.*every' yet"):  # fmt: skip
        _run(tmp_path, _NanAt(*range(8)), name="every", on_nan="skip", max_steps=4, ckpt_every=1)
    assert not (tmp_path / "every" / "last.pt").exists()  # nothing "successful" is left behind
    # within the bound: 1 of 4 steps skipped with 0.25 allowed; a second one fails at its own step
    assert _run(tmp_path, _NanAt(1), name="one", on_nan="skip", max_steps=4, max_skipped_fraction=0.25).skipped_steps == 1
    with pytest.raises(NonFiniteLossError, match=r"dropped 2 of the run's 4 .*at step 3\).*'.*two.last.pt' holds "
                                                 r"the last saved step"):
        _run(tmp_path, _NanAt(1, 2), name="two", on_nan="skip", max_steps=4, max_skipped_fraction=0.25, ckpt_every=1)


def test_the_nan_stop_message_names_only_a_checkpoint_that_exists(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"no checkpoint was written to '.*early' yet") as info:
        _run(tmp_path, _NanAt(1), name="early", ckpt_every=100)
    assert "last.pt" not in str(info.value) and not (tmp_path / "early" / "last.pt").exists()
    with pytest.raises(NonFiniteLossError, match=r"'(.*late.last.pt)' holds the last saved step") as info:
        _run(tmp_path, _NanAt(2), name="late", ckpt_every=1)
    assert (tmp_path / "late" / "last.pt").is_file()


def test_resume_without_a_checkpoint_fails_instead_of_starting_over(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing to resume: run.out_dir '.*typo' holds no last.pt or "
                                                r"step_\*.pt; check the path, or drop --resume"):
        _run(tmp_path, name="typo", max_steps=2, resume=True)
    assert not (tmp_path / "typo" / "metrics.csv").exists()


def test_out_dir_that_is_a_file_is_named(tmp_path):
    (tmp_path / "taken").write_text("not a directory")
    with pytest.raises(NotADirectoryError, match=r"run.out_dir: '.*taken' is a file, not a directory"):
        _run(tmp_path, name="taken", max_steps=1)


def test_a_resumed_run_logs_each_step_once(tmp_path):
    # of 4 steps, 1-3 are logged, last.pt holds step 2, step 4's loss is NaN: the run stops
    with pytest.raises(NonFiniteLossError):
        _run(tmp_path, _NanAt(3), ckpt_every=2)
    assert [int(r["step"]) for r in read_metrics(tmp_path / "run" / "metrics.csv")] == [1, 2, 3]
    _run(tmp_path, ckpt_every=2, resume=True)  # redoes step 3
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        assert f.readline().startswith("step,epoch,loss")  # one header


def test_metrics_logger_drops_rows_after_the_resumed_step(tmp_path):
    first = MetricsLogger(tmp_path, append=False, tensorboard=False)
    for step in (1, 2, 3, 4):
        first.log({"step": step, "loss": float(step)})
    first.close()
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("5,")  # a row cut by a kill
    MetricsLogger(tmp_path, append=True, keep_until=2, tensorboard=False).close()
    assert read_metrics(tmp_path / "metrics.csv") == [{"step": 1.0, "loss": 1.0}, {"step": 2.0, "loss": 2.0}]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # rewritten atomically, no temporary left
