"""What the skeleton's steps hand to each other.

    tokenize -> plan masks -> encode visible -> decode queries -> targets -> loss terms
    Tokens      BranchPlan    Encoded           Decoded           Tensor     dict[str, Tensor]

A *branch* is one mask draw through the shared encoder and one decoder (MAE has one branch;
Point-CMAE two). `Branch` bundles one branch's plan, encoding and decoding; `Pass` is the whole
forward state that loss terms read.

A batch may carry several *views* of each sample (`Views`: two augmentations, a paired image, or
the same input twice); `BranchSpec` says which view a branch reads, which decoder it uses (several
branches may share one, as DMJD's `cat([x, x])`; or none: encode only), whether it has a
reconstruction term, whether it sees the whole view, and which other branch's encoding its decoder
reads as cross-attention memory (CroCo). `MAEOutput` is what the whole pass returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
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
class Views:
    """V views of one batch of B samples: `items[v]` is view v's modality batch (e.g. B×C×H×W).

    `MaskedAutoencoder.forward` takes a `Views` or a plain batch (one view). Samples are aligned
    across views (row i of every view is sample i), so one per-sample seed serves every view.
    """

    items: tuple[Any, ...]

    def __post_init__(self) -> None:
        self.items = tuple(self.items)
        if not self.items:
            raise ValueError("Views needs at least one view")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, v: int) -> Any:
        return self.items[v]

    def to(self, device: torch.device | str) -> Views:
        """Every view moved to `device` (tensors, or objects with `.to`, e.g. graph batches)."""
        return Views(tuple(x.to(device) if callable(getattr(x, "to", None)) else x for x in self.items))

    @staticmethod
    def of(x: Any) -> Views:
        """`x` itself when it is a `Views`, else a one-view `Views` of the plain batch `x`."""
        return x if isinstance(x, Views) else Views((x,))


@dataclass(frozen=True)
class BranchSpec:
    """How one branch runs (`MaskedAutoencoder(branches=...)`).

    Attributes:
        view: which view of the batch the branch tokenizes (0-based; `Views`).
        decoder: index into `MaskedAutoencoder.decoders` (0 = `decoder`, k >= 1 = `decoder{k+1}`);
            branches may share a decoder; None = the branch is only encoded (LUT's second view).
        reconstruct: the branch has a reconstruction term on its view's target (needs a decoder).
        whole: encode every token of the view, no mask draw (CroCo's second view).
        memory: index of another branch whose `Encoded` this branch's decoder receives as the
            keyword `memory=` (cross-attention to that view; CroCo); None = none.
    """

    view: int = 0
    decoder: int | None = 0
    reconstruct: bool = True
    whole: bool = False
    memory: int | None = None

    def __post_init__(self) -> None:
        if self.view < 0:
            raise ValueError(f"BranchSpec view={self.view}: expected a view index >= 0")
        if self.decoder is None and (self.reconstruct or self.memory is not None):
            raise ValueError("a BranchSpec with decoder=None cannot reconstruct nor read a memory; "
                             "set reconstruct=False and memory=None")


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
        view: the view of the batch this branch reads (`BranchSpec.view`).
        active: B bool, False for the samples a per-sample gate left unmasked
            (`core.masking.scores.SampleGate`: iBOT / AttMask `masking_prob`); None = all masked.
            Their plan still has its exact counts, but no loss counts them (`weight` is 0) and a
            replace-mode encoder sees them whole.
    """

    plan: MaskPlan
    query: Tensor | None
    weight: Tensor
    seeds: Tensor | None = None
    view: int = 0
    active: Tensor | None = None


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
    """One branch of a forward pass: its plan, encoding and decoding (None: an encode-only branch,
    `BranchSpec(decoder=None)`)."""

    planned: BranchPlan
    encoded: Encoded
    decoded: Decoded | None

    @property
    def plan(self) -> MaskPlan:
        return self.planned.plan

    @property
    def view(self) -> int:
        """The view of the batch this branch read."""
        return self.planned.view

    def _decoded(self) -> Decoded:
        if self.decoded is None:
            raise ValueError("this branch was only encoded (BranchSpec(decoder=None)): it has no predictions")
        return self.decoded

    def predictions(self) -> Tensor:
        """B×N×P predictions in token order (zero where the decoder made none)."""
        p, d = self.planned, self._decoded()
        if p.query is None:
            return d.pred
        return to_token_order(d.pred_visible, d.pred, p.plan.keep, p.query, p.plan.num_tokens)

    def hidden_states(self) -> Tensor | None:
        """The decoder's hidden states B×N×dim in token order (zero where it made none), or None."""
        p, hidden = self.planned, self._decoded().hidden
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
        tokens: the tokenized batch (view 0's for a multi-view batch).
        target: B×N×P targets as the loss sees them (normalized when the model has a target norm;
            view 0's).
        branches: one `Branch` per mask draw, in order.
        inputs: the modality batch the model was called with (view 0's; a teacher tokenizes it
            itself).
        model: the model running this pass (terms reach its teachers as `state.model.teachers`).
        cache: values computed once per pass and shared by terms, targets and mask strategies
            (e.g. a teacher's output under the teacher's name); the same dict as
            `MaskContext.cache` of this pass.
        view_tokens: every view's tokens in view order (None for a view no branch read);
            `[tokens]` for a one-view batch.
        view_inputs: every view's modality batch, in view order.
        view_targets: every view's targets (view 0's always; another view's when a branch
            reconstructs it, else None).
    """

    tokens: Tokens
    target: Tensor
    branches: list[Branch]
    inputs: Any = None
    model: Any = None
    cache: dict[str, Any] = field(default_factory=dict)
    view_tokens: list[Tokens | None] = field(default_factory=list)
    view_inputs: list[Any] = field(default_factory=list)
    view_targets: list[Tensor | None] = field(default_factory=list)

    def target_of(self, branch: int) -> Tensor:
        """B×N×P targets of the view that branch `branch` reads."""
        view = self.branches[branch].view
        if view == 0 or not self.view_targets:
            return self.target
        target = self.view_targets[view]
        if target is None:
            raise ValueError(f"branch {branch} reads view {view}, whose targets were not computed (no branch "
                             "reconstructs it)")
        return target


@dataclass
class MAEOutput:
    """One forward pass.

    Attributes:
        loss: scalar, the weighted sum of the loss terms.
        pred: B×N×P predictions of the first branch in token order (zero where it made none).
        target: B×N×P targets as the loss sees them (normalized when norm_pix is on).
        mask: B×N float, 1 where the token was hidden from the encoder (first branch).
        loss_weight: B×N float, 1 where the first branch's reconstruction loss counts.
        plan: the first branch's encoder mask plan.
        tokens: the tokenized batch (raw targets, layout) for pictures.
        parts: every loss term's value as a detached scalar, by name ("rec", or "rec1", "rec2",
            ... with several branches, then extra terms such as "consistency"); the engine logs
            them as metrics next to `loss`.
        plans: every branch's encoder mask plan, in branch order (`plans[0] is plan`).
    """

    loss: Tensor
    pred: Tensor
    target: Tensor
    mask: Tensor
    loss_weight: Tensor
    plan: MaskPlan
    tokens: Tokens
    parts: dict[str, Tensor] = field(default_factory=dict)
    plans: list[MaskPlan] = field(default_factory=list)
