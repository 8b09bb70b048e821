"""MaskAlign: align the student's visible tokens with a frozen teacher's features; no decoder.

Facts (algorithms.md §7b, OpenDriveLab/maskalign `models_pretrain.py`):

- the teacher sees the whole image, the student only the visible patches (mask 0.7);
- `mask_type attention`: the visible ids are drawn by `multinomial` (without replacement) over
  the teacher's last-block cls -> patch attention (heads averaged), so attended patches tend to
  stay visible; here `score_sample` masking with the "teacher_cls_attention" score source (log
  attention, softmax τ = 1, Gumbel top-k: the same distribution from the per-sample seeds);
- "dynamic alignment" (`fusion_type linear`): every student block's output (cls + visible,
  before the final norm) is mixed by a learned S×S matrix initialized to I + 0.01 (the code; the
  note's 1/depth is `fusion_type sum`), one Linear head per teacher layer to the teacher width;
- targets: the teacher's block outputs at the same tokens + cls, whitened (LayerNorm without
  affine); loss: Σ over the top-5 teacher layers of (1/5) · 2 · smooth-L1 (β = 1).

Presets: `maskalign_vit_base_patch16` (student ViT-B/16, teacher a ViT-B/16 encoder: DINO-B/16 in
timm or HF layout loads; the paper's default CLIP-B/16 does not), `maskalign_vit_tiny_patch4`
(student and teacher the `mae_vit_tiny_patch4` sizes, 6 blocks: top 3 layers, 5/12 of the depth
rounded up). The model has no decoder (`EncoderOnlyMode`): "rec" is logged as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anymae.core.targets.teacher_features  # noqa: F401  (registers the "teacher_cls_attention" score source)
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import register_model
from anymae.core.skeleton.distill_terms import MaskAlignLoss
from anymae.core.skeleton.query_modes import EncoderOnlyMode, NoDecoder
from anymae.core.targets.teacher_features import TEACHER, TeacherRequest
from anymae.modalities.image import IMAGE_PRESETS, build_image_mae
from anymae.recipes.targets._distill import image_teacher, recipe_config, split_options


@dataclass
class MaskAlignConfig:
    """MaskAlign's options (the image model's options apply to the student).

    Attributes:
        base: the student's image preset.
        teacher: the image preset whose encoder is the teacher.
        top: the last `top` teacher layers are scored.
        fusion: "linear" (I + 0.01, equal depths), "sum" (1/S) or "none".
        target_norm: "layer" (whiten), "l2" or "none".
        align_loss: "smooth_l1" (×2, the reference), "mse" or "l1".
    """

    base: str = "mae_vit_base_patch16"
    teacher: str = "mae_vit_base_patch16"
    top: int = 5
    fusion: str = "linear"
    target_norm: str = "layer"
    align_loss: str = "smooth_l1"


_ATTENTION_MASK = {"masking": "score_sample", "mask_ratio": 0.7,
                   "masking_params": {"select": "keep", "source": "teacher_cls_attention"}}
MASKALIGN_PRESETS: dict[str, tuple[MaskAlignConfig, dict[str, Any]]] = {
    "maskalign_vit_base_patch16": (MaskAlignConfig(), {**_ATTENTION_MASK, "drop_path": 0.1}),
    "maskalign_vit_tiny_patch4": (MaskAlignConfig(base="mae_vit_tiny_patch4", teacher="mae_vit_tiny_patch4", top=3),
                                  dict(_ATTENTION_MASK)),
}


def build_maskalign(name: str, **overrides: Any) -> MaskedAutoencoder:
    """A MaskAlign preset with overrides (student image options or `MaskAlignConfig` fields)."""
    preset, image_defaults = MASKALIGN_PRESETS[name]
    cfg, image = split_options(name, preset, overrides)
    student = build_image_mae(cfg.base, **{**image_defaults, **image})
    enc = student.encoder
    teacher = image_teacher(cfg.teacher, student.tokenizer.img_size, student.tokenizer.in_chans)
    t_depth = teacher.encoder.depth
    if not 1 <= cfg.top <= t_depth:
        raise ValueError(f"model {name!r}: top={cfg.top}, expected 1..{t_depth} (the teacher's depth)")
    request = TeacherRequest(TEACHER, taps=tuple(range(t_depth - cfg.top, t_depth)), attention_block=t_depth - 1)
    teacher.request = request
    term = MaskAlignLoss(
        enc.dim, enc.depth, teacher.encoder.dim, t_depth, request=request, top=cfg.top,
        fusion=cfg.fusion, target_norm=cfg.target_norm, loss=cfg.align_loss, name="align",  # type: ignore[arg-type]
    )
    out_dim = student.tokenizer.patch_size**2 * student.tokenizer.in_chans
    model = MaskedAutoencoder(
        student.tokenizer, enc, NoDecoder(out_dim), student.masking, mode=EncoderOnlyMode(), terms=[term],
        config=recipe_config(name, student.config, cfg),
    )
    model.add_teacher(TEACHER, teacher)
    return model


for _name, (_cfg, _defaults) in MASKALIGN_PRESETS.items():
    _img = IMAGE_PRESETS[_cfg.base]
    register_model(
        _name, build_maskalign, modality="image",
        summary=f"MaskAlign: ViT {_img.embed_dim}d x{_img.depth} aligned to {_cfg.teacher} (top {_cfg.top}), "
                f"patch {_img.patch_size}",
        small={"img_size": 2 * _img.patch_size, "depth": 1, "mask_ratio": 0.5, "top": 1, "fusion": "sum",
               "teacher": "mae_vit_tiny_patch4" if _img.patch_size == 4 else "mae_vit_small_patch16"},
    )
