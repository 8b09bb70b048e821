"""Span maskings against hand counts: CAV-MAE stripes, MultiMAE's Dirichlet budget, whole-modality masking."""

from __future__ import annotations

import pytest
import torch

from anymae.core.masking import RandomMasking, make_plan
from anymae.core.masking.plan import MaskContext
from anymae.core.multimodal import DirichletBudget, MultiTokenizer, SpanMasking, StripeMasking
from anymae.modalities.image import ImageTokenizer


def _stripe_mask(mode: str, b: int = 4) -> torch.Tensor:
    plan = make_plan(StripeMasking(0.75, mode=mode), (64, 8), b, device="cpu", seeds=torch.arange(b))
    return plan.mask.view(b, 64, 8)  # B×time×freq, 1 = hidden


def test_time_stripes_hide_48_whole_time_rows() -> None:
    m = _stripe_mask("time")
    for row in m:  # int(64·0.75) = 48 rows hidden whole, int(512·0.25) = 128 = 16 rows visible
        assert int((row.sum(1) == 8).sum()) == 48 and int((row.sum(1) == 0).sum()) == 16


def test_freq_stripes_hide_6_whole_frequency_columns() -> None:
    m = _stripe_mask("freq")
    for row in m:  # int(8·0.75) = 6 columns hidden whole
        assert int((row.sum(0) == 64).sum()) == 6 and int((row.sum(0) == 0).sum()) == 2


def test_tf_stripes_count_as_the_reference() -> None:
    strategy = StripeMasking(0.75, mode="tf")
    seeds = torch.arange(4)
    from anymae.core.masking.plan import SampleRNG

    striped = (strategy.noise((64, 8), SampleRNG(4, seeds=seeds)) >= 1).view(4, 64, 8)
    m = _stripe_mask("tf")
    for stripes, row in zip(striped, m):  # int(64·0.525) = 33 rows, int(8·0.525) = 4 columns: 388 striped tokens
        assert int((stripes.sum(1) == 8).sum()) == 33 and int((stripes.sum(0) == 64).sum()) == 4
        assert int(stripes.sum()) == 33 * 8 + 4 * 64 - 33 * 4
        assert int(row.sum()) == 384  # 512 - int(512·0.25) hidden: all from the stripes, 4 striped stay visible
        assert not bool((row.bool() & ~stripes).any())


def _multi(n_modalities: int = 3) -> MultiTokenizer:
    names = ["rgb", "depth", "nir"][:n_modalities]
    return MultiTokenizer({m: ImageTokenizer(16, 4, 1, 16) for m in names})


def _plan(masking, b: int, seeds: torch.Tensor | None = None, modalities: int = 3):
    tok = _multi(modalities)
    tokens = tok({m: torch.randn(b, 1, 16, 16) for m in tok.modalities})
    seeds = torch.arange(b) if seeds is None else seeds
    return make_plan(masking, tokens.grid, b, device="cpu", seeds=seeds, context=MaskContext(tokens=tokens))


def test_dirichlet_budget_keeps_the_exact_total_in_every_sample() -> None:
    plan = _plan(DirichletBudget(12), 16)
    assert plan.keep.shape == (16, 12) and torch.equal(plan.mask.sum(1), torch.full((16,), 36.0))
    per_span = plan.mask.view(16, 3, 16).sum(2)  # hidden per modality
    assert not torch.equal(per_span, per_span[:1].expand_as(per_span))  # shares differ between samples


def test_dirichlet_shares_follow_the_alphas() -> None:
    plan = _plan(DirichletBudget(12, alphas={"rgb": 1e4, "depth": 1e-3, "nir": 1e-3}), 8)
    visible = (1 - plan.mask).view(8, 3, 16).sum(2)  # B×M
    assert torch.equal(visible[:, 0], torch.full((8,), 12.0))  # every visible token is RGB


def test_dirichlet_subsets_leave_whole_modalities_out() -> None:
    plan = _plan(DirichletBudget(6, sample_subsets=True), 64)
    visible = (1 - plan.mask).view(64, 3, 16).sum(2)
    assert torch.equal(visible.sum(1), torch.full((64,), 6.0))
    absent = (visible == 0).sum(1)
    assert int((absent > 0).sum()) > 16  # most subsets (6 of 7) leave a modality out; its share ~1e-5 -> 0


def test_whole_modality_masking_is_a_function_of_the_seed() -> None:
    masking = SpanMasking({m: RandomMasking(0.5) for m in ("rgb", "depth")}, drop={"depth": 0.5})
    seeds = torch.arange(100, 164)
    plan = _plan(masking, 64, seeds, modalities=2)
    hidden = plan.mask.view(64, 2, 16).sum(2)  # B×2
    gone = hidden[:, 1] == 16
    assert 16 < int(gone.sum()) < 48  # about half of the samples lose depth whole
    assert torch.equal(plan.keep.shape[1] * torch.ones(64), (1 - plan.mask).sum(1))  # total stays 16
    assert torch.equal(hidden[gone, 0], torch.zeros(int(gone.sum())))  # its 8 visible go to RGB: all 16 visible
    assert torch.equal(hidden[~gone], torch.full((int((~gone).sum()), 2), 8.0))  # the others: 8 + 8 hidden
    again = _plan(masking, 64, seeds, modalities=2)
    assert torch.equal(again.mask, plan.mask)
    for i in (0, 5, 9):  # a sample's draw does not depend on its batch
        single = _plan(masking, 1, seeds[i : i + 1], modalities=2)
        assert torch.equal(single.mask[0], plan.mask[i])


def test_whole_modality_masking_never_hides_everything() -> None:
    masking = SpanMasking({m: RandomMasking(0.5) for m in ("rgb", "depth")}, drop={"rgb": 0.99, "depth": 0.99})
    plan = _plan(masking, 32, modalities=2)
    hidden = plan.mask.view(32, 2, 16).sum(2)
    assert bool(((hidden == 16).sum(1) == 1).all())  # exactly one modality gone in each sample


def test_bad_options_name_themselves() -> None:
    with pytest.raises(ValueError, match="mode='diagonal'"):
        StripeMasking(0.75, mode="diagonal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="drop\\['depth'\\]"):
        SpanMasking({"depth": RandomMasking(0.5)}, drop={"depth": 1.5})
    with pytest.raises(ValueError, match="unknown modality 'rgb'"):
        SpanMasking({"depth": RandomMasking(0.5)}, drop={"rgb": 0.5})
    with pytest.raises(ValueError, match="no masking strategy for modality"):
        _plan(SpanMasking({"rgb": RandomMasking(0.5)}), 2, modalities=2)


def test_dirichlet_budget_with_whole_modality_masking() -> None:
    plan = _plan(DirichletBudget(10, drop={"nir": 0.5}), 32)
    visible = (1 - plan.mask).view(32, 3, 16).sum(2)
    assert torch.equal(visible.sum(1), torch.full((32,), 10.0))
    gone = plan.mask.view(32, 3, 16)[:, 2].sum(1) == 16
    assert 4 < int(gone.sum()) < 28 and torch.equal(visible[gone, 2], torch.zeros(int(gone.sum())))
