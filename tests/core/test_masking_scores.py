"""Score-driven masks (top-k forced, Gumbel top-k sampling, reveal k of the top q) and loss sets."""

from __future__ import annotations

import math

import pytest
import torch

import anymae
from anymae.core.masking import MaskContext, make_masking, make_plan


def _plan(strategy, grid, scores, seeds, step=0):  # type: ignore[no-untyped-def]
    return make_plan(strategy, grid, len(seeds), device="cpu", seeds=torch.tensor(seeds),
                     context=MaskContext(scores=scores, step=step))


def _sets(index: torch.Tensor) -> list[set[int]]:
    return [set(row.tolist()) for row in index]


def test_topk_forces_the_hardest_then_fills_at_random() -> None:
    scores = torch.tensor([[0.0, 9.0, 1.0, 2.0, 3.0, 4.0, 8.0, 5.0]]).repeat(40, 1)  # tokens 1, 6 hardest
    half = make_masking("score_topk", 0.5, hard=0.5)  # Nm = 4 hidden, int(4 · 0.5) = 2 forced
    plan = _plan(half, (8,), scores, list(range(40)))
    assert plan.keep.shape == (40, 4) and plan.hide.shape == (40, 4)
    assert all({1, 6} <= s for s in _sets(plan.hide))
    assert len({frozenset(s) for s in _sets(plan.hide)}) > 1  # the other two are random
    full = _plan(make_masking("score_topk", 0.5, hard=1.0), (8,), scores[:3], [0, 1, 2])
    assert _sets(full.hide) == [{1, 6, 7, 5}] * 3


def test_topk_forced_count_follows_hpms_epoch_ramp() -> None:
    """HPM at r = 0.75 on 196 tokens: 147 hidden, int(147 · (e + 1) / E · 0.5) forced at epoch e."""
    epochs, per_epoch = 4, 2
    hard = {"kind": "linear", "start": 0.5 / epochs, "end": 0.5, "steps": (epochs - 1) * per_epoch,
            "every": per_epoch}
    strategy = make_masking("score_topk", 0.75, hard=hard)
    assert strategy.num_keep(196) == 49
    assert [strategy.forced(196, e * per_epoch) for e in range(epochs)] == [18, 36, 55, 73]
    scores = torch.arange(196.0).flip(0).repeat(2, 1)  # token 0 hardest
    plan = _plan(strategy, (14, 14), scores, [3, 4], step=3 * per_epoch)
    assert all(set(range(73)) <= s for s in _sets(plan.hide))


def test_gumbel_topk_matches_a_hand_draw_from_the_seed() -> None:
    scores = torch.tensor([[0.0, 1.0, 2.0, -1.0, 0.5, 3.0]])
    strategy = make_masking("score_sample", 0.5, temperature=2.0)  # keep int(6 · 0.5) = 3 sampled
    plan = _plan(strategy, (6,), scores, [11])
    u = torch.rand(6, generator=torch.Generator().manual_seed(11))
    keys = scores[0] / 2.0 - torch.log(-torch.log(u))
    assert _sets(plan.keep) == [set(torch.topk(keys, 3).indices.tolist())]
    hide = _plan(make_masking("score_sample", 0.5, temperature=2.0, select="hide"), (6,), scores, [11])
    assert _sets(hide.hide) == [set(torch.topk(keys, 3).indices.tolist())]


def test_gumbel_topk_samples_from_the_softmax() -> None:
    """One token kept of four: it is a multinomial draw with p = softmax(scores); -inf never drawn."""
    p = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 4000
    plan = _plan(make_masking("score_sample", 0.75), (4,), p.log().repeat(n, 1), list(range(n)))
    freq = torch.bincount(plan.keep[:, 0], minlength=4).float() / n
    assert torch.allclose(freq, p, atol=0.03), freq
    never = torch.tensor([[0.0, -math.inf, 0.0, 0.0, 0.0, 0.0]]).repeat(50, 1)
    plan = _plan(make_masking("score_sample", 0.5), (6,), never, list(range(50)))
    assert all(1 not in s for s in _sets(plan.keep))


def test_reveal_hides_the_top_and_shows_k_of_the_top_q() -> None:
    scores = torch.arange(20.0).repeat(30, 1)  # token 19 most attended
    strategy = make_masking("score_reveal", 0.5, reveal=0.2, top=0.25)  # hide 10, reveal 2 of the top 5
    plan = _plan(strategy, (20,), scores, list(range(30)))
    assert plan.hide.shape == (30, 8) and plan.keep.shape == (30, 12)
    for hidden in _sets(plan.hide):
        assert set(range(10, 15)) <= hidden <= set(range(10, 20)) and len(hidden & set(range(15, 20))) == 3
    assert len({frozenset(s) for s in _sets(plan.hide)}) > 1
    low = _plan(make_masking("score_reveal", 0.5, reveal=0.0, order="low"), (20,), scores[:2], [0, 1])
    assert _sets(low.hide) == [set(range(10))] * 2


def test_attmask_hint_counts() -> None:
    """AttMask hint, r = 0.3 on 196 tokens: int(58.8) = 58 hidden, int(0.1 · 0.3 · 196) = 5 shown
    from the top int(19.6) = 19: 143 visible."""
    strategy = make_masking("score_reveal", 0.3, reveal=0.1, top=0.1)
    assert strategy.counts(196) == (58, 5, 19) and strategy.num_keep(196) == 143
    plan = _plan(strategy, (14, 14), torch.rand(3, 196), [0, 1, 2])
    assert plan.keep.shape == (3, 143)
    with pytest.raises(ValueError, match=r"score_reveal on 196 tokens: revealing 5 of the top 98 needs"):
        make_masking("score_reveal", 0.3, reveal=0.1, top=0.5).num_keep(196)


def test_missing_scores_and_bad_shapes_are_named() -> None:
    strategy = make_masking("score_topk", 0.5)
    with pytest.raises(ValueError, match=r"score_topk masking reads per-token scores: pass scores=B×N"):
        make_plan(strategy, (8,), 2, device="cpu")
    with pytest.raises(ValueError, match=r"per-token scores have shape \(2, 7\), expected B×8"):
        _plan(strategy, (8,), torch.rand(2, 7), [0, 1])


def test_selectivemae_counts_visible_sample_and_reconstruct_subset() -> None:
    """SelectiveMAE at r = 0.85 on 196 tokens: 29 visible sampled, the loss scores int(196 · 0.25) = 49."""
    strategy = make_masking("score_sample", 0.85, loss_ratio=0.25, loss_rule="sample")
    plan = _plan(strategy, (14, 14), torch.randn(2, 196), [5, 6])
    assert plan.keep.shape == (2, 29) and plan.loss is not None and plan.loss.shape == (2, 49)
    for loss, hidden in zip(_sets(plan.loss), _sets(plan.hide)):
        assert len(loss) == 49 and loss <= hidden
    assert torch.equal(plan.loss_mask.sum(1), torch.tensor([49.0, 49.0]))


def test_loss_set_loss_is_the_mean_over_that_subset() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("mae_vit_tiny_patch4", img_size=16, depth=1, decoder_depth=1, mask_ratio=0.5,
                                masking_params={"loss_ratio": 0.25})
    x = torch.randn(2, 3, 16, 16)
    out = model(x, seeds=torch.tensor([1, 2]))
    loss_set = out.plan.loss
    assert loss_set is not None and loss_set.shape == (2, 4)  # int(16 · 0.25) of the 8 hidden
    marked = torch.zeros(2, 16).scatter(1, loss_set, 1.0)
    assert torch.equal(out.loss_weight, marked) and torch.all(out.mask[marked.bool()] == 1)
    per_token = (out.pred - out.target).pow(2).mean(-1)  # B×N
    assert out.loss.item() == pytest.approx((per_token * marked).sum().item() / 8, rel=1e-5)
    with pytest.raises(ValueError, match=r"\['loss_rule'\] configure a loss set and need loss_ratio"):
        make_masking("random", 0.5, loss_rule="sample")
