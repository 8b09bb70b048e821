"""The reconstruction loss of the samples a per-sample gate chose to mask (iBOT / AttMask `masking_prob`).

iBOT and AttMask mask each image with a probability (0.5), otherwise not at all, and average the
masked-token loss per image (`clamp(min=1)` on the count, so an unmasked image contributes 0), then
over the batch. Our plans have exact counts per sample, so every sample gets a hidden set; the
gate (`core.masking.scores.SampleGate`, B bools in `Pass.cache[SAMPLE_GATE]`) says which samples'
hidden tokens count:

    loss = (1 / B) · Σ_{gated b} mean_{t scored in b} ℓ(b, t)

which equals the model's reconstruction loss over the gated samples' scored tokens times the
gated share of the batch (every sample scores the same number of tokens). An ungated sample thus
gives no gradient, exactly as an unmasked image in the reference. Without a gate in the cache
(injected noise) every sample counts.
"""

from __future__ import annotations

from torch import Tensor

from anymae.core.masking import gather_tokens
from anymae.core.masking.scores import SAMPLE_GATE
from anymae.core.skeleton.steps import Pass
from anymae.core.skeleton.terms import LossTerm


class GatedReconstruction(LossTerm):
    """One branch's reconstruction loss over the gated samples (module doc), with the model's loss.

    Args:
        branch: which branch (its plan's gate is the one in the cache: use it on one-branch models).
        name, weight: as `LossTerm`.
    """

    def __init__(self, *, branch: int = 0, name: str = "gated_rec", weight: float = 1.0) -> None:
        super().__init__(name, weight)
        self.branch = branch

    def forward(self, state: Pass) -> Tensor:
        branch = state.branches[self.branch]
        query = branch.planned.query
        target = state.target if query is None else gather_tokens(state.target, query)  # like pred
        weight = branch.planned.weight  # B×Nq (B×N when every token is queried)
        loss_fn = state.model.loss_fn
        gate = state.cache.get(SAMPLE_GATE)
        if gate is None:
            return loss_fn(branch.decoded.pred, target, weight)
        if gate.shape != (weight.shape[0],):
            raise ValueError(f"the sample gate has shape {tuple(gate.shape)}, expected ({weight.shape[0]},)")
        share = gate.to(weight.dtype).mean()  # gated share of the batch
        return loss_fn(branch.decoded.pred, target, weight * gate.to(weight.dtype).unsqueeze(1)) * share
