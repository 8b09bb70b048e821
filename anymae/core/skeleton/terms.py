"""Loss terms: named, weighted scalars computed from a forward pass's step outputs.

A term reads the `Pass` (tokens, targets, and per branch: the mask plan, the encoder's latent
and taps, the decoder's predictions and hidden states) and returns one scalar. The model's
loss is `sum(term.weight * value)` over its terms and every value is returned, detached, in
`MAEOutput.parts` under the term's name (the engine logs them as metrics).

Naming: the reconstruction term of a one-branch model is "rec"; with several branches they are
"rec1", "rec2", ... (branch order). Extra terms use their own names ("consistency", ...); names
must be unique within a model.

A new recipe's term (contrastive, mimic, alignment, ...) subclasses `LossTerm`: set `name` and
`weight`, list the encoder layers it reads in `taps`, and implement `forward(state) -> scalar`.
A term may hold parameters (a projection head): it is a module of the model (`terms.{i}.*`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anymae.core.masking import gather_tokens
from anymae.core.skeleton.steps import Pass

Consistency = Literal["diagonal", "row"]
_EPS = 1e-8  # Point-CMAE's epsilon inside the (1 - cos) term


class LossTerm(nn.Module):
    """A named, weighted part of the loss.

    Args:
        name: the key in `MAEOutput.parts`.
        weight: the factor of this term in the total loss.
        taps: encoder block indices whose outputs this term reads (`Encoded.taps`).
    """

    def __init__(self, name: str, weight: float = 1.0, *, taps: tuple[int, ...] = ()) -> None:
        super().__init__()
        if not name:
            raise ValueError("a loss term needs a non-empty name")
        self.name = name
        self.weight = float(weight)
        self.taps = tuple(taps)

    def forward(self, state: Pass) -> Tensor:  # pragma: no cover - the interface
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"name={self.name!r}, weight={self.weight}"


class Reconstruction(LossTerm):
    """The reconstruction loss of one branch on the tokens its plan scores.

    `loss_fn(pred at queries, target at queries, weight)`: B×Nq×P, B×Nq×P, B×Nq (or B×N×P and
    B×N when the branch queries every token in order).

    Args:
        loss_fn: `(pred, target, weight) -> scalar` (`core.losses.get_loss`).
        branch: which branch.
        name, weight: as `LossTerm`.
    """

    def __init__(
        self, loss_fn: Callable[[Tensor, Tensor, Tensor | None], Tensor], *, branch: int = 0, name: str = "rec",
        weight: float = 1.0,
    ) -> None:
        super().__init__(name, weight)
        self.loss_fn = loss_fn
        self.branch = branch

    def forward(self, state: Pass) -> Tensor:
        branch = state.branches[self.branch]
        query = branch.planned.query
        full = state.target_of(self.branch)  # B×N×P, the targets of the view this branch reads
        target = full if query is None else gather_tokens(full, query)
        return self.loss_fn(branch._decoded().pred, target, branch.planned.weight)


def consistency_loss(h1: Tensor, h2: Tensor, both_hidden: Tensor, mode: Consistency = "diagonal") -> Tensor:
    """Cosine consistency of two branches' token features on co-hidden tokens.

    Args:
        h1, h2: B×N×D features in token order.
        both_hidden: B×N bool, tokens hidden in both masks.
        mode: "diagonal" (token t against token t) or "row" (token t against every token).

    Returns:
        scalar; 0 (connected to the graph) when no token is hidden twice.
    """
    a, b = F.normalize(h1, dim=-1), F.normalize(h2, dim=-1)
    w = both_hidden.to(a.dtype)  # B×N
    count = w.sum()
    if mode == "diagonal":
        per_token = 1 - (a * b).sum(-1) + _EPS  # B×N
    elif mode == "row":
        per_token = (1 - torch.bmm(a, b.transpose(1, 2)) + _EPS).mean(dim=-1)  # B×N×N -> B×N
    else:
        raise ValueError(f"consistency={mode!r}: expected 'diagonal' or 'row'")
    if count == 0:
        return per_token.sum() * 0.0
    return (per_token * w).sum() / count


class DecoderConsistency(LossTerm):
    """Point-CMAE's consistency between two branches' decoder hidden states on co-hidden tokens.

    The decoders' last-block outputs (before the final norm), in token order, L2-normalized, are
    compared on the tokens hidden in BOTH branches' masks:

    - `mode="diagonal"` (the paper's intent): mean over co-hidden tokens of
      `1 - cos(h1[t], h2[t]) + eps`;
    - `mode="row"` (the released code's quirk): for each co-hidden token t the mean of
      `1 - cos(h1[t], h2[j]) + eps` over ALL N tokens j of the sample, averaged over co-hidden rows.

    Args:
        mode: "diagonal" or "row".
        branches: the two branches compared.
        name, weight: as `LossTerm`.
    """

    def __init__(
        self, mode: Consistency = "diagonal", *, branches: tuple[int, int] = (0, 1), name: str = "consistency",
        weight: float = 1.0,
    ) -> None:
        super().__init__(name, weight)
        if mode not in ("diagonal", "row"):
            raise ValueError(f"consistency={mode!r}: expected 'diagonal' or 'row'")
        self.mode: Consistency = mode
        self.branches = branches

    def forward(self, state: Pass) -> Tensor:
        one, two = (state.branches[i] for i in self.branches)
        h1, h2 = one.hidden_states(), two.hidden_states()  # B×N×dim each, token order
        if h1 is None or h2 is None:
            raise ValueError(f"loss term {self.name!r} needs decoder hidden states; the decoders gave none")
        both = (one.plan.mask * two.plan.mask) > 0  # B×N, hidden in both draws
        return consistency_loss(h1, h2, both, self.mode)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode!r}, branches={self.branches}"


def reconstruction_terms(
    loss_fn: Callable[[Tensor, Tensor, Tensor | None], Tensor], branches: int | Sequence[int], weight: float
) -> list[LossTerm]:
    """One `Reconstruction` per reconstructing branch (`branches`: a count = all of 0..n-1, or the
    branch indices), named "rec" when there is one, else "rec{k+1}" for branch k."""
    ids = list(range(branches)) if isinstance(branches, int) else list(branches)
    if len(ids) == 1:
        return [Reconstruction(loss_fn, branch=ids[0], name="rec", weight=weight)]
    return [Reconstruction(loss_fn, branch=i, name=f"rec{i + 1}", weight=weight) for i in ids]


def total_loss(terms: Iterable[LossTerm], state: Pass) -> tuple[Tensor, dict[str, Tensor]]:
    """(sum of weight · value over `terms`, {name: detached value}) for one forward state.

    Terms that share a weight are summed before the multiplication, groups in order of first
    appearance: Point-CMAE's total is `1000 · (rec1 + rec2) + 1 · consistency`, the same
    floating-point operations as the released code.
    """
    groups: dict[float, Tensor] = {}
    parts: dict[str, Tensor] = {}
    for term in terms:
        value = term(state)
        parts[term.name] = value.detach()
        groups[term.weight] = value if term.weight not in groups else groups[term.weight] + value
    if not groups:
        raise ValueError("the model has no loss terms")
    weighted = [weight * value for weight, value in groups.items()]
    total = weighted[0]
    for value in weighted[1:]:
        total = total + value
    return total, parts
