"""Data order: a per-epoch permutation that depends only on (seed, epoch), sharded across ranks.

Optimizer step ``s`` of an epoch consumes ``accum_iter`` global micro-batches of
``batch_size × world_size`` consecutive positions of the epoch's permutation; rank ``r`` takes
positions ``[r·batch_size, (r+1)·batch_size)`` of each. So the union over ranks of a step's
samples is exactly the one-process batch of ``batch_size × world_size``, and a resumed run
starts at the right position without saving any sampler state. The tail that does not fill an
optimizer step is dropped (as MAE's ``drop_last=True``).

A run reads its data through ONE DataLoader whose worker processes live for the whole run:
``RunBatchSampler`` chains the epochs' ``ShardedBatchSampler`` orders from the run's first step to
its last, and each index it yields carries its epoch, ``(epoch, index)``; ``EpochItems`` (the
loader's dataset) selects that epoch's randomness (``set_epoch``) in whichever process reads the
item. So no worker is re-created at an epoch boundary, the prefetch runs on across it, and the
items are exactly those of a loader re-created per epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import groupby
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from anymae.core.seeds import mix_seed
from anymae.datasets.contract import SampleDataset

__all__ = ["EpochItems", "RunBatchSampler", "ShardedBatchSampler", "epoch_permutation", "mix_seed", "steps_per_epoch"]


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of ``epoch``: a permutation of ``range(num_samples)`` (int64, shape [num_samples])."""
    generator = torch.Generator().manual_seed(mix_seed(seed, epoch))
    return torch.randperm(num_samples, generator=generator)


def steps_per_epoch(num_samples: int, batch_size: int, world_size: int = 1, accum_iter: int = 1) -> int:
    """Optimizer steps per epoch: ``num_samples // (batch_size × world_size × accum_iter)``.

    Raises:
        ValueError: the dataset is smaller than one optimizer step's samples.
    """
    per_step = batch_size * world_size * accum_iter
    if num_samples < per_step:
        raise ValueError(
            f"the dataset has {num_samples} samples, fewer than one optimizer step needs "
            f"(batch_size {batch_size} × world_size {world_size} × accum_iter {accum_iter} = {per_step})"
        )
    return num_samples // per_step


class ShardedBatchSampler(Sampler[list[int]]):
    """One rank's micro-batches (lists of dataset indices) for one epoch, from ``start_step`` on.

    Args:
        num_samples: dataset length.
        batch_size: samples per micro-batch per rank.
        world_size: number of ranks.
        rank: this rank.
        accum_iter: micro-batches per optimizer step.
        seed: run seed.
        epoch: the epoch whose permutation to use.
        start_step: first optimizer step (within the epoch) to yield; earlier ones are skipped.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        world_size: int = 1,
        rank: int = 0,
        accum_iter: int = 1,
        seed: int = 0,
        epoch: int = 0,
        start_step: int = 0,
    ) -> None:
        self.num_samples, self.batch_size = num_samples, batch_size
        self.world_size, self.rank, self.accum_iter = world_size, rank, accum_iter
        self.seed, self.epoch, self.start_step = seed, epoch, start_step
        self.steps = steps_per_epoch(num_samples, batch_size, world_size, accum_iter)
        if not 0 <= start_step <= self.steps:
            raise ValueError(f"start_step={start_step} is outside the epoch's {self.steps} steps")

    def __len__(self) -> int:
        return (self.steps - self.start_step) * self.accum_iter

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_permutation(self.num_samples, self.seed, self.epoch)
        global_batch = self.batch_size * self.world_size
        for micro in range(self.start_step * self.accum_iter, self.steps * self.accum_iter):
            first = micro * global_batch + self.rank * self.batch_size
            yield order[first : first + self.batch_size].tolist()


class RunBatchSampler(Sampler[list[tuple[int, int]]]):
    """One rank's micro-batches for optimizer steps ``[start, stop)`` of a run, across epochs.

    Step ``it`` (0-based over the run) is step ``it % steps`` of epoch ``it // steps``, with
    ``steps = steps_per_epoch(...)``; its micro-batches are ``ShardedBatchSampler``'s for that
    epoch, each index paired with its epoch: ``[(epoch, index), ...]`` (``batch_size`` pairs).

    Args:
        num_samples, batch_size, world_size, rank, accum_iter, seed: as ``ShardedBatchSampler``.
        start: the first optimizer step of the run to yield (a resumed run's step).
        stop: the step after the last one (the run's total steps).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        world_size: int = 1,
        rank: int = 0,
        accum_iter: int = 1,
        seed: int = 0,
        start: int = 0,
        stop: int,
    ) -> None:
        self.steps = steps_per_epoch(num_samples, batch_size, world_size, accum_iter)
        if not 0 <= start <= stop:
            raise ValueError(f"start={start}, stop={stop}: expected 0 <= start <= stop")
        self.start, self.stop, self.accum_iter = start, stop, accum_iter
        self._epoch_args = {"num_samples": num_samples, "batch_size": batch_size, "world_size": world_size,
                            "rank": rank, "accum_iter": accum_iter, "seed": seed}

    def __len__(self) -> int:
        return (self.stop - self.start) * self.accum_iter

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        def epoch_batches(epoch: int, first: int) -> Iterator[list[int]]:
            return iter(ShardedBatchSampler(**self._epoch_args, epoch=epoch, start_step=first))

        return chain_epochs(epoch_batches, self.steps, self.accum_iter, self.start, self.stop)


def chain_epochs(
    epoch_batches: Callable[[int, int], Iterator[list[int]]], steps: int, accum_iter: int, start: int, stop: int
) -> Iterator[list[tuple[int, int]]]:
    """The micro-batches of a run's optimizer steps ``[start, stop)``, across epochs of ``steps`` steps.

    ``epoch_batches(epoch, first)`` yields an epoch's micro-batches (lists of indices) from its step
    ``first`` on; each index comes out paired with its epoch: ``[(epoch, index), ...]``.
    """
    it = start
    while it < stop:
        epoch, first = divmod(it, steps)
        last = min(steps, first + stop - it)  # the epoch's steps [first, last) are in the run
        batches = epoch_batches(epoch, first)
        for _ in range((last - first) * accum_iter):
            yield [(epoch, i) for i in next(batches)]
        it += last - first


class EpochItems(Dataset):
    """A DataLoader's view of a dataset whose items are asked for as ``(epoch, index)``.

    ``self[(e, i)]`` is ``dataset[i]`` after ``dataset.set_epoch(e)`` (called when the epoch
    changes, in the process that reads the item: a loader worker or the main process).
    """

    def __init__(self, dataset: SampleDataset) -> None:
        self.dataset = dataset
        self.epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> list[Any]:
        """The items of a batch (a DataLoader asks for whole batches through this), one epoch at a time."""
        items: list[Any] = []
        for epoch, group in groupby(keys, key=lambda key: key[0]):
            if epoch != self.epoch:
                self.dataset.set_epoch(epoch)
                self.epoch = epoch
            indices = [index for _, index in group]
            many = getattr(self.dataset, "__getitems__", None)  # SeededSamples: one RNG save per batch
            items += many(indices) if many is not None else [self.dataset[i] for i in indices]
        return items
