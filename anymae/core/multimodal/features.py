"""Downstream features of one modality of a multi-modal model (`MaskedAutoencoder.features(x, modality=...)`).

CAV-MAE's modes: joint features are `features(x)` (every modality's tokens through the modality
blocks and the joint blocks, joint norm); `features(x, modality="audio")` is the audio-only
pass (audio blocks, joint blocks with the audio stream's norms, norm_a). With a shared encoder
(OmniMAE, MultiMAE) one modality's features are the encoder on that modality's tokens alone.
The result is a `Features` (per-token outputs, prefix, tapped layers), pooled by the one `pool`
vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from anymae.core.features import Features
from anymae.core.multimodal.encoder import MultiEncoder


def modality_features(model: Any, x: Any, modality: str, *, return_layers: Sequence[int] = (),
                      final_norm: bool = True) -> Features:
    """One modality's modality-only features.

    Args:
        model: a `MaskedAutoencoder` with a `MultiTokenizer`.
        x: the multi-modal batch (only `x[modality]` is read) or that modality's batch itself.
        modality: which modality.
        return_layers: layers to tap (a `MultiEncoder`: modality blocks first, then joint blocks).
        final_norm: apply the final norm (the modality's own with a `MultiEncoder`).
    """
    tokenizer = model.tokenizer
    names = getattr(tokenizer, "modalities", None)
    if names is None:
        raise ValueError("features(modality=...) needs a multi-modal model (a MultiTokenizer)")
    if modality not in names:
        raise ValueError(f"features(modality={modality!r}): the model's modalities are {list(names)}")
    batch = {modality: x[modality] if isinstance(x, Mapping) else x}
    tokens = tokenizer(batch)
    encoder = model.encoder
    if not isinstance(encoder, MultiEncoder):
        enc = model.run_encoder(tokens.x, tokens, None, taps=tuple(return_layers), final_norm=final_norm)
        inter = [enc.taps[i] for i in sorted(enc.taps)]
        return Features(tokens=enc.latent[:, enc.num_prefix :], prefix=enc.latent[:, : enc.num_prefix],
                        intermediates=inter)
    if return_layers:
        raise ValueError("features(modality=...) of a MultiEncoder taps no layers (return_layers must be empty)")
    h = tokens.x + tokenizer.positions(tokens)  # B×n×D
    out = encoder.modality_pass(h, modality, final_norm=final_norm)
    return Features(tokens=out, prefix=out.new_zeros(out.shape[0], 0, out.shape[-1]))


__all__ = ["modality_features"]
