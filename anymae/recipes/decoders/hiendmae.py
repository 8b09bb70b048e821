"""Hi-End-MAE (FengheTan9/Hi-End-MAE, MedIA'25): MAE on CT volumes whose decoder reads encoder layers.

Facts from the reference code (`hi_end_mae.py`, `networks/vit.py`, `main.py`; crossmodal_and_zoo.md B8):

- input: 1-channel 96³ CT crops, intensities windowed to [-175, 250] HU and scaled to [0, 1]
  (`datasets/volume`), cubic patches 16³ (216 tokens) or 12³ (512 tokens); the volume modality's
  tokenizer (`modalities/volume.py`): patch values (p_h, p_w, p_d, c), fixed 3-D sin-cos positions
  in the encoder and decoder, cls token without position;
- masking: random at 0.75 (argsort of uniform noise, `int(L · 0.25)` visible);
- encoder: a ViT with a cls token over the visible tokens; every block's output is kept;
- decoder (`core.decoders.layers.LayerDecoder`): the final normed encoder output -> Linear ->
  [cls, visible, mask tokens] + decoder positions -> 2 self-attention blocks -> 3 blocks of
  self-attention + cross-attention to encoder blocks 10, 7, 4 (0-based `cross_layers` 9, 6, 3, deep
  -> shallow), each read through its own Linear(encoder -> decoder width) without norm or position
  -> LayerNorm -> Linear to p³ values;
- loss: MSE on the hidden patches against each patch's LayerNorm without affine (biased variance,
  eps 1e-6): `TokenNorm(unbiased=False)`.

Presets: `hiendmae_vit_large_patch12` (the released ViT-p12/1536: 366.92M parameters),
`hiendmae_vit_large_patch16`, `hiendmae_vit_base_patch16` (768 wide, decoder 384), and the CPU-sized
`hiendmae_vit_tiny_patch4` (16³ volumes, patch 4 -> 64 tokens, 8 blocks read at 6, 4, 2 — the
reference's rule k · depth / 4 for k = 3, 2, 1). The reference is 3-D only; so are these presets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anymae.core.build import config_dict, decoder_config, encoder_config, resolve_config
from anymae.core.encoder import TransformerEncoder
from anymae.core.decoders.layers import LayerDecoder
from anymae.core.losses import TokenNorm
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import register_model
from anymae.core.transformer import init_mae_
from anymae.modalities.volume import VolumeMAEConfig, triple, volume_parts


@dataclass
class HiEndMAEConfig(VolumeMAEConfig):
    """Hi-End-MAE's options on top of a volume MAE (`decoder_depth` = self-attention blocks before the cross blocks).

    `cross_layers`: the encoder block (0-based) each cross block reads, in block order.
    `context_norm`: a LayerNorm on each projected encoder layer inside its cross block (the
    reference has none). `norm_pix_loss`: the per-patch LayerNorm target (the reference always
    uses it); False gives raw voxel targets.
    """

    cross_layers: tuple[int, ...] = (9, 6, 3)
    context_norm: bool = False
    norm_pix_loss: bool = True


def build_hiendmae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered Hi-End-MAE preset with overrides (e.g. img_size=32, cross_layers=[2, 1])."""
    cfg = resolve_config(HIENDMAE_PRESETS[name], overrides, what=f"model {name!r}")
    bad = [k for k in cfg.cross_layers if not 0 <= int(k) < cfg.depth]
    if bad or not cfg.cross_layers:
        raise ValueError(
            f"model {name!r}: cross_layers={list(cfg.cross_layers)} must be one or more encoder block indices in "
            f"[0, {cfg.depth - 1}] (depth={cfg.depth}); out of range: {bad}"
        )
    tokenizer, decoder_pos, head = volume_parts(cfg)
    encoder = TransformerEncoder(encoder_config(cfg))
    decoder = LayerDecoder(
        decoder_config(cfg), cfg.embed_dim, decoder_pos, head, cross_layers=cfg.cross_layers,
        context_norm=cfg.context_norm,
    )
    encoder.blocks.apply(init_mae_)
    encoder.norm.apply(init_mae_)
    decoder.apply(init_mae_)  # xavier Linear (incl. each layer's projection), LayerNorm (1, 0); mask token N(0, .02)
    return MaskedAutoencoder(
        tokenizer, encoder, decoder, make_masking(cfg.masking, cfg.mask_ratio, **dict(cfg.masking_params)),
        target_norm=TokenNorm(unbiased=False) if cfg.norm_pix_loss else None,
        config=config_dict(name, cfg),
    )


_LARGE: dict[str, Any] = {"embed_dim": 1536, "depth": 12, "num_heads": 16, "decoder_embed_dim": 528,
                          "decoder_num_heads": 16}

HIENDMAE_PRESETS: dict[str, HiEndMAEConfig] = {
    # networks/vit.py vit_base_patch16_96 + decoder_base_patch16_96: 768 / 12 / 12, decoder 384, 12 heads.
    "hiendmae_vit_base_patch16": HiEndMAEConfig(),
    # vit_large_patch12_96 + decoder_large_patch12_96 (the released checkpoint): 1536 / 12 / 16, decoder 528.
    "hiendmae_vit_large_patch12": HiEndMAEConfig(patch_size=12, **_LARGE),
    "hiendmae_vit_large_patch16": HiEndMAEConfig(**_LARGE),
    # CPU-sized: 16³ volumes, patch 4 (64 tokens), 96 wide (divisible by 6 and 4 heads), decoder 48.
    "hiendmae_vit_tiny_patch4": HiEndMAEConfig(
        img_size=16, patch_size=4, embed_dim=96, depth=8, num_heads=4, decoder_embed_dim=48, decoder_num_heads=4,
        cross_layers=(6, 4, 2),
    ),
}

for _name, _cfg in HIENDMAE_PRESETS.items():
    register_model(
        _name,
        build_hiendmae,
        modality="volume",
        summary=(
            f"ViT {_cfg.embed_dim}d x{_cfg.depth}, patch {_cfg.patch_size}³, {triple(_cfg.img_size)[0]}³ voxels, "
            f"decoder reads encoder blocks {list(_cfg.cross_layers)}"
        ),
        small={"img_size": 2 * _cfg.patch_size, "depth": 1, "cross_layers": [0], "decoder_depth": 1, "mask_ratio": 0.5},
    )
