"""CAE (Context Autoencoder): a latent regressor between encoder and decoder, and latent alignment.

Facts (algorithms.md §7a; Atten4Vis/CAE `modeling_cae.py`, `modeling_cae_helper.py`,
`engine_for_pretraining.py`):

- encoder on the visible patches + cls; block-wise masking, 98 of 196 hidden (0.5);
- regressor: 4 cross-attention blocks, queries = mask token + positions of the hidden patches,
  keys / values = [visible latents, current queries] (positions on keys, not values), final LN;
- decoder: 4 self-attention blocks over the predicted latents only (+ positions), LN, head;
- alignment: MSE(predicted latents, alignment encoder on the hidden patches), weight 2; the
  alignment encoder is re-synced to the encoder every step (`param.data = encoder.data`), so it is
  the encoder itself run without gradient (`core.skeleton.distill_terms.LatentAlignment`);
- widths: regressor / decoder 768 wide, 12 heads (ViT-B), decoder blocks with layer scale 0.1.

Deviations: the decoder predicts norm_pix pixels with MSE instead of DALL-E tokenizer ids with
cross-entropy (no DALL-E tokenizer here); the regressor block is the core's `CrossBlock`
(pre-norm MLP, no layer scale; CAE applies LN to the residual stream before its MLP and scales
both branches by 0.1); qkv biases are timm's (CAE: q and v only); MAE's init and positions.

Presets: `cae_vit_base_patch16` (ViT-B/16, regressor 4, decoder 4 at 768), `cae_vit_tiny_patch4`
(the `_TINY` encoder, regressor 2 and decoder 2 at 128 wide: the encoder's width, so no projection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from anymae.core.build import config_dict, encoder_config, resolve_config
from anymae.core.encoder import TransformerEncoder
from anymae.core.decoders.latent_regressor import LatentRegressorDecoder
from anymae.core.losses import TokenNorm
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import FixedSinCos
from anymae.core.registry import register_model
from anymae.core.skeleton.modes import DropMode
from anymae.core.skeleton.distill_terms import LatentAlignment
from anymae.core.transformer import init_mae_
from anymae.modalities.image import ImageMAEConfig, ImageTokenizer
from anymae.recipes.targets._distill import recipe_config, split_options


@dataclass
class CAEConfig:
    """CAE's own options (the decoder_* image options size the regressor and decoder).

    Attributes:
        regressor_depth: cross-attention blocks of the latent regressor.
        align_weight: weight of the latent alignment (2 in the reference).
        layer_scale: layer-scale init of the encoder and decoder blocks (0.1; None = off).
    """

    regressor_depth: int = 4
    align_weight: float = 2.0
    layer_scale: float | None = 0.1


_CAE_IMAGE = {"masking": "block", "mask_ratio": 0.5, "norm_pix_loss": True, "decoder_embed_dim": 768,
              "decoder_depth": 4, "decoder_num_heads": 12}
CAE_PRESETS: dict[str, tuple[ImageMAEConfig, CAEConfig]] = {
    "cae_vit_base_patch16": (ImageMAEConfig(**_CAE_IMAGE, drop_path=0.1), CAEConfig()),
    "cae_vit_tiny_patch4": (
        ImageMAEConfig(img_size=32, patch_size=4, embed_dim=128, depth=6, num_heads=4, **{
            **_CAE_IMAGE, "decoder_embed_dim": 128, "decoder_depth": 2, "decoder_num_heads": 4}),
        CAEConfig(regressor_depth=2),
    ),
}


def build_cae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """A CAE preset with overrides (image options or `CAEConfig` fields)."""
    image_preset, preset = CAE_PRESETS[name]
    cae, image = split_options(name, preset, overrides)
    cfg = resolve_config(image_preset, image, what=f"model {name!r}")
    if cfg.mode != "drop":
        raise ValueError(f"model {name!r}: CAE encodes the visible patches only: mode must be 'drop', got {cfg.mode!r}")
    tokenizer = ImageTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
    encoder = TransformerEncoder(encoder_config(cfg, layer_scale=cae.layer_scale))
    head = nn.Linear(cfg.decoder_embed_dim, cfg.patch_size**2 * cfg.in_chans)
    decoder = LatentRegressorDecoder(
        cfg.embed_dim, cfg.decoder_embed_dim, regressor_depth=cae.regressor_depth, decoder_depth=cfg.decoder_depth,
        num_heads=cfg.decoder_num_heads, pos_embed=FixedSinCos(tokenizer.grid, cfg.decoder_embed_dim), head=head,
        mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, layer_scale=cae.layer_scale,
    )
    encoder.blocks.apply(init_mae_)
    encoder.norm.apply(init_mae_)
    decoder.apply(init_mae_)
    return MaskedAutoencoder(
        tokenizer, encoder, decoder, make_masking(cfg.masking, cfg.mask_ratio, **dict(cfg.masking_params)),
        mode=DropMode(), terms=[LatentAlignment(weight=cae.align_weight)],
        target_norm=TokenNorm() if cfg.norm_pix_loss else None, loss=cfg.loss,
        config=recipe_config(name, config_dict(name, cfg), cae),
    )


for _name, (_img, _cae) in CAE_PRESETS.items():
    register_model(
        _name, build_cae, modality="image",
        summary=f"CAE: ViT {_img.embed_dim}d x{_img.depth}, regressor {_cae.regressor_depth} + decoder "
                f"{_img.decoder_depth} at {_img.decoder_embed_dim}, patch {_img.patch_size}",
        small={"img_size": 2 * _img.patch_size, "depth": 1, "decoder_depth": 1, "regressor_depth": 1,
               "mask_ratio": 0.5},
    )
