"""MaskAlign presets: mask 0.7 drawn from the teacher's attention, top-5 teacher layers of 12, whitened
targets, smooth-L1, no decoder; the teacher sees the whole image."""

from __future__ import annotations

import torch

import anymae
from anymae.core.skeleton.query_modes import EncoderOnlyMode


def test_paper_preset() -> None:
    with torch.device("meta"):
        model = anymae.create_model("maskalign_vit_base_patch16")
    term = model.terms[1]
    assert isinstance(model.mode, EncoderOnlyMode)
    assert term.layers == (7, 8, 9, 10, 11) and term.taps == tuple(range(12))
    assert term.fusion == "linear" and term.target_norm == "layer" and term.loss == "smooth_l1"
    assert not term.request.visible and term.request.attention_block == 11
    assert model.config["masking"] == "score_sample" and model.masking.num_keep(196) == int(196 * 0.3)
    assert model.config["masking_params"]["source"] == "teacher_cls_attention"
    assert model.encoder.cfg.drop_path == 0.1


def test_tiny_preset_trains_the_student_only() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("maskalign_vit_tiny_patch4")
    out = model(torch.randn(2, 3, 32, 32), seeds=torch.arange(2))
    out.loss.backward()
    assert out.parts["rec"] == 0 and out.parts["align"] > 0
    assert all(p.grad is None for p in model.teachers.parameters())
    assert model.terms[1].mix.grad is not None and model.encoder.blocks[0].attn.qkv.weight.grad is not None
