"""MR-MAE presets: pixel reconstruction on hidden patches + a mimic term on the visible encoder tokens
toward the teacher's final features (the teacher sees the whole image)."""

from __future__ import annotations

import torch

import anymae


def test_presets() -> None:
    with torch.device("meta"):
        model = anymae.create_model("mrmae_vit_base_patch16")
    term = model.terms[1]
    assert term.name == "mimic" and term.pairs == [(None, None)] and not term.prefix
    assert not term.request.visible and term.loss == "mse"
    assert (term.heads[0].in_features, term.heads[0].out_features) == (768, 768)
    tiny = anymae.create_model("mrmae_vit_tiny_patch4", target_norm="layer")
    assert tiny.terms[1].target_norm == "layer" and tiny.config["target_norm"] == "layer"
    assert tiny.teachers["teacher"].encoder.depth == 6
