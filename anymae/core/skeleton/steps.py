"""What the skeleton's steps hand to each other.

    tokenize -> plan masks -> encode visible -> decode queries -> targets -> loss terms
    Tokens      BranchPlan    Encoded           Decoded           Tensor     dict[str, Tensor]

A *branch* is one mask draw through the shared encoder and one decoder (MAE has one branch;
Point-CMAE two). `Branch` bundles one branch's plan, encoding and decoding; `Pass` is the whole
forward state that loss terms read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from anymae.core.masking import MaskPlan
from anymae.core.tokens import Tokens


def to_token_order(visible: Tensor | None, queried: Tensor, keep: Tensor, query: Tensor, n: int) -> Tensor:
    """Per-token values at visible and queried positions -> B×N×C in token order (zero elsewhere).

    Args:
        visible: B×Nv×C values at `keep` (None: none).
        queried: B×Nq×C values at `query`.
        keep: B×Nv token indices.
        query: B×Nq token indices.
        n: N, the number of tokens.
    """
    out = queried.new_zeros(queried.shape[0], n, queried.shape[-1])  # B×N×C
    if visible is not None:
        out = out.scatter(1, keep.unsqueeze(-1).expand_as(visible), visible)
    return out.scatter(1, query.unsqueeze(-1).expand_as(queried), queried)


@dataclass
class BranchPlan:
    """Output of "plan masks" for one branch.

    Attributes:
        plan: the encoder's mask plan (keep / hide / restore).
        query: B×Nq indices of the tokens the decoder predicts from mask tokens (drop mode: the
            hidden tokens, or a decoder-side keep set); None = every token in token order
            (replace mode: the decoder sees every position).
        weight: B×Nq (B×N when `query` is None) float, 1 where the reconstruction loss counts.
        seeds: the per-row seeds this branch drew from (None: batched draws), for later draws
            of the same branch (replacement sources).
    """

    plan: MaskPlan
    query: Tensor | None
    weight: Tensor
    seeds: Tensor | None = None


@dataclass
class Encoded:
    """Output of "encode visible".

    Attributes:
        latent: the encoder output, prefix tokens first: B×(P+Nv)×D (drop mode) or B×(P+N)×D /
            B×N×H for a backbone (replace mode).
        num_prefix: P.
        taps: the requested encoder layers' outputs by block index, each shaped like `latent`
            (before the final norm).
    """

    latent: Tensor
    num_prefix: int
    taps: dict[int, Tensor] = field(default_factory=dict)


@dataclass
class Decoded:
    """Output of "decode queries".

    Attributes:
        pred: B×Nq×P predictions at the branch's queries (B×N×P when `query` is None).
        pred_visible: B×Nv×P predictions at the visible tokens (None when the decoder made none
            apart from `pred`).
        hidden: the decoder's last-block outputs before the final norm, B×(Nv+Nq)×dim in the
            order [visible, queried] (`Branch.hidden_states` puts them in token order); None for
            decoders without blocks to tap.
    """

    pred: Tensor
    pred_visible: Tensor | None = None
    hidden: Tensor | None = None


@dataclass
class Branch:
    """One branch of a forward pass: its plan, encoding and decoding."""

    planned: BranchPlan
    encoded: Encoded
    decoded: Decoded

    @property
    def plan(self) -> MaskPlan:
        return self.planned.plan

    def predictions(self) -> Tensor:
        """B×N×P predictions in token order (zero where the decoder made none)."""
        p, d = self.planned, self.decoded
        if p.query is None:
            return d.pred
        return to_token_order(d.pred_visible, d.pred, p.plan.keep, p.query, p.plan.num_tokens)

    def hidden_states(self) -> Tensor | None:
        """The decoder's hidden states B×N×dim in token order (zero where it made none), or None."""
        p, hidden = self.planned, self.decoded.hidden
        if hidden is None or p.query is None:
            return hidden
        nv = p.plan.keep.shape[1]
        return to_token_order(hidden[:, :nv], hidden[:, nv:], p.plan.keep, p.query, p.plan.num_tokens)

    def loss_weight(self) -> Tensor:
        """B×N float in token order, 1 where the reconstruction loss counts."""
        p = self.planned
        if p.query is None:
            return p.weight
        return p.weight.new_zeros(p.weight.shape[0], p.plan.num_tokens).scatter(1, p.query, p.weight)


@dataclass
class Pass:
    """The state of one forward pass, as loss terms see it.

    Attributes:
        tokens: the tokenized batch.
        target: B×N×P targets as the loss sees them (normalized when the model has a target norm).
        branches: one `Branch` per mask draw, in order.
        inputs: the modality batch the model was called with (a teacher tokenizes it itself).
        model: the model running this pass (terms reach its teachers as `state.model.teachers`).
        cache: values computed once per pass and shared by terms, targets and mask strategies
            (e.g. a teacher's output under the teacher's name); the same dict as
            `MaskContext.cache` of this pass.
    """

    tokens: Tokens
    target: Tensor
    branches: list[Branch]
    inputs: Any = None
    model: Any = None
    cache: dict[str, Any] = field(default_factory=dict)
