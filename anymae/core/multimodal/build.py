"""Compose a multi-modal `MaskedAutoencoder` from its parts (the recipes' one call).

The skeleton is the single-modality one: a `MultiTokenizer`, a span masking strategy, a
`TransformerEncoder` or `MultiEncoder`, a span decoder run by `SpanDropMode`, and one
`SpanReconstruction` term per modality instead of the skeleton's joint "rec" term (the one
branch has `reconstruct=False`), plus extra terms (`ModalityContrastive`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from anymae.core.losses import TokenNorm, get_loss
from anymae.core.masking import MaskingStrategy
from anymae.core.model import MaskedAutoencoder
from anymae.core.multimodal.mode import SpanDropMode
from anymae.core.multimodal.terms import SpanReconstruction
from anymae.core.skeleton.steps import BranchSpec
from anymae.core.skeleton.terms import LossTerm


@dataclass(frozen=True)
class ModalityLoss:
    """One modality's reconstruction: a loss name (`core.losses.LOSSES`), its parameters, a target norm,
    its weight, and whether it averages per sample first (`SpanReconstruction.per_sample`)."""

    loss: str = "mse"
    params: dict[str, Any] = field(default_factory=dict)
    norm: TokenNorm | None = None
    weight: float = 1.0
    per_sample: bool = False


def build_multimodal_mae(
    *, tokenizer: nn.Module, encoder: nn.Module, decoder: nn.Module, masking: MaskingStrategy,
    losses: Mapping[str, ModalityLoss], terms: Sequence[LossTerm] = (), config: dict[str, Any] | None = None,
) -> MaskedAutoencoder:
    """A `MaskedAutoencoder` over several modalities (module doc); `losses`: modality -> its loss."""
    missing = sorted(set(getattr(tokenizer, "modalities", ())) - set(losses))
    if missing:
        raise ValueError(f"no reconstruction loss for modality(ies) {missing}")
    rec = [SpanReconstruction(m, get_loss(spec.loss, **spec.params), norm=spec.norm, weight=spec.weight,
                              per_sample=spec.per_sample)
           for m, spec in losses.items()]
    return MaskedAutoencoder(
        tokenizer, encoder, decoder, masking, mode=SpanDropMode(), terms=[*rec, *terms],
        branches=[BranchSpec(view=0, decoder=0, reconstruct=False)], config=config,
    )
