"""MR-MAE ("Mimic before Reconstruct"): a mimic loss on the visible encoder tokens + MAE's pixels.

Facts (algorithms.md §7e, crossmodal_and_zoo.md B14): the code is not public (UNVERIFIED); per the
paper, the ~25% visible tokens of the encoder output are pushed towards a frozen teacher's
features (CLIP / DINO) at the same patches, and the decoder reconstructs the 75% hidden patches'
pixels. High- and low-level targets act on disjoint token sets. Here:

    loss = rec (MAE pixel loss on hidden patches) + mimic_weight · MSE(Linear(student final
           visible tokens), teacher final features at those patches)

the teacher running on the whole input (`FrozenTeacher`, `TeacherRequest(visible=False)`), its
final (normed) features optionally normalized per token (`target_norm`). The head and the loss
form are this project's reading of the paper (a Linear head, MSE, weight 1).

Presets: `mrmae_vit_base_patch16` (student MAE ViT-B/16, teacher a ViT-B/16 encoder: a DINO ViT-B/16
file in timm or HF layout works; CLIP's own layout does not load), `mrmae_vit_tiny_patch4` (student and
teacher the `mae_vit_tiny_patch4` sizes; an anymae checkpoint of `configs/mae_vit_tiny_cpu.yaml`).
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
class MRMAEConfig:
    """MR-MAE's options (the image model's options apply to the student).

    Attributes:
        base: the student's image preset.
        teacher: the image preset whose encoder is the teacher.
        mimic_weight: weight of the mimic term.
        target_norm: per-token normalization of the teacher features ("none", "layer", "l2").
    """

    base: str = "mae_vit_base_patch16"
    teacher: str = "mae_vit_base_patch16"
    mimic_weight: float = 1.0
    target_norm: str = "none"


MRMAE_PRESETS: dict[str, MRMAEConfig] = {
    "mrmae_vit_base_patch16": MRMAEConfig(),
    "mrmae_vit_tiny_patch4": MRMAEConfig(base="mae_vit_tiny_patch4", teacher="mae_vit_tiny_patch4"),
}


def build_mrmae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """An MR-MAE preset with overrides (student image options or `MRMAEConfig` fields)."""
    cfg, image = split_options(name, MRMAE_PRESETS[name], overrides)
    student = build_image_mae(cfg.base, **image)
    teacher = image_teacher(cfg.teacher, student.tokenizer.img_size, student.tokenizer.in_chans)
    request = TeacherRequest(TEACHER)
    teacher.request = request
    term = FeatureAlignment(
        student.encoder.dim, teacher.encoder.dim, pairs=[(None, None)], request=request, loss="mse",
        target_norm=cfg.target_norm, prefix=False, name="mimic", weight=cfg.mimic_weight,  # type: ignore[arg-type]
    )
    model = MaskedAutoencoder(
        student.tokenizer, student.encoder, student.decoder, student.masking, terms=[term],
        target_norm=student.target_norm, loss=student.loss_name, loss_params=student.loss_params,
        config=recipe_config(name, student.config, cfg),
    )
    model.add_teacher(TEACHER, teacher)
    return model


for _name, _cfg in MRMAE_PRESETS.items():
    _img = IMAGE_PRESETS[_cfg.base]
    register_model(
        _name, build_mrmae, modality="image",
        summary=f"MR-MAE: ViT {_img.embed_dim}d x{_img.depth}, mimic {_cfg.teacher} on visible tokens, patch "
                f"{_img.patch_size}",
        small={"img_size": 2 * _img.patch_size, "depth": 1, "decoder_depth": 1, "mask_ratio": 0.5,
               "teacher": "mae_vit_tiny_patch4" if _img.patch_size == 4 else "mae_vit_small_patch16"},
    )
