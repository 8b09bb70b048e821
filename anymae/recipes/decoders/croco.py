"""CroCo v1 (naver/croco): cross-view completion on pairs of images of one scene.

View 1 is masked at 0.9 (`RandomMask`: `int(0.9·N)` hidden, 176 of 196, 20 visible); view 2 is
encoded whole by the same (Siamese) encoder; the decoder (`core.decoders.cross_view`) puts mask
tokens at view 1's hidden patches and runs blocks of self-attention over view 1, cross-attention
to view 2's projected encoding (one LayerNorm for its keys and values per block, `norm_y`) and an
MLP; a linear head predicts view 1's patches, MSE with norm_pix on the hidden ones
(`pretrain.py --norm_pix_loss 1`). No cls token anywhere; fixed 2-D sin-cos positions (`cosine`),
the same decoder table for both views.

With the views API (`core.skeleton.views`): branch 0 reads view 0 and decodes with
`memory=` branch 1's encoding; branch 1 reads view 1, `whole=True`, no decoder. A plain image
batch is used for both views (with a warning); pretraining reads pairs (`data.source:
image_pairs`, `datasets.pairs`: each view its own random crop and colour jitter, as CroCo).

Presets: `croco_vit_base_patch16` (ViT-B/16 encoder, 512-wide 8-block 16-head decoder, 224 px:
120.08M parameters, encoder 85.65M, decoder 34.43M) and `croco_vit_tiny_patch4` (32 px, patch 4,
the tiny MAE sizes). CroCo v2's RoPE and larger sizes are not included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from anymae.core.build import MAEConfig, config_dict, decoder_config, encoder_config, resolve_config
from anymae.core.decoders.cross_view import CrossViewDecoder
from anymae.core.encoder import TransformerEncoder
from anymae.core.losses import TokenNorm
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import FixedSinCos
from anymae.core.registry import register_model
from anymae.core.skeleton import BranchSpec
from anymae.core.transformer import init_mae_
from anymae.modalities.image import ImageTokenizer

# view 0: masked, decoded reading branch 1's encoding; view 1: encoded whole, never decoded
CROCO_BRANCHES = (
    BranchSpec(view=0, decoder=0, memory=1),
    BranchSpec(view=1, decoder=None, reconstruct=False, whole=True),
)


@dataclass
class CroCoConfig(MAEConfig):
    """CroCo's options: MAEConfig sizes plus the input geometry and the memory norm."""

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    mask_ratio: float = 0.9
    norm_pix_loss: bool = True  # pretrain.py --norm_pix_loss default 1
    norm_memory: bool = True  # norm_im2_in_dec: a LayerNorm on view 2's tokens in every decoder block


def build_croco(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a CroCo preset with overrides (any `CroCoConfig` field)."""
    cfg = resolve_config(CROCO_PRESETS[name], overrides, what=f"model {name!r}")
    tokenizer = ImageTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
    encoder = TransformerEncoder(encoder_config(cfg, cls_token=False))  # CroCo has no cls token
    decoder = CrossViewDecoder(
        decoder_config(cfg), cfg.embed_dim, FixedSinCos(tokenizer.grid, cfg.decoder_embed_dim),
        nn.Linear(cfg.decoder_embed_dim, cfg.patch_size**2 * cfg.in_chans), norm_memory=cfg.norm_memory,
    )
    encoder.blocks.apply(init_mae_)  # CroCo's _init_weights: Linear xavier-uniform, zero bias; LayerNorm (1, 0)
    encoder.norm.apply(init_mae_)
    decoder.apply(init_mae_)
    return MaskedAutoencoder(
        tokenizer, encoder, decoder, make_masking("random_hide", cfg.mask_ratio),  # int(r·N) hidden (RandomMask)
        branches=CROCO_BRANCHES, target_norm=TokenNorm() if cfg.norm_pix_loss else None,
        config=config_dict(name, cfg),
    )


CROCO_PRESETS: dict[str, CroCoConfig] = {
    "croco_vit_base_patch16": CroCoConfig(embed_dim=768, depth=12, num_heads=12),
    "croco_vit_tiny_patch4": CroCoConfig(img_size=32, patch_size=4, embed_dim=128, depth=6, num_heads=4,
                                         decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4),
}

for _name, _cfg in CROCO_PRESETS.items():
    register_model(
        _name,
        build_croco,
        modality="image",
        summary=f"CroCo: ViT {_cfg.embed_dim}d x{_cfg.depth} Siamese encoder, cross-view decoder "
        f"{_cfg.decoder_embed_dim}d x{_cfg.decoder_depth}, patch {_cfg.patch_size}",
        small={"img_size": 2 * _cfg.patch_size, "depth": 1, "decoder_depth": 1},
    )
