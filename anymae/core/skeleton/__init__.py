"""The autoencoder skeleton's parts: step outputs, masking modes, loss terms, a transformer backbone.

    tokenize -> plan masks -> encode visible -> decode queries -> targets -> loss terms

`core.model.MaskedAutoencoder` runs these steps; recipes compose its parts (a mode, extra
decoders = extra mask draws, extra loss terms) instead of subclassing it.
"""

from anymae.core.skeleton.backbone import LinearHead, TransformerBackbone
from anymae.core.skeleton.modes import DropMode, MaskingMode, ReplaceMode
from anymae.core.skeleton.steps import (
    Branch, BranchPlan, BranchSpec, Decoded, Encoded, MAEOutput, Pass, Views, to_token_order,
)
from anymae.core.skeleton.terms import (
    DecoderConsistency,
    LossTerm,
    Reconstruction,
    consistency_loss,
    reconstruction_terms,
    total_loss,
)

__all__ = [
    "BranchSpec", "MAEOutput", "Views",
    "Branch", "BranchPlan", "Decoded", "DecoderConsistency", "DropMode", "Encoded", "LinearHead", "LossTerm",
    "MaskingMode", "Pass", "Reconstruction", "ReplaceMode", "TransformerBackbone", "consistency_loss",
    "reconstruction_terms", "to_token_order", "total_loss",
]
