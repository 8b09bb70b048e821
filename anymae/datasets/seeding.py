"""Per-sample seeds: every random choice for a sample flows from (base seed, epoch, index).

This is what makes a resumed run continue exactly and makes DDP rank-invariant: a sample's
augmentation (and, through the returned seed, its mask) does not depend on which worker, rank or
batch position it lands in, nor on how many samples were drawn before it. The hash itself
(`sample_seed`) lives with every other seed hash in `core/seeds.py`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from anymae.core.seeds import MASK32, sample_seed, sample_seeds, seed_words
from anymae.datasets.contract import DatasetView, dataset_name

__all__ = ["SeededSamples", "sample_seed"]


class SeededSamples(DatasetView):
    """Wrap a dataset so each item is produced under RNGs seeded from its own sample seed.

    ``__getitem__(i)`` computes ``s = sample_seed(base_seed, epoch, i)``, seeds torch's CPU
    generator, python's ``random`` and numpy's legacy global RNG from ``s``, calls
    ``dataset[i]``, then restores all three states, so the caller's RNG streams are untouched.
    The inner dataset must return ``(x, label)``; this returns ``(x, label, s)`` with ``s`` a
    python int (``collate`` turns a batch of them into a LongTensor, ready for
    ``model(x, seeds=...)``).

    Only the CPU torch generator is seeded: transforms running in a data loader do not use
    accelerator RNGs, and leaving them alone keeps the caller's accelerator streams intact.

    The rest of the dataset contract is the wrapped dataset's (`DatasetView`), except `collate`,
    which adds the seeds: one per input, so with k = ``inputs_per_item`` > 1 (VideoMAE V2's
    repeated sampling) input j of an item gets its own mask seed ``sample_seed(s, 0, j)``.
    """

    def __init__(self, dataset: Dataset, base_seed: int) -> None:
        seed_words("base_seed", base_seed)
        super().__init__(dataset)
        self.base_seed = int(base_seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose seeds ``__getitem__`` uses (call before each epoch)."""
        seed_words("epoch", epoch)
        self.epoch = int(epoch)
        self.dataset.set_epoch(epoch)

    def collate(self, items: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
        """[(x, label, s)] -> (the wrapped dataset's batch of (x, label)..., LongTensor[B·k] seeds)."""
        batch = self.dataset.collate([item[:2] for item in items])
        k = self.dataset.inputs_per_item
        seeds = [int(item[2]) for item in items]
        if k > 1:  # B·k inputs, item-major: input j of item i at row i·k + j
            seeds = [sample_seed(s, 0, j) for s in seeds for j in range(k)]
        return (*batch, torch.tensor(seeds, dtype=torch.long))

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, Any, int]]:
        """``[self[i] for i in indices]``, saving and restoring the caller's RNG states once.

        A DataLoader given a batch sampler asks for a whole batch through this method. Every item
        still gets its own seeds (so the items equal those read one by one), but the numpy state
        (a 624-word array, ~70 µs to save and restore) and python's are copied once per batch.
        """
        py_state = random.getstate()
        np_state = np.random.get_state()
        items: list[tuple[Any, Any, int]] = []
        try:
            with torch.random.fork_rng(devices=[]):
                for index, s in zip(indices, sample_seeds(self.base_seed, self.epoch, indices), strict=True):
                    torch.random.default_generator.manual_seed(s)
                    random.seed(s)
                    np.random.seed([s & MASK32, s >> 32])
                    items.append((*self._pair(self.dataset[index]), s))
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        return items

    def _pair(self, item: Any) -> tuple[Any, Any]:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(
                f"SeededSamples expects the wrapped {dataset_name(self.dataset)} to return "
                f"(x, label), got {type(item).__name__}"
                + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
            )
        return item[0], item[1]
