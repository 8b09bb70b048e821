"""Dependent masks over branches (core/masking/views.py): DMJD's disjoint views, LUT's consecutive keep sets.

Counts from crossmodal_and_zoo.md B3 / B5 and the reference code (DMJD `block_masking` /
`random_masking`, LUT `random_masking`); the complement is checked against a brute-force version
of DMJD's procedure."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from anymae.core.masking import (
    ConsecutiveKeepMasking, DisjointMasking, MaskContext, MaskPlan, SampleRNG, make_masking, make_plan,
    plan_from_noise,
)


def _two_views(strategy: DisjointMasking, grid: tuple[int, ...], b: int = 4) -> tuple[MaskPlan, MaskPlan]:
    first = make_plan(strategy, grid, b, device="cpu", seeds=torch.arange(b), context=MaskContext())
    second = make_plan(strategy, grid, b, device="cpu", seeds=torch.arange(b) + 100,
                       context=MaskContext(branch=1, plans=[first]))
    return first, second


def _cells(keep: Tensor, w: int = 14, c: int = 2) -> set[int]:
    return {(int(t) // w // c) * (w // c) + (int(t) % w) // c for t in keep}


def test_dmjd_block_at_0_6_shows_19_of_49_cells_per_view_and_the_views_are_disjoint() -> None:
    first, second = _two_views(make_masking("disjoint", 0.6, cell=2), (14, 14))  # ViT-B/16: 7×7 cells
    assert first.keep.shape == second.keep.shape == (4, 76)  # 19 cells × 4 tokens
    for a, b in zip(first.keep, second.keep):
        ca, cb = _cells(a), _cells(b)
        assert len(ca) == len(cb) == 19  # whole cells: 76 tokens in 19 cells
        assert not set(a.tolist()) & set(b.tolist()) and not ca & cb  # disjoint visible sets


def test_dmjd_rand_at_0_6_keeps_78_of_196_per_view_disjoint() -> None:
    first, second = _two_views(DisjointMasking(0.6), (14, 14))
    assert first.keep.shape[1] == second.keep.shape[1] == int(196 * 0.4) == 78
    for a, b in zip(first.keep, second.keep):
        assert not set(a.tolist()) & set(b.tolist())


def test_dmjd_below_half_shares_the_rest_of_view_one() -> None:
    """r = 0.4, L = 196: len_keep = int(196·0.6) = 117, e = int(0.4·196) = 78: view 2 keeps 39 of view 1's
    visible tokens and shows 78 of its 79 hidden ones."""
    first, second = _two_views(DisjointMasking(0.4), (196,))
    for a, b in zip(first.keep, second.keep):
        a_set, b_set = set(a.tolist()), set(b.tolist())
        assert len(a_set) == len(b_set) == 117
        assert len(a_set & b_set) == 39 and len(b_set - a_set) == 78


def _brute_force(visible: list[int], u: list[float], n: int, keep: int, e: int) -> set[int]:
    """DMJD's complement as the reference builds it, per sample: view 1's visible units ordered by
    their draw, the first e hidden; view 1's hidden ones ordered, the last e shown."""
    vis = sorted(visible, key=lambda t: u[t])
    hid = sorted((t for t in range(n) if t not in set(visible)), key=lambda t: u[t])
    shown = vis[e:] + hid[len(hid) - e:]
    assert len(shown) == keep
    return set(shown)


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.6, 0.75])
def test_the_complement_equals_a_brute_force_of_dmjds_procedure(ratio: float) -> None:
    n, b = 20, 3
    strategy = DisjointMasking(ratio)
    first = plan_from_noise(torch.rand(b, n, generator=torch.Generator().manual_seed(1)), strategy.num_keep(n))
    seeds = torch.tensor([7, 8, 9])
    u = SampleRNG(b, seeds=seeds).rand(n)  # the draw the strategy makes for branch 1
    second = make_plan(strategy, (n,), b, device="cpu", seeds=seeds, context=MaskContext(branch=1, plans=[first]))
    keep, e = strategy.num_keep(n), strategy.num_changed(n)
    assert e == int(min(1.0 - ratio, ratio) * n)
    for i in range(b):
        expected = _brute_force(first.keep[i].tolist(), u[i].tolist(), n, keep, e)
        assert set(second.keep[i].tolist()) == expected


def test_disjoint_refuses_bad_options() -> None:
    with pytest.raises(ValueError, match="pred_ratio"):
        DisjointMasking(0.6, pred_ratio=0.5)
    with pytest.raises(ValueError, match="cell"):
        DisjointMasking(0.6, cell=0)
    with pytest.raises(ValueError, match="divisible by 2"):
        DisjointMasking(0.6, cell=2).num_keep(49, (7, 7))


def test_lut_keep_sets_are_consecutive_slices_of_one_shuffle() -> None:
    n, b = 16, 2
    strategy = ConsecutiveKeepMasking(0.75)  # K = 4
    noise = torch.rand(b, n, generator=torch.Generator().manual_seed(3))
    shuffle = torch.argsort(noise, dim=1)
    plans = [make_plan(strategy, (n,), b, device="cpu", noise=noise)]
    for k in (1, 2, 3):
        plans.append(make_plan(strategy, (n,), b, device="cpu", seeds=torch.arange(b),
                               context=MaskContext(branch=k, plans=list(plans))))
    for k, plan in enumerate(plans):
        assert torch.equal(plan.keep, shuffle[:, 4 * k : 4 * (k + 1)])  # exact indices, in shuffle order
    with pytest.raises(ValueError, match="branch 4 would keep shuffle positions 16..19 of 16"):
        make_plan(strategy, (n,), b, device="cpu", seeds=torch.arange(b), context=MaskContext(branch=4, plans=plans))
