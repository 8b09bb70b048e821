"""Count sketches along the token axis (core.masking.sketch): sizes, buckets, the projector, the
reference's construction."""

from __future__ import annotations

import math

import torch

from anymae.core.masking.sketch import draw_count_sketch, draw_projectors, sketch_matrix, sketch_projector, sketch_size


def test_sketch_sizes_and_buckets_at_vit_b() -> None:
    """N = 196, ρ = 0.14: d' = ceil(27.44) = 28 buckets of exactly 7; every run of 28 consecutive
    tokens is one permutation of the buckets; 98 signs of each kind."""
    assert sketch_size(196, 0.14) == 28 and sketch_size(64, 0.14) == 9
    h, s = draw_count_sketch(196, 0.14, torch.Generator().manual_seed(0))
    assert torch.bincount(h, minlength=28).tolist() == [7] * 28
    for run in h.view(7, 28):
        assert sorted(run.tolist()) == list(range(28))
    assert (s == 1).sum() == 98 and (s == -1).sum() == 98


def test_bucket_sizes_when_the_sketch_does_not_divide_the_tokens() -> None:
    """N = 64, d' = 9: seven whole permutations and one token of an eighth -> eight buckets of 7, one of 8."""
    h, s = draw_count_sketch(64, 0.14, torch.Generator().manual_seed(1))
    assert sorted(torch.bincount(h, minlength=9).tolist()) == [7] * 8 + [8]
    assert (s == 1).sum() == 32


def test_projector_by_hand_on_six_tokens() -> None:
    """h = (2, 0, 1, 1, 2, 0), s = (+, -, -, +, +, -), ρ = 0.5: buckets {1, 5}, {2, 3}, {0, 4};
    P[i, j] = 0.5 · s_i · s_j within a bucket."""
    h = torch.tensor([2, 0, 1, 1, 2, 0])
    s = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])
    want = 0.5 * torch.tensor([
        [1, 0, 0, 0, 1, 0],
        [0, 1, 0, 0, 0, 1],
        [0, 0, 1, -1, 0, 0],
        [0, 0, -1, 1, 0, 0],
        [1, 0, 0, 0, 1, 0],
        [0, 1, 0, 0, 0, 1],
    ], dtype=torch.float32)
    p = sketch_projector(h, s, 0.5)
    assert torch.equal(p, want)
    dense = sketch_matrix(h, s, 3)  # 6×3
    assert torch.equal(dense @ dense.t() * 0.5, want)
    eye = torch.eye(6)
    torch.testing.assert_close(p + (eye - p), eye, rtol=0, atol=0)
    torch.testing.assert_close(p @ p, p)  # 2 per bucket and ρ = 1/2: an exact projector
    torch.testing.assert_close((eye - p) @ p, torch.zeros(6, 6))


def test_projector_is_the_references_construction_for_a_fixed_seed() -> None:
    """The reference fills a float array with `torch.randperm(d')` runs from the global RNG, builds S by
    `S[arange(N), h] = s` and `P = S @ (S.T · ρ)`; seeded alike, the hash and P are the same."""
    n, ratio, seed = 196, 0.14, 1234
    d = int(math.ceil(n * ratio))
    torch.manual_seed(seed)
    ref_h = torch.zeros(n)
    for i in range(int(math.ceil(n / d))):
        ref_h[i * d:(i + 1) * d] = torch.randperm(d)
    h, s = draw_count_sketch(n, ratio, torch.Generator().manual_seed(seed))
    assert torch.equal(h, ref_h.long())
    dense = torch.zeros(n, d)
    dense[torch.arange(n), ref_h.long()] = s  # the reference's create_s_dense
    torch.testing.assert_close(sketch_projector(h, s, ratio), dense @ (dense.t() * ratio))
    p = sketch_projector(h, s, ratio)
    assert torch.equal(p, p.t())
    torch.testing.assert_close(p @ p, 0.98 * p)  # 7 per bucket: P² = ρ·7·P


def test_projectors_follow_the_seed() -> None:
    a = draw_projectors(2, 64, 0.14, seeds=torch.tensor([3, 4]))
    b = draw_projectors(2, 64, 0.14, seeds=torch.tensor([3, 5]))
    assert a.shape == (2, 64, 64) and torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])
