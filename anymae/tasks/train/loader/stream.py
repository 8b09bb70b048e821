"""How the engine draws batches from a stream of shards (`data.source: shards`).

A dataset whose contract member `stream` is set (`datasets.shards.ShardDataset`) is not read by
index: its raw samples are read shard by shard, in one pass. The rule, per epoch `e`, is a pure
function of (seed, e, world size, rank, loader workers W, batch B, accum_iter, shuffle buffer):

1. shard order: the selected shards permuted by (seed, e) (`epoch_permutation`, as the
   map-style sampler permutes samples); concatenated, they number the epoch's samples 0..N-1.
2. ranks: every rank reads P = steps·accum·B samples, steps = `steps_per_epoch(N, B, world,
   accum)` as for any dataset; rank r reads positions [r·P, (r+1)·P), which touch about 1/world
   of the shards. The tail N - world·P (less than one optimizer step) is not read in epoch e;
   which samples it holds changes with the shard order. So every rank yields the same number of
   batches (DDP needs it) and each sample is read at most once per epoch, exactly once when N
   is a multiple of one optimizer step's samples, whatever the shard counts.
3. loader workers: micro-batch g of the run (g = e·M + m, M = steps·accum) comes from worker
   g mod W, because a DataLoader takes batches from its workers in turn; worker p reads a
   contiguous part of its rank's positions, B samples per micro-batch it owns.
4. shuffle: each worker passes its raw (undecoded) samples through webdataset's shuffle buffer
   of `data.shuffle_buffer` samples, its RNG seeded by (seed, e, rank, p): memory is bounded by
   the buffer, not the data.
5. decode: B shuffled raw samples are served to the dataset (`ShardDataset.serving`), which is
   asked for their indices through its wrappers: `SeededSamples` seeds each with
   `sample_seed(seed, e, index)` (index = position in the manifest order), as for a folder.

Resume: the checkpoint holds the step s and the run's config; the stream's position is a function
of them, so nothing else is saved. Each worker rebuilds its epoch's stream and discards, without
decoding, the raw samples of its micro-batches before s. With the same world size,
`run.num_workers`, batch, accum_iter, `data.shuffle_buffer`, seed and shards, the later batches
are bitwise those of an uninterrupted run (so are losses and weights, as far as the model's own
arithmetic is deterministic). Change one of them and the interrupted epoch still ends after the
right number of steps, but what it had read is computed under the new settings (some samples of
that epoch may repeat or be left out); later epochs read every sample once again. A truncated or
corrupt shard raises a `ShardError` naming it, or with `data.on_error=skip` its undelivered
samples are counted as skipped and the worker re-reads its part from the start to fill its
batches.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from webdataset.filters import shuffle

from anymae.core.seeds import mix_seed
from anymae.datasets.contract import SampleDataset
from anymae.datasets.shards.manifest import ShardError
from anymae.tasks.train.config import OptimConfig, RunConfig
from anymae.tasks.train.distributed import DistInfo
from anymae.tasks.train.loader.sampler import epoch_permutation, steps_per_epoch
from anymae.tasks.train.loader.workers import pack_batch, unpack_batch, worker_init, worker_nice

Segment = tuple[int, int, int]  # (shard index in the selection, first position, end position)


@dataclass(frozen=True)
class WorkerPlan:
    """What one loader worker reads in one epoch (module doc, rules 1-4).

    Attributes:
        epoch: the epoch.
        segments: the shard ranges it reads, in order.
        own: its micro-batches in the epoch (it reads B samples for each, whatever part of the
            epoch the run covers, so the shuffled order does not depend on where the run stops).
        skip: those before the run's first step (discarded undecoded on resume).
        take: those to yield.
        seed: its shuffle buffer's seed.
    """

    epoch: int
    segments: tuple[Segment, ...]
    own: int
    skip: int
    take: int
    seed: int


def own_micro_batches(epoch: int, per_epoch: int, workers: int, worker: int) -> list[int]:
    """The micro-batches m (within the epoch) that loader worker `worker` yields: (e·M + m) mod W."""
    return [m for m in range(per_epoch) if (epoch * per_epoch + m) % workers == worker]


def worker_plan(
    counts: list[int], *, epoch: int, seed: int, batch_size: int, world_size: int, rank: int, accum_iter: int,
    workers: int, worker: int, first: int = 0, stop: int | None = None,
) -> WorkerPlan:
    """Worker `worker` of `workers` on rank `rank`: its part of epoch `epoch` (module doc).

    Args:
        counts: the samples of each selected shard.
        first, stop: the run's micro-batches [first, stop) (global over epochs) to yield.
    """
    steps = steps_per_epoch(sum(counts), batch_size, world_size, accum_iter)
    micro = steps * accum_iter
    per_rank = micro * batch_size
    mine = own_micro_batches(epoch, micro, workers, worker)
    lo = epoch * micro
    stop = lo + micro if stop is None else stop
    skip = sum(1 for m in mine if lo + m < first)
    take = sum(1 for m in mine if first <= lo + m < stop)
    before = sum(len(own_micro_batches(epoch, micro, workers, q)) for q in range(worker)) * batch_size
    begin = rank * per_rank + before
    end = begin + len(mine) * batch_size
    segments, offset = [], 0
    for shard in epoch_permutation(len(counts), seed, epoch).tolist():
        a, b = max(begin, offset), min(end, offset + counts[shard])
        if a < b:
            segments.append((shard, a - offset, b - offset))
        offset += counts[shard]
    return WorkerPlan(epoch, tuple(segments), len(mine), skip, take, mix_seed(seed, epoch, rank, worker))


def raw_samples(stream: Any, segments: tuple[Segment, ...], need: int) -> Iterator[Any]:
    """`need` raw samples of `segments`; a corrupt shard raises, or (on_error="skip") has its lost
    samples counted and the segments are read again from the start to make up for them."""
    delivered = 0
    while delivered < need:
        before = delivered
        for shard, lo, hi in segments:
            pos = lo
            try:
                for raw in stream.read(shard, lo, hi):
                    yield raw
                    delivered, pos = delivered + 1, pos + 1
                    if delivered == need:
                        return
            except ShardError as err:
                if stream.on_error == "raise":
                    raise
                start = stream.shards[shard].start
                stream.mark_lost(range(start + pos, start + hi), err)
        if delivered == before:
            raise ShardError(f"no readable sample in this worker's part of the shards ({len(segments)} shard ranges; "
                             f"{stream.skipped()} samples skipped)")


class StreamBatches(IterableDataset):
    """One rank's micro-batches of optimizer steps [start, stop), read by a DataLoader's workers.

    Args:
        dataset: the engine's dataset (e.g. `SeededSamples(ShardDataset)`); its `stream` is read.
        batch_size, accum_iter, world_size, rank, seed: the run's.
        workers: the DataLoader's worker count W (1 when it reads in the main process).
        start, stop: optimizer steps of the run (0-based, `stop` excluded).
    """

    def __init__(self, dataset: SampleDataset, *, batch_size: int, accum_iter: int, world_size: int, rank: int,
                 seed: int, workers: int, start: int, stop: int) -> None:
        if dataset.stream is None:
            raise TypeError(f"{type(dataset).__name__} has no stream to read")
        self.dataset, self.batch_size, self.accum_iter = dataset, batch_size, accum_iter
        self.world_size, self.rank, self.seed, self.workers = world_size, rank, seed, workers
        self.start, self.stop = start, stop

    def plans(self, worker: int) -> Iterator[WorkerPlan]:
        """The epochs' plans of loader worker `worker` over the run's steps (rule 3: it yields the
        micro-batches g ≡ first + worker mod W, g counted from the run's first micro-batch)."""
        counts = [s.info.count for s in self.dataset.stream.shards]
        steps = steps_per_epoch(sum(counts), self.batch_size, self.world_size, self.accum_iter)
        first, stop = self.start * self.accum_iter, self.stop * self.accum_iter
        role = (first + worker) % self.workers
        for epoch in range(self.start // steps, -(-self.stop // steps) if self.stop > self.start else 0):
            yield worker_plan(counts, epoch=epoch, seed=self.seed, batch_size=self.batch_size,
                              world_size=self.world_size, rank=self.rank, accum_iter=self.accum_iter,
                              workers=self.workers, worker=role, first=first, stop=stop)  # fmt: skip

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        stream, b = self.dataset.stream, self.batch_size
        for plan in self.plans(worker):
            if plan.take == 0:
                continue
            self.dataset.set_epoch(plan.epoch)
            raws = raw_samples(stream, plan.segments, plan.own * b)
            shuffled = shuffle(stream.shuffle_buffer, stream.shuffle_buffer, rng=random.Random(plan.seed))(raws)
            for _ in range(plan.skip * b):  # resume: the micro-batches before the first step, undecoded
                next(shuffled)
            for _ in range(plan.take):
                batch = [next(shuffled) for _ in range(b)]
                with stream.serving(batch):
                    items = [self.dataset[raw.index] for raw in batch]
                yield self.dataset.collate(items)


def _as_is(batch: Any) -> Any:
    return batch


def stream_batches(
    dataset: SampleDataset, optim_cfg: OptimConfig, run_cfg: RunConfig, info: DistInfo, start: int, stop: int
) -> Iterator[Any]:
    """This rank's micro-batches of optimizer steps [start, stop) from the dataset's stream: one
    DataLoader for the run, `run.num_workers` processes reading and decoding (module doc)."""
    batches = StreamBatches(
        dataset, batch_size=optim_cfg.batch_size, accum_iter=optim_cfg.accum_iter, world_size=info.world_size,
        rank=info.rank, seed=run_cfg.seed, workers=max(1, run_cfg.num_workers), start=start, stop=stop,
    )  # fmt: skip
    workers = run_cfg.num_workers
    loader = DataLoader(
        batches, batch_size=None, collate_fn=partial(pack_batch, _as_is) if workers else _as_is,
        num_workers=workers, pin_memory=info.device.type == "cuda",
        generator=torch.Generator().manual_seed(mix_seed(run_cfg.seed, start, info.rank)),
        worker_init_fn=worker_init(worker_nice(run_cfg.worker_nice, info.device)),
    )  # fmt: skip
    return map(unpack_batch, loader) if workers else iter(loader)
