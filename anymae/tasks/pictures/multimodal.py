"""Reconstruction panels of a multi-modal model: every modality of a sample side by side.

A multi-modal model's tokens are named spans over one sequence (`core.multimodal.MultiTokenizer`);
each span is drawn by its own modality's tokenizer (`to_pictures`, `picture_fill`: an fbank as a
spectrogram picture, a frame as an image, a depth map in gray), and the pictures of one panel
(input, masked, reconstruction, prediction) are put next to each other in span order, each enlarged
by a whole factor towards the tallest one, on white, with a white gap between modalities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

GAP = 4  # white pixels between two modalities' pictures


def is_multimodal(model: Any, out: Any) -> bool:
    """Whether the model's tokens are spans of several tokenizers (a `MultiTokenizer`)."""
    return hasattr(model.tokenizer, "tokenizers") and bool(out.tokens.spans)


def side_by_side(pictures: list[np.ndarray]) -> np.ndarray:
    """[B×H_i×W_i×3 uint8] -> B×H×(ΣW' + gaps)×3: each picture enlarged by the whole factor
    `H // H_i` (pixel repetition, so a 32² frame stands next to a 64-bin spectrogram at 64²),
    top-aligned on white, H the tallest."""
    b, h = pictures[0].shape[0], max(p.shape[1] for p in pictures)
    parts = []
    for i, p in enumerate(pictures):
        k = h // p.shape[1]
        p = p.repeat(k, axis=1).repeat(k, axis=2)  # B×(k·H_i)×(k·W_i)×3
        pad = np.full((b, h, p.shape[2], 3), 255, np.uint8)
        pad[:, : p.shape[1]] = p
        parts.append(pad)
        if i < len(pictures) - 1:
            parts.append(np.full((b, h, GAP, 3), 255, np.uint8))
    return np.concatenate(parts, axis=2)


def multimodal_panels(model: Any, batch: Any, out: Any, render: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The panels of `figures.panels_from_output` for a multi-modal model (module doc).

    Args:
        render: per-modality rendering options, `{modality: {option: value}}` (images: mean / std).
    """
    from anymae.tasks.pictures.figures import INPUT, MASKED, PREDICTION, RECONSTRUCTION

    tokens, tokenizer = out.tokens, model.tokenizer
    parts = (tokens.extra or {})["parts"]
    opts = {s.modality: dict((render or {}).get(s.modality, {})) for s in tokens.spans}
    width = tokens.target.shape[-1]
    fills = []
    for s in tokens.spans:  # the value each modality draws as flat gray, padded to the common width
        fill = tokenizer.tokenizers[s.modality].picture_fill(parts[s.modality], **opts[s.modality])  # 1×1×P_m
        fills.append(F.pad(fill, (0, width - fill.shape[-1])).expand(1, s.end - s.start, width))
    fill_all = torch.cat(fills, dim=1)  # 1×N×Pmax
    hidden = out.mask.unsqueeze(-1) > 0  # B×N×1
    masked = tokenizer.untokenize(torch.where(hidden, fill_all, tokens.target), tokens)

    def draw(data: Mapping[str, Any]) -> np.ndarray:
        return side_by_side([tokenizer.tokenizers[s.modality].to_pictures(data[s.modality], **opts[s.modality])
                             for s in tokens.spans])

    panels = {INPUT: draw(batch), MASKED: draw(masked), RECONSTRUCTION: draw(model.reconstruct(out, stats="own"))}
    if model.target_norm is not None:
        panels[PREDICTION] = draw(model.reconstruct(out, stats="visible"))
    return panels
