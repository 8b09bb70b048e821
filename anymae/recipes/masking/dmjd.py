"""DMJD: Disjoint Masking with Joint Distillation (mx-mark/DMJD; crossmodal_and_zoo.md B3).

Facts from the reference (`models_dmjd.py`, `main_pretrain.py`, `PRETRAIN.md`):

- every image is used twice (`cat([x, x])`): two branches on the same view through ONE encoder and
  ONE decoder (`BranchSpec(view=0, decoder=0)` twice);
- disjoint masks (`core.masking.views.DisjointMasking`): view 1 random per 2×2-patch cell
  (`block`, 7×7 cells at 224/16) or per patch (`rand`), `int(L·(1 − r))` units visible; view 2
  hides `e = int(min(pred_ratio − r, r)·L)` of view 1's visible units and shows `e` of its hidden
  ones (r = 0.6: 19 of 49 cells visible per view, the two visible sets disjoint);
- targets: HOG on the un-normalized image (`core.targets.hog.HOGTargets`, skimage-style gradients,
  9 orientations, 8×8 cells, per-cell LayerNorm without affine; 2·2 cells·9·3 = 108 per patch);
- losses: L2 on the masked patches of both views (one mean over both: 0.5·(rec1 + rec2)) +
  θ (1) · smooth-L1 (β 2) visible distillation (`core.skeleton.view_terms.VisibleDistillation`:
  visible encoder tokens -> 3-layer MLP (decoder width) -> Linear -> HOG of the visible patches);
- lr = blr · batch · (pred_ratio / mask_ratio) / 256 (`model.lr_scale`, ×1.67 at r = 0.6; the batch
  counts images, not views); blr 6e-4, 64 × 8 GPUs, 400 epochs, warmup 20, mask 0.6 block.

Deviation: the reference's backbone is ConViT (ConvMAE-style conv stages + 11 ViT blocks); here the
encoder is the plain ViT of the image modality (the DMJD README also reports MaskFeat ViT-B + DMJD).
The ViT has a cls token (MAE's), the ConViT has none. The reference's visible-distillation pairing
quirk (predictions in shuffled order against targets in token order) is the default
(`vis_order="reference"`); `vis_order="aligned"` pairs each token with its own HOG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from anymae.core.build import MAEConfig, build_mae, config_dict, resolve_config
from anymae.core.masking import DisjointMasking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import FixedSinCos
from anymae.core.registry import register_model
from anymae.core.skeleton import BranchSpec
from anymae.core.skeleton.view_terms import VisibleDistillation
from anymae.core.targets.hog import HOGTargets
from anymae.core.transformer import init_mae_
from anymae.modalities.image import IMAGENET_MEAN, IMAGENET_STD, ImageTokenizer

_MASK_TYPES = ("block", "rand")
_VIS_ORDERS = ("reference", "aligned")


@dataclass
class DMJDConfig(MAEConfig):
    """DMJD's options on a ViT image MAE (the `MAEConfig` sizes plus the fields below).

    Attributes:
        img_size, patch_size, in_chans: the input geometry.
        mask_type: "block" (2×2-patch cells, DMJD's default) or "rand" (per patch).
        block_cell: the cell side in patches for "block" (2).
        pred_ratio: DMJD's pred_ratio (1.0; the reference never passes its flag to the model).
        theta: weight of the visible distillation (1.0, hard-coded in the reference).
        vis_beta: smooth-L1 β of the visible distillation (2.0).
        vis_order: "reference" (the code's pairing) or "aligned" (module doc).
        vis_hidden: the distillation MLP's width; None = the decoder width (the reference).
        hog_bins, hog_cell, hog_norm, hog_style: HOG options (`core.targets.hog`).
        data_mean, data_std: the input normalization the HOG target undoes.
    """

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    mask_ratio: float = 0.6
    mask_type: str = "block"
    block_cell: int = 2
    pred_ratio: float = 1.0
    theta: float = 1.0
    vis_beta: float = 2.0
    vis_order: str = "reference"
    vis_hidden: int | None = None
    hog_bins: int = 9
    hog_cell: int = 8
    hog_norm: str = "layernorm"
    hog_style: str = "skimage"
    data_mean: tuple[float, ...] = IMAGENET_MEAN
    data_std: tuple[float, ...] = IMAGENET_STD


_TINY = {"img_size": 32, "patch_size": 4, "embed_dim": 128, "depth": 6, "num_heads": 4,
         "decoder_embed_dim": 64, "decoder_depth": 2, "decoder_num_heads": 4}
PRESETS: dict[str, DMJDConfig] = {
    # ViT-B/16 + DMJD's 512×8 decoder predicting 108-d HOG.
    "dmjd_vit_base_patch16": DMJDConfig(),
    # CPU size: 32 px, patch 4 (8×8 tokens, 4×4 cells of 2×2), one 4-px HOG cell per patch (27 values).
    "dmjd_vit_tiny_patch4": DMJDConfig(**_TINY, hog_cell=4),
}


def _check(name: str, cfg: DMJDConfig) -> None:
    if cfg.mask_type not in _MASK_TYPES:
        raise ValueError(f"model {name!r}: mask_type={cfg.mask_type!r}, expected one of {_MASK_TYPES}")
    if cfg.vis_order not in _VIS_ORDERS:
        raise ValueError(f"model {name!r}: vis_order={cfg.vis_order!r}, expected one of {_VIS_ORDERS}")
    if cfg.norm_pix_loss:
        raise ValueError(f"model {name!r}: norm_pix_loss=True does not apply: DMJD predicts HOG targets")


def build_dmjd(name: str, **overrides: Any) -> MaskedAutoencoder:
    """A DMJD preset with overrides (options: `DMJDConfig`)."""
    cfg = resolve_config(PRESETS[name], overrides, what=f"model {name!r}")
    _check(name, cfg)
    masking = DisjointMasking(
        cfg.mask_ratio, cell=cfg.block_cell if cfg.mask_type == "block" else 1, pred_ratio=cfg.pred_ratio
    )
    target = HOGTargets(
        cfg.patch_size, cfg.in_chans, bins=cfg.hog_bins, cell=cfg.hog_cell, norm=cfg.hog_norm,  # type: ignore[arg-type]
        style=cfg.hog_style, layout="cells_bins_channels",  # type: ignore[arg-type]
        mean=cfg.data_mean, std=cfg.data_std,
    )
    tokenizer = ImageTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
    base = build_mae(
        cfg, tokenizer=tokenizer, decoder_pos=FixedSinCos(tokenizer.grid, cfg.decoder_embed_dim),
        head=nn.Linear(cfg.decoder_embed_dim, target.dim), masking=masking, config={}, init=init_mae_,
    )
    vis = VisibleDistillation(
        cfg.embed_dim, cfg.vis_hidden or cfg.decoder_embed_dim, target.dim, branches=(0, 1), beta=cfg.vis_beta,
        order=cfg.vis_order, name="vis", weight=cfg.theta,  # type: ignore[arg-type]
    )
    return MaskedAutoencoder(
        base.tokenizer, base.encoder, base.decoder, masking,
        branches=[BranchSpec(view=0, decoder=0), BranchSpec(view=0, decoder=0)],  # cat([x, x]), one decoder
        terms=[vis], reconstruction_weight=0.5,  # the mean over both views' masked patches
        target=target, loss="mse", lr_scale=cfg.pred_ratio / cfg.mask_ratio, config=config_dict(name, cfg),
    )


for _name, _cfg in PRESETS.items():
    register_model(
        _name, build_dmjd, modality="image",
        summary=f"DMJD: ViT {_cfg.embed_dim}d x{_cfg.depth}, two disjoint {_cfg.mask_type} masks at {_cfg.mask_ratio}, "
                f"HOG targets + visible distillation",
        small={"img_size": 4 * _cfg.patch_size, "depth": 1, "decoder_depth": 1, "mask_ratio": 0.5},
    )  # fmt: skip
