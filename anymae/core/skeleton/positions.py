"""The one place positions meet the encoder: `encode_with_positions`.

Used by `MaskedAutoencoder.run_encoder` (every branch, mode and `features()`) and by teachers
(`core.skeleton.teacher`), so a position table is added the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from anymae.core.encoder import TransformerEncoder
from anymae.core.masking import gather_tokens
from anymae.core.skeleton.steps import Encoded
from anymae.core.tokens import Tokens


def encode_with_positions(
    tokenizer: nn.Module, encoder: TransformerEncoder, x: Tensor, tokens: Tokens, index: Tensor | None, *,
    taps: Sequence[int] = (), final_norm: bool = True,
) -> Encoded:
    """Encode token inputs with the tokenizer's positions (`MaskedAutoencoder.run_encoder`, teachers).

    Args:
        tokenizer: gives `pos_embed(grid, coords) -> (1|B)×N×D`.
        encoder: the `TransformerEncoder`.
        x: B×M×D token inputs without positions: the tokens at `index` (B×M), or all N in token
            order when `index` is None.
        tokens: the tokenized batch (layout for positions).
        index: B×M token indices of `x`, or None.
        taps: encoder block indices whose outputs to keep (`Encoded.taps`).
        final_norm: apply the encoder's final norm.

    Returns:
        `Encoded` with B×(P+M)×D latent.
    """
    # several modalities (core.multimodal): each span's own positions; the encoder reads the spans
    pos = tokenizer.positions(tokens) if tokens.spans else tokenizer.pos_embed(tokens.grid, tokens.coords)  # (1|B)×N×D
    if index is not None:
        pos = gather_tokens(pos, index)  # B×M×D
    layers = tuple(i for i in range(encoder.depth) if i in taps)
    spans = {"tokens": tokens, "index": index} if getattr(encoder, "reads_tokens", False) else {}
    valid = tokens.valid if tokens.valid is None or index is None else torch.gather(tokens.valid, 1, index)  # B×M
    padding = {"valid": valid} if valid is not None else {}  # padded sequences (Tokens.valid)
    latent, inter = encoder(x, pos, return_layers=layers, final_norm=final_norm, **spans, **padding)
    return Encoded(latent, encoder.num_prefix, dict(zip(layers, inter)))
