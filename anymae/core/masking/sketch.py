"""Count sketches along the token axis: ROPIM's random projection of the token sequence.

A count sketch of N tokens into d' = ceil(N·ρ) buckets is a hash h: token -> bucket and signs
s: token -> ±1; its dense form S (N×d') has `S[i, h_i] = s_i`. ROPIM (csiro-robotics/ROPIM,
`data/data_ropim.py`, `SketchGenerator`) draws, per sample:

- h from repeated random permutations: `ceil(N / d')` permutations of the d' buckets laid end to
  end over the tokens in order (tokens 0..d'-1 get one permutation, the next d' another, ...), so
  each bucket holds one token of every run of d' consecutive tokens (7 per bucket at N = 196,
  ρ = 0.14, d' = 28);
- s as a shuffle of the balanced list `[-1, 1] · ceil(N / 2)` (exactly half the signs are -1 for
  even N);

and mixes the tokens with `P = ρ · S · Sᵀ` (N×N, symmetric): token i becomes
`ρ · s_i · Σ_{j: h_j = h_i} s_j · x_j`. `I - P` is the complement the loss is measured in
(`core.skeleton.modes.SoftMode`). With b tokens per bucket, `P² = ρ·b·P`: P is a projector
exactly when ρ = 1/b (ROPIM's 0.14 against 1/7 ≈ 0.143 makes it nearly one).

The reference's own code only runs when d' divides N (its permutations fill whole runs) and N is
even (one sign per token); here the last permutation is cut to the tokens left and the sign list
to N, which is the same draw whenever the reference runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from anymae.core.masking.plan import SampleRNG


def sketch_size(num_tokens: int, ratio: float) -> int:
    """d' = ceil(N·ρ), ROPIM's `int(np.ceil(n_size_in * sketching_ratio))` (28 at N = 196, ρ = 0.14)."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"sketch ratio must be in (0, 1], got {ratio}")
    return int(math.ceil(num_tokens * ratio))


def draw_count_sketch(num_tokens: int, ratio: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """One sample's count sketch (module doc): (h: N int64 buckets in [0, d'), s: N float ±1).

    Draw order: the `ceil(N / d')` bucket permutations, then one permutation of the sign list.
    """
    d = sketch_size(num_tokens, ratio)
    reps = math.ceil(num_tokens / d)
    h = torch.cat([torch.randperm(d, generator=generator) for _ in range(reps)])[:num_tokens]  # N
    signs = torch.tensor([-1.0, 1.0] * math.ceil(num_tokens / 2))  # 2·ceil(N/2), balanced
    s = signs[torch.randperm(signs.numel(), generator=generator)][:num_tokens]  # N
    return h, s


def sketch_matrix(h: Tensor, s: Tensor, size: int) -> Tensor:
    """Dense count sketch S: (...×N hash, ...×N signs) -> ...×N×d' with `S[i, h_i] = s_i`."""
    onehot = torch.nn.functional.one_hot(h, size).to(s.dtype)  # ...×N×d'
    return onehot * s.unsqueeze(-1)


def sketch_projector(h: Tensor, s: Tensor, ratio: float) -> Tensor:
    """`P = ρ · S · Sᵀ` from (...×N hash, ...×N signs) -> ...×N×N: `P[i, j] = ρ·s_i·s_j·[h_i = h_j]`."""
    same = (h.unsqueeze(-1) == h.unsqueeze(-2)).to(s.dtype)  # ...×N×N, same bucket
    return ratio * s.unsqueeze(-1) * s.unsqueeze(-2) * same


def draw_projectors(
    batch_size: int, num_tokens: int, ratio: float, *, seeds: Tensor | Sequence[int] | None = None,
    generator: torch.Generator | None = None, device: torch.device | str | None = None,
) -> Tensor:
    """B×N×N projectors `ρ·S·Sᵀ`, one count sketch per sample.

    With `seeds` sample i draws from `torch.Generator().manual_seed(seeds[i])` (its projector
    depends on its seed only: resume and DDP exact); without, from per-sample generators seeded
    from `generator` (or torch's global generator), as `SampleRNG.sample_generator` does.
    """
    rng = SampleRNG(batch_size, seeds=seeds, generator=generator, device=device)
    draws = [draw_count_sketch(num_tokens, ratio, rng.sample_generator(i)) for i in range(batch_size)]
    h = torch.stack([d[0] for d in draws])  # B×N
    s = torch.stack([d[1] for d in draws])  # B×N
    return sketch_projector(h, s, ratio).to(rng.device)
