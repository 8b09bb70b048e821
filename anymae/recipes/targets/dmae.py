"""DMAE: MAE pretraining distilled from a frozen, pretrained MAE (crossmodal_and_zoo.md B4).

The teacher (the paper: MAE ViT-L/16) encodes the SAME visible tokens as the student (the
reference hands the teacher's `ids_keep` to the student; here both read the student's one mask
plan: `FrozenTeacher(index=plan.keep)`). Loss = MAE's pixel loss on the hidden patches + 1 ·
L1(normalize(teacher block 17 output), normalize(Linear 768 -> 1024 (student block 8 output)))
over cls + visible tokens (0-based block indices, outputs before the final norm).

Presets:
- `dmae_vit_base_patch16`: student MAE ViT-B/16 (112.44M trainable = MAE-B + 0.79M projector),
  teacher = the MAE ViT-L/16 encoder, blocks (8, 17) (both 3/4 of the depth).
- `dmae_vit_tiny_patch4`: student = `mae_vit_tiny_patch4` (6 blocks, 128 wide), teacher = the
  same tiny encoder (an anymae checkpoint of `configs/mae_vit_tiny_cpu.yaml`), blocks (4, 4):
  3/4 of 6 blocks is 4.5, rounded up to the output of the 5th block (0-based 4) on both sides.

The teacher's weights come from `teacher.checkpoint=PATH` (`tasks.train.teacher_setup`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import register_model
from anymae.core.skeleton.distill_terms import FeatureAlignment
from anymae.core.targets.teacher_features import TEACHER, TeacherRequest
from anymae.modalities.image import IMAGE_PRESETS, build_image_mae
from anymae.recipes.targets._distill import image_teacher, recipe_config, split_options


@dataclass
class DMAEConfig:
    """DMAE's options (the image model's options apply to the student).

    Attributes:
        base: the student's image preset.
        teacher: the image preset whose encoder is the teacher.
        student_layer: the student block aligned (0-based).
        teacher_layer: the teacher block it is aligned to (0-based).
        distill_weight: weight of the alignment term (1 in the reference).
    """

    base: str = "mae_vit_base_patch16"
    teacher: str = "mae_vit_large_patch16"
    student_layer: int = 8
    teacher_layer: int = 17
    distill_weight: float = 1.0


DMAE_PRESETS: dict[str, DMAEConfig] = {
    "dmae_vit_base_patch16": DMAEConfig(),
    "dmae_vit_tiny_patch4": DMAEConfig(
        base="mae_vit_tiny_patch4", teacher="mae_vit_tiny_patch4", student_layer=4, teacher_layer=4
    ),
}


def build_dmae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """A DMAE preset with overrides (student image options or `DMAEConfig` fields)."""
    cfg, image = split_options(name, DMAE_PRESETS[name], overrides)
    student = build_image_mae(cfg.base, **image)
    enc = student.encoder
    teacher = image_teacher(cfg.teacher, student.tokenizer.img_size, student.tokenizer.in_chans)
    if teacher.tokenizer.patch_size != student.tokenizer.patch_size:
        raise ValueError(
            f"model {name!r}: DMAE's teacher runs on the student's visible patches; teacher {cfg.teacher!r} has patch "
            f"{teacher.tokenizer.patch_size}, the student {student.tokenizer.patch_size}"
        )
    for what, layer, depth in (("student_layer", cfg.student_layer, enc.depth),
                               ("teacher_layer", cfg.teacher_layer, teacher.encoder.depth)):
        if not 0 <= layer < depth:
            raise ValueError(f"model {name!r}: {what}={layer}, expected a block index in 0..{depth - 1}")
    request = TeacherRequest(TEACHER, taps=(cfg.teacher_layer,), visible=True)
    teacher.request = request
    term = FeatureAlignment(
        enc.dim, teacher.encoder.dim, pairs=[(cfg.student_layer, cfg.teacher_layer)], request=request, loss="l1",
        pred_norm="l2", target_norm="l2", prefix=True, name="distill", weight=cfg.distill_weight,
    )
    model = MaskedAutoencoder(
        student.tokenizer, enc, student.decoder, student.masking, terms=[term], target_norm=student.target_norm,
        loss=student.loss_name, loss_params=student.loss_params, config=recipe_config(name, student.config, cfg),
    )
    model.add_teacher(TEACHER, teacher)
    return model


for _name, _cfg in DMAE_PRESETS.items():
    _img = IMAGE_PRESETS[_cfg.base]
    register_model(
        _name, build_dmae, modality="image",
        summary=f"DMAE: ViT {_img.embed_dim}d x{_img.depth} <- {_cfg.teacher} (blocks {_cfg.student_layer} <- "
                f"{_cfg.teacher_layer}), patch {_img.patch_size}",
        small={"img_size": 2 * _img.patch_size, "depth": 1, "decoder_depth": 1, "mask_ratio": 0.5,
               "teacher": "mae_vit_tiny_patch4" if _img.patch_size == 4 else "mae_vit_small_patch16",
               "student_layer": 0, "teacher_layer": 0},
    )
