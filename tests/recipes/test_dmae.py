"""DMAE presets: the paper's layer pair and projector, the student's parameter count
(crossmodal_and_zoo.md B4: 112.44M = MAE-B 111.66M + the 768 -> 1024 projector), the teacher's shape."""

from __future__ import annotations

import pytest
import torch

import anymae


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_paper_preset_layers_projector_and_count() -> None:
    with torch.device("meta"):
        model = anymae.create_model("dmae_vit_base_patch16")
    term = model.terms[1]
    assert term.name == "distill" and term.weight == 1.0
    assert term.pairs == [(8, 17)] and term.taps == (8,)
    assert term.request.taps == (17,) and term.request.visible
    assert (term.heads[0].in_features, term.heads[0].out_features) == (768, 1024)
    assert term.loss == "l1" and term.pred_norm == term.target_norm == "l2" and term.prefix
    teacher = model.teachers["teacher"]
    assert (teacher.encoder.depth, teacher.encoder.dim) == (24, 1024)
    assert not any(p.requires_grad for p in teacher.parameters())
    assert round(_trainable(model) / 1e6, 2) == 112.44
    assert round((_trainable(model) - 768 * 1024 - 1024) / 1e6, 2) == 111.66  # MAE ViT-B + the projector


def test_tiny_preset_layers() -> None:
    model = anymae.create_model("dmae_vit_tiny_patch4")
    term = model.terms[1]
    assert term.pairs == [(4, 4)] and (term.heads[0].in_features, term.heads[0].out_features) == (128, 128)
    assert model.config["teacher"] == "mae_vit_tiny_patch4" and model.config["name"] == "dmae_vit_tiny_patch4"


@pytest.mark.parametrize("option, value, message", [
    ("student_layer", 6, "student_layer=6, expected a block index in 0..5"),
    ("teacher_layer", -1, "teacher_layer=-1"),
    ("teacher", "nope", "is not an image preset"),
])
def test_bad_options_are_named(option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        anymae.create_model("dmae_vit_tiny_patch4", **{option: value})


def test_unknown_option_lists_recipe_and_image_options() -> None:
    with pytest.raises(TypeError, match="unknown option.*student_lyer.*recipe options: base, distill_weight"):
        anymae.create_model("dmae_vit_tiny_patch4", student_lyer=3)
