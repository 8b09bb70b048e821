"""MaskFeat (Wei et al. 2022) for images: predict the HOG of masked patches.

Facts from facebookresearch/SlowFast (`models/masked.py` MaskMViT with `MASK.PRED_HOG`,
`models/operators.py` HOGLayerC, `configs/masked_ssl/in1k_VIT_B_MaskFeat_PT.yaml`):

- a ViT-B/16 with a cls token sees every patch; masked patches' embeddings are replaced by a
  learned mask token (`x·(1 - w) + mask_token·w`, trunc-normal 0.02);
- BEiT-style block masking (`AUG.MASK_RATIO` 0.4: 78 of 196 patches);
- target: HOGLayerC (9 bins, 8×8 cells, no gaussian window) of the **model's input** (the
  normalized image), L2-normalized per cell and channel, laid out per patch as
  (channel, bin, cell-row, cell-col): 3·9·2·2 = 108 values; a linear head on the last block's
  normed output predicts them (`MSSeparateHead`: LayerNorm eps 1e-6 + Linear, trunc-normal 0.02);
  MSE on masked patches (`multi_mse`);
- AdamW, base lr 2e-4 per 256, wd 0.05, 300 epochs, warmup 30, cosine to 1e-6, grad clip 0.02.

The CPU preset (`maskfeat_vit_tiny_patch4`) uses 4×4 cells, one per 4-px patch (27 values).
`core.targets.hog.HOGTargets` is the target provider (DMJD's variant: `style="skimage"`,
`norm="layernorm"`, un-normalized input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anymae.core.build import config_dict, resolve_config
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import register_model
from anymae.core.targets.hog import HOGTargets
from anymae.recipes.targets._beit import TINY, BeitImageConfig, build_beit_like, small


@dataclass
class MaskFeatConfig(BeitImageConfig):
    """MaskFeat's options on top of the shared BEiT-style image model."""

    mask_ratio: float = 0.4
    rescale_init: bool = False  # SlowFast's MASK.SCALE_INIT_BY_DEPTH default
    hog_bins: int = 9
    hog_cell: int = 8
    hog_norm: str = "l2"  # "l2" (MaskFeat), "layernorm" (DMJD), "none"
    hog_style: str = "maskfeat"  # "maskfeat" (HOGLayerC) or "skimage" (DMJD's hog_tensor)
    hog_gaussian_window: int = 0
    hog_layout: str = "channels_bins_cells"  # MaskFeat's per-patch order
    hog_unnormalize: bool = False  # MaskFeat: HOG of the normalized input; True: of x·std + mean


PRESETS: dict[str, MaskFeatConfig] = {
    "maskfeat_vit_base_patch16": MaskFeatConfig(),
    "maskfeat_vit_tiny_patch4": MaskFeatConfig(**TINY, hog_cell=4),
}


def build_maskfeat(name: str, **overrides: Any) -> MaskedAutoencoder:
    """A MaskFeat preset with overrides (options: `MaskFeatConfig`)."""
    cfg = resolve_config(PRESETS[name], overrides, what=f"model {name!r}")
    target = HOGTargets(
        cfg.patch_size, cfg.in_chans, bins=cfg.hog_bins, cell=cfg.hog_cell, norm=cfg.hog_norm,  # type: ignore[arg-type]
        style=cfg.hog_style, gaussian_window=cfg.hog_gaussian_window, layout=cfg.hog_layout,  # type: ignore[arg-type]
        mean=cfg.data_mean if cfg.hog_unnormalize else None, std=cfg.data_std if cfg.hog_unnormalize else None,
    )
    return build_beit_like(cfg, head_dim=target.dim, target=target, loss="mse", config=config_dict(name, cfg))


for _name, _cfg in PRESETS.items():
    register_model(
        _name, build_maskfeat, modality="image",
        summary=f"MaskFeat: ViT {_cfg.embed_dim}d x{_cfg.depth}, HOG of masked patches, block mask {_cfg.mask_ratio}",
        small=small(_cfg.patch_size),
    )  # fmt: skip
