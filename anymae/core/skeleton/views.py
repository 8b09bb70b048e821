"""Branches over views: which view each branch reads, which decoder it shares, what it encodes.

`MaskedAutoencoder(branches=[BranchSpec, ...])` (`core.skeleton.steps.BranchSpec`) runs one mask
draw per spec. The helpers here keep that bookkeeping out of the model:

- `resolve_branches`: the default specs (one branch per decoder, all on view 0: MAE, Point-CMAE)
  or the given ones, checked against the decoders;
- `tokenize_views`: tokenize every view some branch reads (a `Views` batch, or a plain batch as
  view 0);
- `whole_plan`: the plan of a branch that sees its whole view (every token kept, none hidden);
- `reconstructed_views`: the views whose targets the reconstruction terms need.

Examples (B samples, two views):

    DMJD  [BranchSpec(view=0, decoder=0), BranchSpec(view=0, decoder=0)]   # one decoder, two masks
    LUT   [BranchSpec(view=0), BranchSpec(view=1, decoder=None, reconstruct=False)]
    CroCo [BranchSpec(view=0, memory=1), BranchSpec(view=1, decoder=None, reconstruct=False, whole=True)]
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from anymae.core.masking import MaskPlan
from anymae.core.skeleton.steps import BranchSpec, Views
from anymae.core.tokens import Tokens

Noise = Tensor | Sequence[Tensor | None] | None  # injected masking scores: branch 0's, or one per branch


def resolve_branches(branches: Sequence[BranchSpec] | None, num_decoders: int) -> tuple[BranchSpec, ...]:
    """The model's branch specs: `branches`, or one `BranchSpec(view=0, decoder=k)` per decoder.

    Raises:
        ValueError: no branch, a decoder index out of range, a memory index that is not another
            branch, or a decoder that no branch uses (its parameters would get no gradient).
    """
    if branches is None:
        return tuple(BranchSpec(view=0, decoder=k) for k in range(num_decoders))
    specs = tuple(branches)
    if not specs:
        raise ValueError("branches: expected at least one BranchSpec")
    for k, spec in enumerate(specs):
        if not isinstance(spec, BranchSpec):
            raise TypeError(f"branches[{k}]: expected a BranchSpec, got {type(spec).__name__}")
        if spec.decoder is not None and not 0 <= spec.decoder < num_decoders:
            raise ValueError(f"branches[{k}].decoder={spec.decoder}: the model has decoders 0..{num_decoders - 1}")
        if spec.memory is not None and (spec.memory == k or not 0 <= spec.memory < len(specs)):
            raise ValueError(f"branches[{k}].memory={spec.memory}: expected the index of another branch "
                             f"(0..{len(specs) - 1})")
    if specs[0].decoder is None:
        raise ValueError("branches[0] needs a decoder: the model's output (pred, mask, pictures) is branch 0's")
    unused = sorted(set(range(num_decoders)) - {s.decoder for s in specs})
    if unused:
        raise ValueError(f"decoder(s) {unused} are read by no branch; give each decoder a BranchSpec")
    return specs


def tokenize_views(
    x: Any, branches: Sequence[BranchSpec], tokenize: Callable[[Any], Tokens]
) -> tuple[list[Any], list[Tokens | None]]:
    """(every view's modality batch, every view's tokens or None when no branch reads it).

    Args:
        x: a `Views` batch, or a plain batch: view 0, and every view for a model that reads
            several (the same input for each, with a warning: a training run should give views).
        branches: the model's branch specs (which views are read).
        tokenize: the model's tokenize step.

    Raises:
        ValueError: a branch reads a view a `Views` batch does not have, or the views' batch sizes
            differ.
    """
    needed = {0, *(s.view for s in branches)}
    if not isinstance(x, Views) and max(needed) > 0:
        warnings.warn(
            f"the model reads {max(needed) + 1} views but got a plain batch: using it for every view "
            f"(pretraining: set data.views={max(needed) + 1})", stacklevel=3,
        )
        x = Views(tuple(x for _ in range(max(needed) + 1)))
    views = Views.of(x)
    if max(needed) >= len(views):
        raise ValueError(
            f"a branch reads view {max(needed)} but the batch has {len(views)} view(s); give the model "
            f"{max(needed) + 1} views per sample (data.views={max(needed) + 1}, data.view_mode=augment or same)"
        )
    tokens = [tokenize(views[v]) if v in needed else None for v in range(len(views))]
    sizes = {t.x.shape[0] for t in tokens if t is not None}
    if len(sizes) > 1:
        raise ValueError(
            f"the views hold different numbers of samples {sorted(sizes)}; every view needs one row per sample"
        )
    return list(views.items), tokens


def whole_plan(batch_size: int, num_tokens: int, device: torch.device) -> MaskPlan:
    """Every token visible in token order, none hidden: keep B×N, hide B×0, restore B×N."""
    order = torch.arange(num_tokens, device=device).expand(batch_size, num_tokens)  # B×N
    return MaskPlan(keep=order, hide=order[:, :0], restore=order)


def reconstructed_views(branches: Sequence[BranchSpec]) -> set[int]:
    """View 0 and every view some branch reconstructs (their targets are computed)."""
    return {0, *(s.view for s in branches if s.reconstruct)}


def nth_noise(noise: Noise, k: int) -> Tensor | None:
    """Branch k's injected scores: a tensor is the first branch's; a sequence has one per branch."""
    if noise is None or isinstance(noise, Tensor):
        return noise if k == 0 else None
    return noise[k] if k < len(noise) else None
