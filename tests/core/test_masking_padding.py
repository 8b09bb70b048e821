"""Padded sequences in masking (`core.masking.padding`), LV-MAE's similarity masking, and the
encoder's key-padding mask: hand-computed index sets and parity with the unpadded path."""

from __future__ import annotations

import math

import torch

from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.masking import MaskContext, RandomMasking, make_masking, make_plan, plan_from_noise, plan_padded
from anymae.core.masking.padding import padded_plan
from anymae.core.masking.similarity import neighbour_similarity
from anymae.core.tokens import Tokens


def test_plan_padded_without_padding_is_the_primitive() -> None:
    scores = torch.rand(4, 10, generator=torch.Generator().manual_seed(0))
    ref = plan_from_noise(scores, 3)
    got = plan_padded(scores, torch.ones(4, 10, dtype=torch.bool), torch.full((4,), 3))
    for a, b in ((got.keep, ref.keep), (got.hide, ref.hide), (got.restore, ref.restore)):
        assert torch.equal(a, b)
    assert torch.equal(got.mask, ref.mask)


def test_plan_padded_by_hand() -> None:
    # sample 0: 6 real tokens, keeps int(6·0.5) = 3: scores 0.1 (t1), 0.2 (t5), 0.3 (t3)
    # sample 1: 4 real tokens + 2 padding, keeps int(4·0.5) = 2 (t2 0.2, t0 0.4), then one filler
    #           padding slot (t4, by index); hidden: the other padding (t5), then t3 (0.6), t1 (0.8)
    scores = torch.tensor([[0.5, 0.1, 0.9, 0.3, 0.7, 0.2], [0.4, 0.8, 0.2, 0.6, 0.0, 0.0]])
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    tokens = Tokens(x=torch.zeros(2, 6, 1), target=torch.zeros(2, 6, 1), grid=(6,), valid=valid)
    plan = make_plan(RandomMasking(0.5), (6,), 2, device="cpu", noise=scores, context=MaskContext(tokens=tokens))
    assert plan.keep.tolist() == [[1, 5, 3], [2, 0, 4]]
    assert plan.hide.tolist() == [[0, 4, 2], [5, 3, 1]]
    assert plan.mask.tolist() == [[1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 0]]  # padding neither hidden nor scored
    order = torch.cat([plan.keep, plan.hide], 1)
    assert torch.equal(torch.gather(order, 1, plan.restore), torch.arange(6).expand(2, 6))


def test_padded_counts_are_exact_per_sample() -> None:
    lengths = torch.tensor([17, 9, 4, 12, 2])
    n = 17
    valid = torch.arange(n)[None] < lengths[:, None]
    strategy = RandomMasking(0.7)
    plan = padded_plan(strategy, (n,), 5, valid, device="cpu", seeds=torch.arange(5))
    visible = ((1 - plan.mask) * valid).sum(1)  # real tokens not hidden
    expected = [max(1, int(length * (1 - 0.7))) for length in lengths.tolist()]
    assert visible.tolist() == expected  # 5, 2, 1, 3, 1 (a 2-token clip keeps its one token: see the rule)
    assert plan.mask.sum(1).tolist() == [length - k for length, k in zip(lengths.tolist(), expected)]
    kept_real = torch.gather(valid, 1, plan.keep).sum(1)
    assert kept_real.tolist() == expected  # the other keep slots are padding fillers


def _unit_rows(degrees: list[float]) -> torch.Tensor:
    a = torch.tensor(degrees) * math.pi / 180
    return torch.stack([a.cos(), a.sin()], dim=-1)[None]  # 1×N×2


def test_neighbour_similarity_by_hand() -> None:
    rows = _unit_rows([0, 30, 100, 125, 300, 290])
    expected = [0.0, math.cos(math.radians(30)), math.cos(math.radians(70)), math.cos(math.radians(25)),
                math.cos(math.radians(175)), math.cos(math.radians(10))]
    assert torch.allclose(neighbour_similarity(rows)[0], torch.tensor(expected), atol=1e-6)


def _plan(masking, rows: torch.Tensor, valid: torch.Tensor | None = None):
    tokens = Tokens(x=rows, target=rows, grid=(rows.shape[1],), valid=valid)
    return make_plan(masking, tokens.grid, rows.shape[0], device="cpu", context=MaskContext(tokens=tokens))


def test_similarity_masking_hides_the_most_similar_by_hand() -> None:
    # scores: t0 0, t1 .866, t2 .342, t3 .906, t4 -.996, t5 .985 (LV-MAE: large = hidden)
    rows = _unit_rows([0, 30, 100, 125, 300, 290])
    plan = _plan(make_masking("similarity", 0.5), rows)  # keeps int(6·0.5) = 3
    assert sorted(plan.keep[0].tolist()) == [0, 2, 4] and sorted(plan.hide[0].tolist()) == [1, 3, 5]
    plan = _plan(make_masking("similarity", 0.6), rows)  # keeps int(6·0.4) = 2: the two least similar
    assert sorted(plan.keep[0].tolist()) == [0, 4]
    plan = _plan(make_masking("similarity", 0.5, hide="dissimilar"), rows)  # the code comment's reading
    assert sorted(plan.keep[0].tolist()) == [1, 3, 5]


def test_similarity_masking_with_padding() -> None:
    rows = torch.cat([_unit_rows([0, 30, 100, 125, 300, 290]), torch.zeros(1, 2, 2)], dim=1)  # 1×8×2
    other = _unit_rows([0, 10, 20, 30, 40, 50, 60, 70])  # a full-length second sample
    valid = torch.tensor([[True] * 6 + [False] * 2, [True] * 8])
    plan = _plan(make_masking("similarity", 0.5), torch.cat([rows, other]), valid)
    assert plan.mask[0].tolist() == [0, 1, 0, 1, 0, 1, 0, 0]
    assert int(plan.mask[1].sum()) == 4  # int(8·0.5) kept, 4 hidden


def test_encoder_never_attends_to_padding() -> None:
    torch.manual_seed(0)
    enc = TransformerEncoder(EncoderConfig(dim=16, depth=2, num_heads=2)).eval()
    x, pos = torch.randn(1, 5, 16), torch.randn(1, 5, 16)
    alone, _ = enc(x, pos)  # 1×(1+5)×16
    for pad in (1, 4):
        xp = torch.cat([x, 100 * torch.randn(1, pad, 16)], 1)
        pp = torch.cat([pos, torch.randn(1, pad, 16)], 1)
        valid = torch.tensor([[True] * 5 + [False] * pad])
        padded, _ = enc(xp, pp, valid=valid)
        assert torch.allclose(padded[:, :6], alone, atol=1e-5)
