"""One source per batch: several datasets, every batch drawn whole from one of them (OmniMAE).

OmniMAE's data (crossmodal_and_zoo.md A2: omnivore's `ConcatDataset(max_steps=sum,
batching_strategy=use_one)`): images and clips are never mixed in a batch; an epoch is the
batches of every source, interleaved at random. Here:

- `datasets.mixed.SourceItems` (`data.source: mixed`) concatenates the sources; its item i is
  `({name: x}, label)` from the source holding i (the name is the model's modality for that
  source, e.g. "image" or "video"), so a batch is a one-key modality dict.
- `SourceBatchSampler` yields one rank's micro-batches of an epoch. Source s goes through a
  permutation of its items `repeat_s` times (a fraction allowed: the first `floor(repeat_s ·
  len_s)` positions of the repeated permutations), cut into global batches of `batch_size_s ×
  world_size` (the tail dropped); the batches of all sources are then shuffled together. Rank r
  takes positions `[r · b_s, (r + 1) · b_s)` of each global batch, so the ranks' union is the
  one-process batch. Everything depends only on (seed, epoch): deterministic, resumable by
  `start` (the number of batches to skip), identical on every rank.

- `RunSourceBatchSampler` chains the epochs for a whole run and yields `(epoch, index)` pairs
  as the engine's `sampler.RunBatchSampler` does (for `EpochItems`), `accum_iter` micro-batches
  per optimizer step, resumable at any step; the engine uses it for a dataset holding a
  `SourceItems` (`steps.run_batches`, `source_items`).

Batches per epoch from source s: `floor(floor(repeat_s · len_s) / (batch_size_s · world_size))`;
that ratio between sources is the frequency with which a step draws from each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

from anymae.core.seeds import mix_seed
from anymae.datasets.mixed import SourceItems
from anymae.tasks.train.loader.sampler import chain_epochs


class SourceBatchSampler(Sampler[list[int]]):
    """One rank's micro-batches of one epoch, each from one source (module doc).

    Args:
        sizes: items per source (`len` of each, in `SourceItems` order).
        batch_sizes: per-rank batch size per source (one int: the same for all).
        repeats: passes over each source per epoch (OmniMAE's repeat factors; fractions allowed).
        world_size, rank: the ranks.
        seed, epoch: the randomness.
        start: batches of the epoch already consumed (a resumed run).
    """

    def __init__(
        self, sizes: Sequence[int], batch_sizes: int | Sequence[int], repeats: Sequence[float] | None = None, *,
        world_size: int = 1, rank: int = 0, seed: int = 0, epoch: int = 0, start: int = 0,
    ) -> None:
        n = len(sizes)
        self.sizes = [int(s) for s in sizes]
        self.batch_sizes = [int(batch_sizes)] * n if isinstance(batch_sizes, int) else [int(b) for b in batch_sizes]
        self.repeats = [1.0] * n if repeats is None else [float(r) for r in repeats]
        if len(self.batch_sizes) != n or len(self.repeats) != n:
            raise ValueError(f"SourceBatchSampler: {n} sources but {len(self.batch_sizes)} batch sizes and "
                             f"{len(self.repeats)} repeat factors")
        if min(self.batch_sizes) < 1 or min(self.repeats) < 0 or not 0 <= rank < world_size:
            raise ValueError(f"SourceBatchSampler: batch sizes must be >= 1 ({self.batch_sizes}), repeat factors "
                             f">= 0 ({self.repeats}), 0 <= rank < world_size ({rank}, {world_size})")
        self.world_size, self.rank, self.seed, self.epoch = world_size, rank, seed, epoch
        self.counts = [int(int(r * s) // (b * world_size)) for r, s, b in zip(self.repeats, self.sizes,
                                                                                self.batch_sizes, strict=True)]
        if sum(self.counts) == 0:
            raise ValueError(f"SourceBatchSampler: no source fills one batch (sizes {self.sizes}, batch sizes "
                             f"{self.batch_sizes} × world_size {world_size}, repeats {self.repeats})")
        if not 0 <= start <= sum(self.counts):
            raise ValueError(f"start={start} is outside the epoch's {sum(self.counts)} batches")
        self.start = start

    def __len__(self) -> int:
        return sum(self.counts) - self.start

    def schedule(self) -> list[int]:
        """The source of each batch of the epoch, in order (the same on every rank)."""
        order = [s for s, c in enumerate(self.counts) for _ in range(c)]
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        return [order[i] for i in torch.randperm(len(order), generator=g).tolist()]

    def _positions(self, s: int) -> list[int]:
        """Source s's item order for the epoch: its permutations, repeated, cut to floor(repeat · size)."""
        g = torch.Generator().manual_seed(mix_seed(mix_seed(self.seed, self.epoch), s + 1))
        need, out = int(self.repeats[s] * self.sizes[s]), []
        while len(out) < need:
            out += torch.randperm(self.sizes[s], generator=g).tolist()
        return out[:need]

    def __iter__(self) -> Iterator[list[int]]:
        offsets = [0]
        for size in self.sizes:
            offsets.append(offsets[-1] + size)
        orders = {s: self._positions(s) for s in range(len(self.sizes)) if self.counts[s]}
        used = [0] * len(self.sizes)
        for k, s in enumerate(self.schedule()):
            b = self.batch_sizes[s]
            first = used[s] * b * self.world_size + self.rank * b
            used[s] += 1
            if k >= self.start:
                yield [offsets[s] + i for i in orders[s][first : first + b]]


class RunSourceBatchSampler(Sampler[list[tuple[int, int]]]):
    """One rank's micro-batches for optimizer steps `[start, stop)` of a run, across epochs, each
    from one source: `SourceBatchSampler`'s epochs chained, every index paired with its epoch
    (`[(epoch, index), ...]`, as `sampler.RunBatchSampler` yields them for `EpochItems`).

    An optimizer step is `accum_iter` consecutive micro-batches; an epoch has
    `sum(counts) // accum_iter` steps (a tail that fills no step is dropped).
    """

    def __init__(
        self, sizes: Sequence[int], batch_sizes: int | Sequence[int], repeats: Sequence[float] | None = None, *,
        world_size: int = 1, rank: int = 0, accum_iter: int = 1, seed: int = 0, start: int = 0, stop: int,
    ) -> None:
        self._args = {"sizes": sizes, "batch_sizes": batch_sizes, "repeats": repeats, "world_size": world_size,
                      "rank": rank, "seed": seed}
        self.accum_iter = accum_iter
        self.steps = len(SourceBatchSampler(**self._args)) // accum_iter  # type: ignore[arg-type]
        if self.steps == 0 or not 0 <= start <= stop:
            raise ValueError(f"RunSourceBatchSampler: {self.steps} steps per epoch, start={start}, stop={stop}")
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return (self.stop - self.start) * self.accum_iter

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        def epoch_batches(epoch: int, first: int) -> Iterator[list[int]]:
            return iter(SourceBatchSampler(**self._args, epoch=epoch, start=first * self.accum_iter))  # type: ignore[arg-type]

        return chain_epochs(epoch_batches, self.steps, self.accum_iter, self.start, self.stop)


def source_items(dataset: Any) -> SourceItems | None:
    """The `SourceItems` a dataset is or wraps (through `.dataset` links: seeding, caching), else None."""
    seen = 0
    while dataset is not None and seen < 16:
        if isinstance(dataset, SourceItems):
            return dataset
        dataset, seen = getattr(dataset, "dataset", None), seen + 1
    return None


def run_source_sampler(
    items: SourceItems, batch_size: int, *, world_size: int, rank: int, accum_iter: int, seed: int, start: int = 0,
    stop: int | None = None,
) -> RunSourceBatchSampler:
    """The engine's sampler for a mixed dataset (every source at `batch_size` per rank, its repeat factor)."""
    sampler = RunSourceBatchSampler(
        items.sizes, batch_size, items.repeats, world_size=world_size, rank=rank, accum_iter=accum_iter, seed=seed,
        start=start, stop=start + 1 if stop is None else stop,
    )
    return sampler
