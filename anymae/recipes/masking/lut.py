"""LUT: Learning with Unmasked Tokens (naver-ai/lut; crossmodal_and_zoo.md B5).

Facts from the reference (`models/models_lut.py`, `engines/engine_lut.py`, `main_lut.py`,
`docs/PRETRAIN.md`):

- two augmented views per image; ONE noise per sample: view 1 keeps `ids_shuffle[:K]`, view 2
  keeps `ids_shuffle[K:2K]` (K = int(N·(1 − r)) = 49 of 196 at r = 0.75): disjoint positions
  (`core.masking.views.ConsecutiveKeepMasking`, branch 1 reads view 1 with no decoder);
- MAE's loss (decoder 512×8, norm_pix) on view 1 only;
- student: mean of each view's visible patch tokens (after the final norm) -> projector -> predictor,
  both `Linear(no bias) -> BatchNorm1d -> ReLU -> Linear(no bias)` with hidden 4096 (BN under
  SyncBN: the reference converts the model with `convert_sync_batchnorm`);
- EMA teacher (decay 0.996, cosine to 1 over the run; `core.skeleton.teacher.EMATeacher` of the
  tokenizer, encoder and projector) on both full, unmasked views: mean of all patch tokens ->
  its projector; `2 − 2·cos` between student view v and teacher view u != v, averaged over the 2
  pairs (`core.skeleton.view_terms.CrossViewBYOL`); total = 1·MAE + 0.25·LUT;
- bs 128 × accum 4 × 8 GPUs, blr 1.5e-4, AdamW (0.9, 0.95), wd 0.05, 1600 epochs, warmup 40.
- ViT-B: 124.25M trainable (MAE-B + 12.60M projector / predictor).

Deviations: the views come from the data source's pretraining transform drawn twice
(`data.views: 2`, `data.view_mode: augment`), not LUT's `TwoGlobalViewAugmentation` (Resize +
RandomCrop(pad 4) + flip, the second view adding colour jitter and one of grayscale / solarize /
blur); the reference's lr rule is `blr·sqrt(batch)/4`, which equals the engine's `blr·batch/256` at
its batch of 4096 only; the EMA teacher copies the student's BatchNorm running statistics after
every step where the reference averages them too; `ema_steps` (the cosine's length, in optimizer
steps) is an option because the model does not know the run's length: `auto` in a run config
computes it from the data (`tasks.train.run_length`; the base preset's default: 1600 epochs × 312
steps of 4096 images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from anymae.core.build import MAEConfig, build_mae, config_dict, resolve_config
from anymae.core.losses import TokenNorm
from anymae.core.masking import ConsecutiveKeepMasking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import FixedSinCos
from anymae.core.registry import register_model
from anymae.core.skeleton import BranchSpec
from anymae.core.skeleton.teacher import EMATeacher, Momentum
from anymae.core.skeleton.view_terms import CrossViewBYOL
from anymae.core.transformer import init_mae_
from anymae.modalities.image import ImageTokenizer

TEACHER = "ema"


@dataclass
class LUTConfig(MAEConfig):
    """LUT's options on a ViT image MAE (the `MAEConfig` sizes plus the fields below).

    Attributes:
        img_size, patch_size, in_chans: the input geometry.
        head_mlp_dim: the projector / predictor hidden width (4096).
        lut_weight: weight of the cross-view term (`w_bc` 0.25).
        ema_momentum: the teacher's decay at step 0 (0.996).
        ema_end: the cosine's end value (1.0).
        ema_steps: the cosine's length in optimizer steps (the run's total steps; `auto` in a run config:
            the lr schedule's length, `tasks.train.run_length`).
        sync_bn: BatchNorm statistics synchronized across processes (`SyncedBatchNorm1d`: gloo and NCCL).
    """

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    head_mlp_dim: int = 4096
    lut_weight: float = 0.25
    ema_momentum: float = 0.996
    ema_end: float = 1.0
    ema_steps: int = 1600 * (1281167 // 4096)
    sync_bn: bool = True


_TINY = {"img_size": 32, "patch_size": 4, "embed_dim": 128, "depth": 6, "num_heads": 4,
         "decoder_embed_dim": 64, "decoder_depth": 2, "decoder_num_heads": 4}
PRESETS: dict[str, LUTConfig] = {
    "lut_vit_base_patch16": LUTConfig(),
    # CPU size: 32 px, patch 4 (64 tokens, K = 16 per view), a 512-wide head.
    "lut_vit_tiny_patch4": LUTConfig(**_TINY, head_mlp_dim=512, ema_steps=1000),
}


def build_lut(name: str, **overrides: Any) -> MaskedAutoencoder:
    """A LUT preset with overrides (options: `LUTConfig`)."""
    cfg = resolve_config(PRESETS[name], overrides, what=f"model {name!r}")
    if cfg.ema_steps < 1:
        raise ValueError(f"model {name!r}: ema_steps={cfg.ema_steps}, expected the run's optimizer steps (>= 1)")
    masking = ConsecutiveKeepMasking(cfg.mask_ratio)
    tokenizer = ImageTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
    base = build_mae(
        cfg, tokenizer=tokenizer, decoder_pos=FixedSinCos(tokenizer.grid, cfg.decoder_embed_dim),
        head=nn.Linear(cfg.decoder_embed_dim, cfg.patch_size**2 * cfg.in_chans), masking=masking, config={},
        init=init_mae_,
    )
    term = CrossViewBYOL(
        cfg.embed_dim, cfg.head_mlp_dim, teacher=TEACHER, branches=(0, 1), sync_bn=cfg.sync_bn, name="lut",
        weight=cfg.lut_weight,
    )
    model = MaskedAutoencoder(
        base.tokenizer, base.encoder, base.decoder, masking,
        branches=[BranchSpec(view=0), BranchSpec(view=1, decoder=None, reconstruct=False)],  # MAE on view 1 only
        terms=[term], target_norm=TokenNorm() if cfg.norm_pix_loss else None, loss="mse",
        config=config_dict(name, cfg),
    )
    momentum = Momentum(cfg.ema_momentum, cfg.ema_end, cfg.ema_steps)
    model.add_teacher(TEACHER, EMATeacher(model, momentum, parts=("tokenizer", "encoder", term.projector_path(model))))
    return model


for _name, _cfg in PRESETS.items():
    register_model(
        _name, build_lut, modality="image",
        summary=f"LUT: ViT {_cfg.embed_dim}d x{_cfg.depth}, two views with disjoint keep sets at {_cfg.mask_ratio}, "
                f"MAE + {_cfg.lut_weight}·BYOL to an EMA teacher",
        small={"img_size": 2 * _cfg.patch_size, "depth": 1, "decoder_depth": 1, "mask_ratio": 0.5, "head_mlp_dim": 16},
    )  # fmt: skip
