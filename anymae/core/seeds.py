"""Every seed hash and seed offset of anymae, in one place.

Randomness flows from one run seed (DESIGN: "one seed; a resumed run continues exactly"):

- `sample_seed(base, epoch, index)`: one sample's seed (augmentation and, through the batch's
  seeds, its mask); `datasets/seeding.py` hands it out with each item (`sample_seeds`: a whole
  batch's at once, the same values).
- `mix_seed(*values)`: run-level streams (the epoch's data order, dropout per step and rank,
  data-loader worker seeds; `tasks/train`).
- `fold_seeds(seeds, rows)`: the per-sample seeds of a batch folded into one seed per token row,
  for tokenizers that pack several samples into one row (a mini-batch of graphs).
- `offset_seeds` / `branch_seeds`: independent streams derived from the per-sample seeds inside
  a model (a second mask draw, a decoder-side mask, replacement sources).

Two hashes live here side by side on purpose. `sample_seed` and `fold_seeds` hash with numpy's
`SeedSequence` (`_seed_from_entropy`); `mix_seed` hashes with BLAKE2b. They give different values
for the same inputs and both are relied on: recorded runs (README figures, resumed checkpoints)
were made with these exact streams, so replacing one by the other would change every data order,
dropout draw or mask of a run that is reproduced. `sample_seed` writes each input as two fixed
uint32 words; `fold_seeds` hands the raw 64-bit values to `SeedSequence` (which splits them into
as many words as they need); both encodings are kept for the same reason.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF

# Offsets added to per-sample seeds to derive independent streams. One constant per role:
# DECODER_MASK_OFFSET for a decoder-side mask (VideoMAE V2), SECOND_STREAM_OFFSET for a second
# draw from the same samples (Point-CMAE's second mask; a replacement model's source tokens).
DECODER_MASK_OFFSET = 0x5DEECE66D
SECOND_STREAM_OFFSET = 0x2545F4914F6CDD1D


def seed_words(name: str, value: int) -> list[int]:
    """A non-negative int below 2**64 as two fixed uint32 words (lo, hi).

    Raises:
        TypeError: `value` is not an int (bools refused).
        ValueError: `value` is outside [0, 2**64).
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if not 0 <= value <= MASK64:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return [value & MASK32, value >> 32]


def _seed_from_entropy(entropy: list[int]) -> int:
    """numpy `SeedSequence(entropy)`'s first 64-bit word shifted right by one: an int in [0, 2**63)."""
    word = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return int(word) >> 1


# numpy's SeedSequence hash (the constants of its `bit_generator` module, from M. E. O'Neill's
# seed_seq_fe): 32-bit multiply-xorshift mixing of the entropy words into a pool of 4 words.
_POOL = 4
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715


def _seed_sequence_words(entropy: np.ndarray) -> np.ndarray:
    """Rows of uint32 entropy words -> each row's ``SeedSequence(row).generate_state(1, uint64)[0]``.

    numpy's SeedSequence hash, vectorized over rows: the same result for every row as numpy
    builds one ``SeedSequence`` per row (tested against it), in one pass of array operations for a
    whole batch of samples instead of ~30 µs per sample.

    Args:
        entropy: B×n uint32, n >= 4 words per row (each below 2**32, as SeedSequence splits them).

    Returns:
        B uint64.
    """
    words = entropy.astype(np.uint64)  # B×n; products are reduced mod 2**32 by hand below
    mask = np.uint64(MASK32)
    hash_const = _INIT_A

    def hashmix(value: np.ndarray) -> np.ndarray:
        nonlocal hash_const
        value = value ^ np.uint64(hash_const)
        hash_const = (hash_const * _MULT_A) & MASK32
        value = (value * np.uint64(hash_const)) & mask
        return value ^ (value >> np.uint64(16))

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = (np.uint64(_MIX_L) * x + (np.uint64(MASK32 + 1) - (np.uint64(_MIX_R) * y) & mask)) & mask
        return result ^ (result >> np.uint64(16))

    pool = [hashmix(words[:, i]) for i in range(_POOL)]  # 4 × B
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, words.shape[1]):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(words[:, src]))
    out, hash_const = [], _INIT_B
    for i in range(2):  # two uint32 state words -> one little-endian uint64
        value = pool[i] ^ np.uint64(hash_const)
        hash_const = (hash_const * _MULT_B) & MASK32
        value = (value * np.uint64(hash_const)) & mask
        out.append(value ^ (value >> np.uint64(16)))
    return out[0] | (out[1] << np.uint64(32))


def sample_seeds(base_seed: int, epoch: int, indices: Sequence[int]) -> list[int]:
    """``[sample_seed(base_seed, epoch, i) for i in indices]``, hashed together in one pass.

    The same values (tested), for a batch at ~2.5 µs per sample instead of numpy's ~30 µs per
    ``SeedSequence``; for one sample numpy's own object is faster (`sample_seed`).
    """
    head = seed_words("base_seed", base_seed) + seed_words("epoch", epoch)
    rows = [head + seed_words("index", i) for i in indices]
    if not rows:
        return []
    words = _seed_sequence_words(np.asarray(rows, dtype=np.uint64))  # B
    return [int(w) >> 1 for w in words.tolist()]


def sample_seed(base_seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one sample of one epoch.

    The three inputs are each written as two fixed uint32 words (so no two different triples
    give the same entropy), hashed by numpy's ``SeedSequence`` (the hash numpy uses to spawn
    independent streams), and the first
    64-bit output word is shifted right by one to fit in a signed int64 (a LongTensor after
    default collation).

    Args:
        base_seed: the run's seed, in [0, 2**64).
        epoch: epoch number, in [0, 2**64).
        index: dataset index, in [0, 2**64).

    Returns:
        An int in [0, 2**63).
    """
    entropy = seed_words("base_seed", base_seed) + seed_words("epoch", epoch) + seed_words("index", index)
    return _seed_from_entropy(entropy)


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers (e.g. ``(seed, epoch)`` or ``(seed, step, rank)``).

    BLAKE2b over the values packed as little-endian int64 (see the module doc for why this hash
    is not `SeedSequence`).
    """
    digest = hashlib.blake2b(struct.pack(f"<{len(values)}q", *values), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def fold_seeds(seeds: Tensor, rows: int) -> Tensor:
    """Per-sample seeds -> one seed per token row.

    Equal counts pass through. When a tokenizer packs all B samples into one row, the B seeds are
    hashed (numpy `SeedSequence`) into one 63-bit seed: the row's mask then depends only on which
    samples (which seeds) it holds, so resumed and re-run batches draw the same mask.

    Args:
        seeds: B int64 seeds.
        rows: token rows the tokenizer produced.

    Returns:
        `rows` int64 seeds on the device of `seeds`.
    """
    if seeds.numel() == rows:
        return seeds
    if rows != 1:
        raise ValueError(f"got {seeds.numel()} seeds for {rows} token rows; packed batches must be one row")
    word = _seed_from_entropy([int(s) & MASK64 for s in seeds.flatten().tolist()])
    return torch.tensor([word], dtype=torch.long, device=seeds.device)


def _as_int64(value: int) -> int:
    """An int wrapped to the signed int64 range (two's complement), as int64 tensor arithmetic wraps."""
    return ((value + 2**63) & MASK64) - 2**63


def offset_seeds(seeds: Tensor | None, offset: int) -> Tensor | None:
    """B int64 seeds + `offset` (wrapping as int64), or None when there are no seeds."""
    return None if seeds is None else seeds + _as_int64(offset)


def branch_seeds(seeds: Tensor | None, branch: int) -> Tensor | None:
    """The seeds of a model's mask draw number `branch` (0 = the seeds themselves).

    Branch k draws from `seeds + k · SECOND_STREAM_OFFSET` (wrapping as int64), so branch 1 is
    Point-CMAE's second mask.
    """
    if branch < 0:
        raise ValueError(f"branch must be >= 0, got {branch}")
    return seeds if branch == 0 else offset_seeds(seeds, branch * SECOND_STREAM_OFFSET)
