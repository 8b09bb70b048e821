"""The run's one loader (order, epochs, persistent workers) and the lr schedule's explicit length."""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset
from anymae.datasets.seeding import SeededSamples
from anymae.tasks.train.config import OptimConfig, RunConfig
from anymae.tasks.train.distributed import DistInfo
from anymae.tasks.train.engine import pretrain_objective, train
from anymae.tasks.train.logging import read_metrics
from anymae.tasks.train.loader.sampler import EpochItems, RunBatchSampler, ShardedBatchSampler
from anymae.tasks.train.steps import run_batches
from anymae.tasks.train.loader.workers import AUTO_CPU_NICE, choose_workers, thread_placement, worker_nice, workers_for
from tests.tasks.train._train_script import NoisyPictures, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


class _Tagged(Dataset, SampleDataset):
    """Items (index·1000 + epoch, the reading process id): shows the epoch each item was read in, and where."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch, self.epochs_set = n, -1, []

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.epochs_set.append(epoch)

    def __getitem__(self, index: int) -> tuple[int, int]:
        return index * 1000 + self.epoch, os.getpid()


def _per_epoch_reference(n: int, batch: int, seed: int, start: int, stop: int, **shard) -> list[list[tuple[int, int]]]:
    """The micro-batches of loaders re-created per epoch (the engine's former way), epochs tagged."""
    steps = len(ShardedBatchSampler(n, batch, seed=seed, **shard)) // shard.get("accum_iter", 1)
    out = []
    for epoch in range(start // steps, math.ceil(stop / steps)):
        first = start - epoch * steps if epoch == start // steps else 0
        micro = list(ShardedBatchSampler(n, batch, seed=seed, epoch=epoch, start_step=first, **shard))
        out += [[(epoch, i) for i in b] for b in micro]
    accum = shard.get("accum_iter", 1)
    return out[: (stop - start) * accum]


@pytest.mark.parametrize("start, stop", [(0, 12), (5, 12), (5, 6), (3, 4), (8, 8)])
@pytest.mark.parametrize("shard", [{}, {"accum_iter": 2}, {"world_size": 2, "rank": 1}])
def test_run_sampler_chains_the_epochs_orders_from_any_step(start, stop, shard):
    # 26 samples, 4 per micro-batch: 6 steps per epoch (3 with accum 2 or 2 ranks)
    got = list(RunBatchSampler(26, 4, seed=9, start=start, stop=stop, **shard))
    assert got == _per_epoch_reference(26, 4, 9, start, stop, **shard)
    assert len(got) == len(RunBatchSampler(26, 4, seed=9, start=start, stop=stop, **shard))
    with pytest.raises(ValueError, match="start=4, stop=3: expected 0 <= start <= stop"):
        RunBatchSampler(26, 4, start=4, stop=3)


def test_epoch_items_select_the_epoch_only_when_it_changes():
    data = _Tagged(5)
    items = EpochItems(data)
    assert [items[k][0] for k in [(0, 1), (0, 4), (1, 4), (1, 0), (3, 2)]] == [1000, 4000, 4001, 1, 2003]
    assert data.epochs_set == [0, 1, 3] and len(items) == 5


@pytest.mark.parametrize("workers", [0, 2])
def test_one_loader_reads_every_epoch_in_the_same_worker_processes(workers):
    data = _Tagged(12)
    optim = OptimConfig(epochs=3, warmup_epochs=0, batch_size=4)
    run = RunConfig(out_dir="unused", seed=1, num_workers=workers)
    batches = list(run_batches(data, optim, run, CPU, start=2, stop=9))  # 3 steps per epoch: epochs 0 (from step 2) to 2
    want = _per_epoch_reference(12, 4, 1, 2, 9)
    assert [b[0].tolist() for b in batches] == [[i * 1000 + e for e, i in step] for step in want]
    pids = {int(p) for b in batches for p in b[1]}
    assert len(pids) == max(workers, 1)  # 3 epochs read by the same 2 workers (or the main process)
    assert (os.getpid() in pids) == (workers == 0)


def test_workers_give_the_items_of_the_main_process():
    data = SeededSamples(NoisyPictures(24), base_seed=3)
    optim = OptimConfig(epochs=2, warmup_epochs=0, batch_size=6)
    main, workers = (list(run_batches(data, optim, RunConfig(out_dir="unused", seed=3, num_workers=w), CPU, 1, 7))
                     for w in (0, 2))  # fmt: skip
    assert len(main) == len(workers) == 6
    for a, b in zip(main, workers, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])  # pictures with their noise, and seeds


def test_thread_placement_names_workers_their_priority_and_model_threads():
    threads = torch.get_num_threads()
    assert thread_placement(0).startswith("threads: the main process loads the data; the model computes with "
                                          f"{threads} torch thread(s)")
    assert thread_placement(3).startswith("threads: 3 loader worker process(es), 1 torch thread each, kept for the "
                                          "whole run;")
    assert ", at nice +10 (below the model: run.worker_nice)," in thread_placement(2, 10)


def test_worker_nice_auto_lowers_workers_on_a_cpu_only():
    assert worker_nice("auto", torch.device("cpu")) == AUTO_CPU_NICE == 10
    assert worker_nice("auto", torch.device("cuda", 0)) == 0
    assert worker_nice(3, torch.device("cpu")) == 3 and worker_nice(0, torch.device("cpu")) == 0
    for bad in (20, -1, True, "low"):
        with pytest.raises(ValueError, match="worker_nice"):
            RunConfig(out_dir="x", worker_nice=bad)


class _Niceness(Dataset, SampleDataset):
    """Items (the reading process's niceness, its pid)."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[int, int]:
        return os.nice(0), os.getpid()


@pytest.mark.parametrize("setting, raised", [("auto", AUTO_CPU_NICE), (0, 0), (4, 4)])
def test_the_runs_loader_workers_run_at_the_chosen_priority_and_the_main_process_keeps_its_own(setting, raised):
    base = os.nice(0)
    run_cfg = RunConfig(out_dir="unused", num_workers=1, worker_nice=setting)
    batches = list(run_batches(SeededSamples(_Niceness(), 0), OptimConfig(batch_size=4), run_cfg, CPU, 0, 2))
    nice = {int(v) for x, _pid, _seed in batches for v in x}
    pids = {int(v) for _x, pid, _seed in batches for v in pid}
    assert nice == {min(base + raised, 19)} and os.getpid() not in pids
    assert os.nice(0) == base


class _Clock:
    """A clock that moves only when a fake batch maker says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def maker(self, seconds: float):
        """make(n): n batches, each taking ``seconds``."""

        def make(count: int) -> int:
            self.now += seconds * count
            return count

        return make


def test_auto_workers_load_cheap_batches_in_the_main_process_and_say_why():
    clock = _Clock()
    assert choose_workers(3, clock.maker(1.0), clock=lambda: clock.now) == (3, "run.num_workers=3")
    assert clock.now == 0.0  # a number is not timed
    workers, why = choose_workers("auto", clock.maker(0.009), clock=lambda: clock.now)  # 9 ms per batch
    assert workers == 0 and why == ("run.num_workers=auto: a batch takes 9.0 ms to make here, under 10 ms, so worker "
                                    "processes would cost more than they save")  # fmt: skip
    assert clock.now == pytest.approx(3 * 0.009)  # one batch untimed, two timed
    workers, why = choose_workers("auto", clock.maker(0.011), clock=lambda: clock.now)  # 11 ms per batch
    assert workers == workers_for("auto") >= 1 and why == "run.num_workers=auto: a batch takes 11.0 ms to make here"
    began = clock.now
    assert choose_workers("auto", clock.maker(0.5), clock=lambda: clock.now)[0] == workers_for("auto")
    assert clock.now - began == pytest.approx(0.5)  # a costly first batch decides alone
    assert choose_workers("auto", None) == (workers_for("auto"), "run.num_workers=auto: the data is streamed")
    assert 1 <= workers_for("auto") <= 4 and workers_for(2) == 2
    assert thread_placement(0, 0, "why").startswith("threads: the main process loads the data (why); the model ")
    assert thread_placement(2, 10, "why").startswith("threads: 2 loader worker process(es) (why), 1 torch thread each, "
                                                     "at nice +10")
    with pytest.raises(ValueError, match="num_workers"):
        RunConfig(out_dir="x", num_workers="many")


def test_auto_workers_choose_where_batches_are_made_not_what_they_hold(tmp_path, capsys):
    losses = {}
    for workers in ("auto", 0, 1):
        optim_cfg = OptimConfig(blr=1e-2, epochs=1, warmup_epochs=0, batch_size=8)
        run_cfg = RunConfig(out_dir=str(tmp_path / str(workers)), log_every=1, device="cpu", num_workers=workers,
                            tensorboard=False)  # fmt: skip
        train(tiny_model(), SeededSamples(NoisyPictures(32), 0), pretrain_objective, optim_cfg, run_cfg, full_config={})
        losses[workers] = [r["loss"] for r in read_metrics(tmp_path / str(workers) / "metrics.csv")]
        if workers == "auto":
            assert "(run.num_workers=auto: a batch takes " in capsys.readouterr().err
    assert len(losses[0]) == 4 and losses["auto"] == losses[0] == losses[1]


def test_a_batch_that_spans_two_epochs_reads_each_item_in_its_own_epoch():
    data = _Tagged(5)
    items = EpochItems(data).__getitems__([(0, 3), (0, 1), (1, 3), (1, 0)])
    assert [x for x, _pid in items] == [3000, 1000, 3001, 1]
    assert data.epochs_set == [0, 1]


def _run(tmp_path, name, **optim):
    optim_cfg = OptimConfig(**{"blr": 2e-2, "min_lr": 1e-4, "epochs": 20, "warmup_epochs": 2, "batch_size": 8,
                               **optim})  # fmt: skip
    run_cfg = RunConfig(out_dir=str(tmp_path / name), max_steps=40, log_every=1, device="cpu", num_workers=0,
                        tensorboard=False)  # fmt: skip
    train(tiny_model(), SeededSamples(NoisyPictures(32), 0), pretrain_objective, optim_cfg, run_cfg, full_config={})
    return [r["lr"] for r in read_metrics(tmp_path / name / "metrics.csv")]


def _mae_lr(it: float, peak: float, min_lr: float, warmup: float, steps: float) -> float:
    """MAE's warmup + half-cycle cosine, by hand, in steps."""
    if it < warmup:
        return peak * it / warmup
    return min_lr + (peak - min_lr) * 0.5 * (1 + math.cos(math.pi * (it - warmup) / (steps - warmup)))


def test_a_short_run_decays_to_min_lr_when_the_schedule_spans_it(tmp_path, capsys):
    peak, min_lr = 2e-2 * 8 / 256, 1e-4
    # 4 steps per epoch: 40 steps of a 20-epoch (80-step) schedule stop half way down, by default
    default = _run(tmp_path, "epochs")
    assert default == pytest.approx([_mae_lr(s, peak, min_lr, 8, 80) for s in range(40)], rel=1e-9)
    assert default[-1] > 0.45 * peak
    err = capsys.readouterr().err
    assert ("lr schedule: 8 warmup steps, then cosine to min_lr 0.0001 at step 80 (optim.epochs=20 × 4 steps per "
            "epoch); peak lr 0.000625; this run stops at step 40 (run.max_steps), before the lr decays: set "
            "optim.schedule_steps=40 to warm up and decay within it") in err
    # schedule_steps = 40: warmup 40 × 2/20 = 4 steps, then the cosine down to min_lr at the run's end
    short = _run(tmp_path, "steps", schedule_steps=40)
    assert short == pytest.approx([_mae_lr(s, peak, min_lr, 4, 40) for s in range(40)], rel=1e-9)
    assert short[4] == pytest.approx(peak) and (short[-1] - min_lr) / (peak - min_lr) < 0.002  # the last step
    assert "lr schedule: 4 warmup steps, then cosine to min_lr 0.0001 at step 40 (optim.schedule_steps); peak lr " \
        "0.000625\n" in capsys.readouterr().err  # fmt: skip
    with pytest.raises(ValueError, match="schedule_steps=0: expected None or >= 1"):
        OptimConfig(schedule_steps=0)


def test_a_workers_small_tensors_travel_by_value_and_come_back_equal():
    import pickle

    from anymae.tasks.train.loader.workers import INLINE_NUMEL, _Inline, pack_batch, unpack_batch

    big = torch.randn(INLINE_NUMEL + 1)
    batch = (big, torch.arange(8), {"mask": torch.rand(4, 3) > 0.5, "half": torch.ones(2, dtype=torch.bfloat16)},
             [torch.tensor(3.5)], "name")  # fmt: skip
    packed = pack_batch(lambda items: items, batch)
    assert packed[0] is big and isinstance(packed[1], _Inline) and isinstance(packed[2]["mask"], _Inline)
    assert isinstance(packed[2]["half"], torch.Tensor)  # no numpy bf16: shared memory as before
    back = unpack_batch(pickle.loads(pickle.dumps(packed)))
    flat = [back[0], back[1], back[2]["mask"], back[2]["half"], back[3][0]]
    for got, want in zip(flat, [batch[0], batch[1], batch[2]["mask"], batch[2]["half"], batch[3][0]], strict=True):
        assert isinstance(got, torch.Tensor) and got.dtype == want.dtype and torch.equal(got, want)
    assert back[4] == "name" and type(back[3]) is list and type(back) is tuple
