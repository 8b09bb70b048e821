"""The BEiT-style image model that MaskFeat, CCViT and BEiT v2 share (not a recipe itself).

A ViT with a cls token sees every patch, hidden patches replaced by a learned [MASK] vector
(trunc-normal, std 0.02: `ReplaceMode(remask=False, project=False)`), BEiT's block masking, and a
per-token linear head on the final-normed encoder output predicting the recipe's target (HOG,
k-means ids, VQ ids). Initialization as BEiT / BEiT v2: every Linear trunc-normal(0.02) with zero
bias, LayerNorm (1, 0), then (`rescale_init`) `fix_init_weight`: block i's `attn.proj` and `mlp.fc2`
weights divided by sqrt(2·i) (i from 1; the cls-pretraining blocks continue the count after
`early_layers`). The final norm (eps 1e-6) + Linear head is MaskFeat's `MSSeparateHead` too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from torch import nn

from anymae.core.build import MAEConfig, encoder_config
from anymae.core.encoder import TransformerEncoder
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.skeleton import LinearHead, ReplaceMode
from anymae.core.skeleton.terms import LossTerm
from anymae.core.targets import TargetProvider
from anymae.core.transformer import init_trunc_normal_
from anymae.modalities.image import IMAGENET_MEAN, IMAGENET_STD, ImageTokenizer

# BEiT's mask token in the encoder: trunc-normal(0.02), no projection, no re-masking (linear head)
BEIT_MODE: dict[str, Any] = {"remask": False, "project": False, "mask_token_std": 0.02}

# CPU sizes: the tiny MAE encoder of modalities/image.py (_TINY), 32×32 inputs, patch 4 (8×8 grid)
TINY: dict[str, Any] = {"img_size": 32, "patch_size": 4, "embed_dim": 128, "depth": 6, "num_heads": 4}


@dataclass
class BeitImageConfig(MAEConfig):
    """The shared fields (MAEConfig's decoder fields do not apply: the head is linear)."""

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    mask_ratio: float = 0.4
    min_block: int = 16  # BEiT's min_num_patches
    layer_scale: float | None = None  # BEiT v2 / CCViT: 0.1
    rescale_init: bool = True  # BEiT's fix_init_weight (MaskFeat: MASK.SCALE_INIT_BY_DEPTH False)
    data_mean: tuple[float, ...] = IMAGENET_MEAN  # the data's normalization (un-normalizing targets)
    data_std: tuple[float, ...] = IMAGENET_STD


def rescale_blocks_(blocks: Sequence[nn.Module], first_id: int = 1) -> None:
    """BEiT's `fix_init_weight`: block k (id first_id + k) attn.proj / mlp.fc2 weights / sqrt(2·id)."""
    for k, block in enumerate(blocks):
        div = math.sqrt(2.0 * (first_id + k))
        block.attn.proj.weight.data.div_(div)
        block.mlp.fc2.weight.data.div_(div)


def build_encoder(cfg: BeitImageConfig) -> tuple[ImageTokenizer, TransformerEncoder]:
    """The student's tokenizer and encoder (BEiT init)."""
    tokenizer = ImageTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
    encoder = TransformerEncoder(encoder_config(cfg, layer_scale=cfg.layer_scale))
    encoder.blocks.apply(init_trunc_normal_)
    encoder.norm.apply(init_trunc_normal_)
    if cfg.rescale_init:
        rescale_blocks_(encoder.blocks)
    return tokenizer, encoder


def build_beit_like(
    cfg: BeitImageConfig,
    *,
    head_dim: int,
    target: TargetProvider,
    loss: str,
    config: dict[str, Any],
    terms: Sequence[LossTerm] = (),
    encoder: tuple[ImageTokenizer, TransformerEncoder] | None = None,
    mode: ReplaceMode | None = None,
) -> MaskedAutoencoder:
    """The composed model: replace mode (`mode`: a ReplaceMode variant; default BEiT's), block masking
    at `mask_ratio`, a linear head of `head_dim`."""
    tokenizer, enc = encoder or build_encoder(cfg)
    head = LinearHead(cfg.embed_dim, head_dim)
    head.apply(init_trunc_normal_)
    masking = make_masking("block", cfg.mask_ratio, min_block=cfg.min_block)
    return MaskedAutoencoder(
        tokenizer, enc, head, masking, mode=mode or ReplaceMode(**BEIT_MODE),
        terms=terms, loss=loss, target=target, config=config,
    )


def small(patch_size: int, **extra: Any) -> dict[str, Any]:
    """Smoke-test overrides: one block, a 4×4 patch grid, blocks of at least 4 patches."""
    return {"img_size": 4 * patch_size, "depth": 1, "mask_ratio": 0.5, "min_block": 4, **extra}
