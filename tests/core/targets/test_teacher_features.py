"""Teacher features as the decoder's targets: a chosen block's output of a frozen teacher on all
tokens, whitened per token, scored at the hidden tokens; the teacher runs once per pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import anymae
from anymae.core.decoders.mae import DecoderConfig, MAEDecoder
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import FixedSinCos
from anymae.core.targets.teacher_features import TEACHER, TeacherFeatures, feature_norm
from anymae.recipes.targets._distill import image_teacher


def _model(layer: int | None, norm: str) -> MaskedAutoencoder:
    torch.manual_seed(0)
    base = anymae.create_model("mae_vit_tiny_patch4", img_size=16, embed_dim=32, depth=1, num_heads=2)
    decoder = MAEDecoder(DecoderConfig(dim=32, depth=1, num_heads=2), 32, FixedSinCos((4, 4), 32), nn.Linear(32, 128))
    model = MaskedAutoencoder(base.tokenizer, base.encoder, decoder, base.masking,
                              target=TeacherFeatures(128, layer=layer, norm=norm))  # type: ignore[arg-type]
    model.add_teacher(TEACHER, image_teacher("mae_vit_tiny_patch4", 16, 3))
    return model


def test_block_features_whitened_are_the_targets_of_the_hidden_tokens() -> None:
    model = _model(2, "layer")
    teacher = model.teachers[TEACHER]
    x = torch.randn(2, 3, 16, 16)
    out = model(x, seeds=torch.arange(2))
    with torch.no_grad():
        tok = teacher.tokenizer(x)
        h = torch.cat([teacher.encoder.cls_token.expand(2, -1, -1), tok.x + teacher.tokenizer.pos_embed(tok.grid)], 1)
        for blk in teacher.encoder.blocks[:3]:
            h = blk(h)
        want = F.layer_norm(h[:, 1:], (128,))  # B×N×128, no affine
    assert torch.allclose(out.target, want, atol=1e-5)
    per_token = ((out.pred - out.target) ** 2).mean(-1)  # B×N
    rec = (per_token * out.mask).sum() / out.mask.sum()
    assert torch.allclose(out.parts["rec"], rec, atol=1e-6)
    assert not out.target.requires_grad


def test_final_features_and_norms() -> None:
    model = _model(None, "l2")
    x = torch.randn(1, 3, 16, 16)
    out = model(x, seeds=torch.arange(1))
    final = model.teachers[TEACHER](x).tokens
    assert torch.allclose(out.target, F.normalize(final, dim=-1), atol=1e-6)
    with pytest.raises(ValueError, match="feature norm 'bn'"):
        feature_norm(final, "bn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="feature norm 'bn'"):
        TeacherFeatures(128, norm="bn")  # type: ignore[arg-type]
