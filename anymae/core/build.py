"""The config fields every transformer MAE shares, and how they become core parts.

A modality's preset config subclasses `MAEConfig`, adds its own fields (image size, patch size,
...), and its builder calls `build_mae` with its tokenizer, head and position modules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Callable, TypeVar

from torch import nn

from anymae.core.decoders.mae import DecoderConfig, MAEDecoder
from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.losses import TokenNorm
from anymae.core.masking import MaskingStrategy
from anymae.core.model import MaskedAutoencoder


@dataclass
class MAEConfig:
    """Encoder / decoder sizes and the pretraining objective (MAE ViT-B/16 defaults)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path: float = 0.0
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False  # the MAE code's default; the paper's recipe turns it on


C = TypeVar("C", bound=MAEConfig)


def resolve_config(preset: C, overrides: dict[str, Any], *, what: str) -> C:
    """Apply keyword overrides to a preset, refusing unknown names with the valid list."""
    valid = [f.name for f in fields(preset)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise TypeError(f"{what}: unknown option(s) {unknown}; valid options: {', '.join(valid)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(preset, **values)


def config_dict(name: str, cfg: MAEConfig) -> dict[str, Any]:
    """Plain values (lists for tuples) with the preset name, for checkpoints and run dirs."""
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    return {"name": name, **plain}


def encoder_config(cfg: MAEConfig, **extra: Any) -> EncoderConfig:
    return EncoderConfig(
        dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
        qkv_bias=cfg.qkv_bias, drop_path=cfg.drop_path, **extra,
    )


def decoder_config(cfg: MAEConfig, **extra: Any) -> DecoderConfig:
    return DecoderConfig(
        dim=cfg.decoder_embed_dim, depth=cfg.decoder_depth, num_heads=cfg.decoder_num_heads,
        mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, **extra,
    )


def build_mae(
    cfg: MAEConfig,
    *,
    tokenizer: nn.Module,
    decoder_pos: nn.Module,
    head: nn.Module,
    masking: MaskingStrategy,
    config: dict[str, Any],
    target_norm: TokenNorm | None = None,
    encoder_extra: dict[str, Any] | None = None,
    decoder_extra: dict[str, Any] | None = None,
    decoder_masking: MaskingStrategy | None = None,
    loss: str = "mse",
    loss_params: dict[str, Any] | None = None,
    init: Callable[[nn.Module], None] | None = None,
) -> MaskedAutoencoder:
    """Compose a MaskedAutoencoder; `init` (e.g. `init_mae_`) is applied to encoder and decoder."""
    encoder = TransformerEncoder(encoder_config(cfg, **(encoder_extra or {})))
    decoder = MAEDecoder(decoder_config(cfg, **(decoder_extra or {})), cfg.embed_dim, decoder_pos, head)
    if init is not None:
        encoder.blocks.apply(init)
        encoder.norm.apply(init)
        decoder.apply(init)
    return MaskedAutoencoder(
        tokenizer, encoder, decoder, masking, target_norm=target_norm, loss=loss, loss_params=loss_params,
        decoder_masking=decoder_masking, config=config,
    )
