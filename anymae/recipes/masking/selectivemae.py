"""SelectiveMAE (Fengxiang23/SelectiveMAE, ICCV'25): sample few visible tokens, reconstruct a subset.

Composition on the image MAE (crossmodal_and_zoo.md B6, checked against the reference code):

- masking `SelectiveMasking` (`core.masking.selective`): `int(len_keep / 2)` tokens drawn from
  softmax(HOG score), grown by token expansion (cosine similarity in patch-embedding space, two
  rounds, the epoch stage schedule) to the visible set; the loss set is `int(N·kept_mask_ratio)`
  tokens drawn from the same softmax over the tokens left unselected (r = 0.85, N = 196: 29
  visible, 49 reconstructed, 118 ignored);
- decoder `QueryDecoder` (`core.decoders.queries`): 8 cross-attention-only blocks, 512 wide, 16 heads;
  mask token + sin-cos decoder position at the 49 queried tokens read the encoder output;
- norm_pix MSE on the loss set; lr × kept_mask_ratio / mask_ratio (`MaskedAutoencoder.lr_scale`,
  read by the engine; 0.25 / 0.85 ≈ 0.294, the reference's default lr rule).

The expansion stages are epochs in the reference: `steps_per_epoch` (optimizer steps per epoch of your
data) turns them into steps. InfoBatch data pruning (prune 0.5, δ 0.875, a per-sample loss
rescaling in the data loader) is not part of this recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from anymae.core.build import MAEConfig, config_dict, encoder_config, resolve_config
from anymae.core.encoder import TransformerEncoder
from anymae.core.losses import TokenNorm
from anymae.core.masking.selective import SelectiveMasking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import FixedSinCos
from anymae.core.decoders.queries import QueryDecoder, QueryDecoderConfig
from anymae.core.registry import register_model
from anymae.core.transformer import init_mae_
from anymae.modalities.image import ImageTokenizer


@dataclass
class SelectiveMAEConfig(MAEConfig):
    """SelectiveMAE ViT-B/16 (train.sh): mask 0.85, 25 % reconstructed, 8-block cross-attention decoder.

    Fields beyond `MAEConfig` (image geometry as the image presets):
        kept_mask_ratio: the loss set's share of the tokens.
        keep_rate, init_rate: expansion from `int(N·init_rate)` to `int(N·keep_rate)` tokens; None =
            the training script's 1 - r and (1 - r) / 2 (the class defaults were 0.25, 0.15).
        expansion_substeps: expansion rounds.
        expansion_epochs, smooth_epochs: the stage schedule in epochs (the training script's
            [0, 300 - S, 300, 600 - S, 600], S = 20; the class default [0, 200, 220, 1180, 1200]).
        steps_per_epoch: optimizer steps per epoch (1953 ≈ OpticalRS-4M's 4M images at batch 2048).
        score_source: "hog" (the reference) or "hog_mean" (no per-patch standardization), or any
            `SCORE_SOURCES` name.
        similarity_positions: compare patch embedding + position (the reference) or the embedding.
        lr_scale: the recipe's lr factor; None = kept_mask_ratio / mask_ratio.
    """

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    mask_ratio: float = 0.85
    norm_pix_loss: bool = True
    kept_mask_ratio: float = 0.25
    keep_rate: float | None = None
    init_rate: float | None = None
    expansion_substeps: int = 2
    expansion_epochs: tuple[int, ...] = (0, 280, 300, 580, 600)
    smooth_epochs: int = 20
    steps_per_epoch: int = 1953
    score_source: str = "hog"
    similarity_positions: bool = True
    lr_scale: float | None = None


def build_selectivemae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered SelectiveMAE preset with overrides (e.g. `steps_per_epoch=100`)."""
    cfg = resolve_config(SELECTIVEMAE_PRESETS[name], overrides, what=f"model {name!r}")
    if cfg.lr_scale is None:
        cfg.lr_scale = cfg.kept_mask_ratio / cfg.mask_ratio  # the reference's default lr rule
    tokenizer = ImageTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
    encoder = TransformerEncoder(encoder_config(cfg))
    decoder = QueryDecoder(
        QueryDecoderConfig(cfg.decoder_embed_dim, cfg.decoder_depth, cfg.decoder_num_heads, cfg.mlp_ratio,
                           cfg.qkv_bias),
        cfg.embed_dim, FixedSinCos(tokenizer.grid, cfg.decoder_embed_dim),
        nn.Linear(cfg.decoder_embed_dim, cfg.patch_size**2 * cfg.in_chans),
    )
    for part in (encoder.blocks, encoder.norm, decoder):
        part.apply(init_mae_)
    masking = SelectiveMasking(
        cfg.mask_ratio, kept_mask_ratio=cfg.kept_mask_ratio, keep_rate=cfg.keep_rate, init_rate=cfg.init_rate,
        substeps=cfg.expansion_substeps, epochs=cfg.expansion_epochs, smooth_epochs=cfg.smooth_epochs,
        steps_per_epoch=cfg.steps_per_epoch, source=cfg.score_source, positions=cfg.similarity_positions,
    )
    masking.counts(tokenizer.grid[0] * tokenizer.grid[1])  # refuse counts that do not fit now, not at step 1
    return MaskedAutoencoder(
        tokenizer, encoder, decoder, masking, target_norm=TokenNorm() if cfg.norm_pix_loss else None, loss="mse",
        config=config_dict(name, cfg), lr_scale=cfg.lr_scale,
    )


_TINY = {"img_size": 32, "patch_size": 4, "embed_dim": 128, "depth": 6, "num_heads": 4,
         "decoder_embed_dim": 64, "decoder_depth": 2, "decoder_num_heads": 4}
SELECTIVEMAE_PRESETS: dict[str, SelectiveMAEConfig] = {
    "selectivemae_vit_base_patch16": SelectiveMAEConfig(decoder_depth=8),
    # CPU size: 64 tokens at 0.85 -> 4 sampled + 5 expanded visible, 16 reconstructed; 1 epoch = 1 step
    # unless the config says otherwise (the stages then pass in a few hundred steps).
    "selectivemae_vit_tiny_patch4": SelectiveMAEConfig(**_TINY, steps_per_epoch=1),
}

for _name, _cfg in SELECTIVEMAE_PRESETS.items():
    register_model(
        _name, build_selectivemae, modality="image",
        summary=f"SelectiveMAE ViT {_cfg.embed_dim}d x{_cfg.depth}, patch {_cfg.patch_size}, cross-attention decoder",
        small={"img_size": 4 * _cfg.patch_size, "depth": 1, "decoder_depth": 1},
    )
