"""Per-sample seeds: every random choice for a sample flows from (base seed, epoch, index).

This is what makes a resumed run continue exactly and makes DDP rank-invariant: a sample's
augmentation (and, through the returned seed, its mask) does not depend on which worker, rank or
batch position it lands in, nor on how many samples were drawn before it.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _words(name: str, value: int) -> list[int]:
    """Split a non-negative int below 2**64 into two fixed uint32 words (lo, hi)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if not 0 <= value <= _MASK64:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return [value & _MASK32, value >> 32]


def sample_seed(base_seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one sample of one epoch.

    The three inputs are each written as two fixed uint32 words (so no two different triples
    give the same entropy), hashed by numpy's ``SeedSequence`` (the hash numpy uses to spawn
    independent streams), and the first 64-bit output word is shifted right by one to fit in a
    signed int64 (a LongTensor after default collation).

    Args:
        base_seed: the run's seed, in [0, 2**64).
        epoch: epoch number, in [0, 2**64).
        index: dataset index, in [0, 2**64).

    Returns:
        An int in [0, 2**63).
    """
    entropy = _words("base_seed", base_seed) + _words("epoch", epoch) + _words("index", index)
    word = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return int(word) >> 1


class SeededSamples(Dataset):
    """Wrap a dataset so each item is produced under RNGs seeded from its own sample seed.

    ``__getitem__(i)`` computes ``s = sample_seed(base_seed, epoch, i)``, seeds torch's CPU
    generator, python's ``random`` and numpy's legacy global RNG from ``s``, calls
    ``dataset[i]``, then restores all three states, so the caller's RNG streams are untouched.
    The inner dataset must return ``(x, label)``; this returns ``(x, label, s)`` with ``s`` a
    python int (the default collate turns a batch of them into a LongTensor[B], ready for
    ``model(x, seeds=...)``).

    Only the CPU torch generator is seeded: transforms running in a data loader do not use
    accelerator RNGs, and leaving them alone keeps the caller's accelerator streams intact.
    """

    def __init__(self, dataset: Dataset, base_seed: int) -> None:
        _words("base_seed", base_seed)
        self.dataset = dataset
        self.base_seed = int(base_seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose seeds ``__getitem__`` uses (call before each epoch)."""
        _words("epoch", epoch)
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        s = sample_seed(self.base_seed, self.epoch, index)
        py_state = random.getstate()
        np_state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(s)
                random.seed(s)
                np.random.seed([s & _MASK32, s >> 32])
                item = self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(
                f"SeededSamples expects the wrapped {type(self.dataset).__name__} to return "
                f"(x, label), got {type(item).__name__}"
                + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
            )
        x, label = item
        return x, label, s
