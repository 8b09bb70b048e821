"""Per-sample masking probability: `SampleGate` (core/masking/scores.py) draws which samples are
masked from their seeds, `GatedReconstruction` (core/skeleton/gated_terms.py) counts only those."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from anymae.core.losses import masked_mse
from anymae.core.masking import MaskContext, make_masking, make_plan
from anymae.core.masking.scores import SAMPLE_GATE, SampleGate
from anymae.core.skeleton.gated_terms import GatedReconstruction
from anymae.core.skeleton.steps import Branch, BranchPlan, Decoded, Encoded, Pass


def _gate(seeds: list[int], prob: float = 0.5) -> torch.Tensor:
    cache: dict = {}
    make_plan(SampleGate(make_masking("random", 0.75), prob), (4, 4), len(seeds), device="cpu",
              seeds=torch.tensor(seeds), context=MaskContext(cache=cache))
    return cache[SAMPLE_GATE]


def test_the_gate_is_each_samples_draw_after_its_mask() -> None:
    """Sample s is masked iff u <= prob, u = the draw after its mask's 16 uniforms from Generator(s)."""
    seeds = list(range(40))
    gate = _gate(seeds)
    by_hand = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        torch.rand(16, generator=g)  # the random mask's scores
        by_hand.append(bool(torch.rand(1, generator=g) <= 0.5))
    assert gate.tolist() == by_hand
    assert 0 < sum(by_hand) < 40


def test_the_gate_depends_only_on_the_samples_seed() -> None:
    full = _gate(list(range(10)))
    assert _gate([7, 2, 9]).tolist() == full[[7, 2, 9]].tolist()  # another batch, another order
    many = _gate(list(range(3000)), prob=0.3)
    assert abs(many.float().mean().item() - 0.3) < 0.03
    assert _gate(list(range(50)), prob=1.0).all()
    with pytest.raises(ValueError, match=r"masking_prob=0: expected a probability in \(0, 1\]"):
        SampleGate(make_masking("random", 0.75), 0)


def _state(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, gate: torch.Tensor | None) -> Pass:
    """A one-branch replace-mode pass (every token queried in order) with the model's MSE."""
    b, n = weight.shape
    plan = make_plan(make_masking("random", 0.5), (n,), b, device="cpu", seeds=torch.arange(b))
    branch = Branch(BranchPlan(plan, None, weight), Encoded(torch.zeros(b, n, 1), 0), Decoded(pred))
    cache = {} if gate is None else {SAMPLE_GATE: gate}
    model = SimpleNamespace(loss_fn=masked_mse)
    return Pass(None, target, [branch], model=model, cache=cache)  # type: ignore[arg-type]


def test_gated_loss_is_ibots_per_image_mean_over_the_batch() -> None:
    """(1 / B) Σ over masked images of the mean loss over their masked tokens; unmasked images add 0."""
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(4, 6, 3, generator=gen), torch.randn(4, 6, 3, generator=gen)
    weight = torch.tensor([[1, 1, 0, 0, 1, 0]] * 4, dtype=torch.float32)  # 3 scored tokens per sample
    gate = torch.tensor([True, False, True, False])
    per_token = (pred - target).pow(2).mean(-1)  # 4×6
    per_image = [(per_token[b] * weight[b]).sum() / weight[b].sum() if gate[b] else torch.tensor(0.0)
                 for b in range(4)]  # fmt: skip
    value = GatedReconstruction()(_state(pred, target, weight, gate))
    assert torch.allclose(value, torch.stack(per_image).mean())
    # no gate in the cache (injected noise): every sample counts, as the plain reconstruction
    assert torch.allclose(GatedReconstruction()(_state(pred, target, weight, None)), masked_mse(pred, target, weight))
    # no sample masked: 0, still connected to the graph
    p = pred.clone().requires_grad_(True)
    none = GatedReconstruction()(_state(p, target, weight, torch.zeros(4, dtype=torch.bool)))
    none.backward()
    assert none.item() == 0.0 and p.grad is not None and p.grad.abs().sum() == 0
