"""SelectiveMAE's masking (core.masking.selective): stage schedule, counts, token expansion, HOG score."""

from __future__ import annotations

import bisect

import pytest
import torch
import torch.nn.functional as F

from anymae.core.masking import MaskContext, make_plan
from anymae.core.masking.selective import ExpansionStages, SelectiveMasking, expand, hog_patch_scores, round_sizes
from anymae.core.tokens import Tokens

SCRIPT = (0, 280, 300, 580, 600)  # main_pretrain.py: [0, 300 - S, 300, 600 - S, 600], S = 20


CLASS = (0, 200, 220, 1180, 1200)  # TokenSelect_smooth's own default


def _reference_stage(epochs: tuple[int, ...], epoch: int) -> int:
    """The reference's `update_current_stage` rule: bisect, except epochs e1 -> 1 and e3 -> 3."""
    if epoch == epochs[1]:
        return 1
    if epoch == epochs[3]:
        return 3
    return bisect.bisect_right(epochs, epoch)


@pytest.mark.parametrize("epochs", [SCRIPT, CLASS])
def test_stage_schedule_matches_the_reference_rule_at_every_epoch(epochs: tuple[int, ...]) -> None:
    stages = ExpansionStages(epochs, 20, steps_per_epoch=3)
    for epoch in range(0, epochs[-1] + 30):
        want = _reference_stage(epochs, epoch)
        assert [stages.stage(3 * epoch + i) for i in range(3)] == [want] * 3, epoch


def test_stage_counts_per_round_by_hand() -> None:
    """(most similar, least similar, random) for rounds of 7 and 8 (15 = 7 + 8 expanded at r = 0.85)."""
    stages = ExpansionStages(SCRIPT, 20, steps_per_epoch=1)
    want = {
        0: [(7, 0, 0), (8, 0, 0)], 280: [(7, 0, 0), (8, 0, 0)],
        281: [(6, 1, 0), (7, 1, 0)],  # int(0.95 · 7) = 6, int(0.95 · 8) = 7
        290: [(3, 4, 0), (4, 4, 0)], 299: [(0, 7, 0), (0, 8, 0)],  # int(0.05 · 7) = 0
        300: [(0, 7, 0), (0, 8, 0)], 580: [(0, 7, 0), (0, 8, 0)],
        581: [(0, 6, 1), (0, 7, 1)], 590: [(0, 3, 4), (0, 4, 4)], 600: [(0, 0, 7), (0, 0, 8)],
    }
    for epoch, splits in want.items():
        assert [stages.split(epoch, m) for m in (7, 8)] == splits, epoch
    assert round_sizes(15, 2) == [7, 8] and round_sizes(20, 2) == [10, 10]


def _context(n_side: int, b: int, dim: int = 16, step: int = 0, seed: int = 0) -> MaskContext:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n_side * n_side, dim, generator=g)
    tokens = Tokens(x=x, target=x, grid=(n_side, n_side))
    return MaskContext(tokens=tokens, step=step, scores=torch.randn(b, n_side * n_side, generator=g))


@pytest.mark.parametrize(("options", "visible"), [({}, 29), ({"keep_rate": 0.25, "init_rate": 0.15}, 34)])
def test_counts_at_vit_b(options: dict, visible: int) -> None:
    """r = 0.85, N = 196: len_keep 29 -> 14 sampled; + 15 (script) or + 20 (class defaults) expanded;
    49 reconstructed among the rest, disjoint from the visible set."""
    masking = SelectiveMasking(0.85, kept_mask_ratio=0.25, **options)
    assert masking.counts(196)[:2] == (14, visible - 14) and masking.counts(196)[2] == 49
    plan = make_plan(masking, (14, 14), 3, device="cpu", seeds=torch.tensor([1, 2, 3]), context=_context(14, 3))
    assert plan.keep.shape == (3, visible) and plan.loss is not None and plan.loss.shape == (3, 49)
    for keep, loss, hide in zip(plan.keep.tolist(), plan.loss.tolist(), plan.hide.tolist()):
        assert len(set(keep)) == visible and set(loss) <= set(hide) and not set(loss) & set(keep)


def _brute_expand(emb: torch.Tensor, selected: list[int], rest: list[int], sizes: list[int], most: bool) -> set[int]:
    """Per-sample loop: each round adds the `size` rest tokens whose best cosine similarity to the
    current selection is highest (`most`) or lowest."""
    unit = F.normalize(emb, dim=-1)
    selected, rest = list(selected), list(rest)
    for size in sizes:
        best = {t: max(float(unit[t] @ unit[s]) for s in selected) for t in rest}
        picked = sorted(rest, key=lambda t: best[t], reverse=most)[:size]
        selected += picked
        rest = [t for t in rest if t not in picked]
    return set(selected)


@pytest.mark.parametrize(("split", "most"), [(0, True), (1, False)])
def test_expansion_adds_the_most_or_least_similar_like_a_brute_force_loop(split: int, most: bool) -> None:
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(2, 30, 8, generator=g)
    selected = torch.tensor([[0, 5, 9], [3, 4, 20]])
    rest = torch.stack([torch.tensor([t for t in range(30) if t not in row.tolist()]) for row in selected])
    sizes = [4, 5]
    splits = [tuple(m if i == split else 0 for i in range(3)) for m in sizes]
    out, left = expand(emb, selected, rest, sizes, splits, [torch.rand(2, 30, generator=g) for _ in sizes])
    for i in range(2):
        want = _brute_expand(emb[i], selected[i].tolist(), rest[i].tolist(), sizes, most)
        assert set(out[i].tolist()) == want and set(left[i].tolist()) == set(range(30)) - want


def test_random_stage_keeps_the_forced_least_similar_and_draws_the_rest() -> None:
    """Stage 4 at c = 10 of 20 (one round of 5): int(0.5 · 5) = 2 least similar forced, 3 random."""
    assert ExpansionStages(SCRIPT, 20).split(590, 5) == (0, 2, 3)
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(1, 30, 8, generator=g)
    selected = torch.tensor([[0, 5, 9]])
    rest = torch.tensor([[t for t in range(30) if t not in (0, 5, 9)]])
    forced = _brute_expand(emb[0], [0, 5, 9], rest[0].tolist(), [2], most=False) - {0, 5, 9}
    draws = [expand(emb, selected, rest, [5], [(0, 2, 3)], [torch.rand(1, 30, generator=g)])[0] for _ in range(6)]
    assert all(forced <= set(d[0].tolist()) and len(set(d[0].tolist())) == 8 for d in draws)
    assert len({frozenset(d[0].tolist()) for d in draws}) > 1  # the other three are random


def test_plans_follow_the_seed_and_the_step() -> None:
    masking = SelectiveMasking(0.85, epochs=SCRIPT, steps_per_epoch=10)
    ctx = _context(14, 2)

    def keep(step: int, seeds: list[int]) -> list[set[int]]:
        c = MaskContext(tokens=ctx.tokens, step=step, scores=ctx.scores)
        plan = make_plan(masking, (14, 14), 2, device="cpu", seeds=torch.tensor(seeds), context=c)
        return [set(r) for r in plan.keep.tolist()]

    assert keep(5, [7, 8]) == keep(5, [7, 8])
    assert keep(5, [7, 8]) != keep(5, [9, 8])
    assert keep(5, [7, 8]) == keep(2799, [7, 8])  # still stage 1 (epoch 279)
    assert keep(5, [7, 8]) != keep(3500, [7, 8])  # stage 3: least similar instead of most similar


def test_peaked_scores_decide_the_sampled_seeds_and_the_loss_set() -> None:
    """Multinomial from softmax(score): 14 tokens at +60 are the 14 sampled seeds; 49 at +30 form the loss set."""
    ctx = _context(14, 2)
    scores = torch.zeros(2, 196)
    scores[:, :14] = 60.0
    scores[:, 100:149] = 30.0
    masking = SelectiveMasking(0.85, keep_rate=0.075, init_rate=0.075)  # no expansion
    plan = make_plan(masking, (14, 14), 2, device="cpu", seeds=torch.tensor([0, 1]),
                     context=MaskContext(tokens=ctx.tokens, scores=scores))
    assert [set(r) for r in plan.keep.tolist()] == [set(range(14))] * 2
    assert [set(r) for r in plan.loss.tolist()] == [set(range(100, 149))] * 2


def test_reference_hog_score_is_flat_and_hog_mean_is_not() -> None:
    """The reference's per-patch standardize-then-mean is 0 up to rounding (so p(x) is uniform);
    without standardization a flat patch scores 0 and a textured one more."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 32, 32, generator=g)
    images[:, :, :8, :8] = 0.5  # 2×2 flat patches at the top left (patch 4)
    ref = hog_patch_scores(images, (8, 8))
    assert ref.shape == (2, 64) and ref.abs().max() < 1e-5
    raw = hog_patch_scores(images, (8, 8), standardize=False)
    assert raw[:, 0].abs().max() == 0 and raw[:, 63].min() > 0.1
