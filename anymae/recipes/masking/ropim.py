"""ROPIM (csiro-robotics/ROPIM): random orthogonal projection image modelling — soft masking.

Composition on the image ViT (crossmodal_and_zoo.md B7, checked against `models/ropim.py`,
`data/data_ropim.py`, `main_ropim.py` and `configs/vit_base/ropim_pretrain__vit_base.yaml`):

- mode `SoftMode(ratio=0.14)` (`core.skeleton.modes`): per sample a count sketch of the N patch
  tokens into ceil(0.14·N) buckets (28 at N = 196, 7 tokens each), `P = 0.14·S·Sᵀ`; the patch
  embeddings become `P·x` before positions, every token is encoded (SimMIM-style, no mask token);
- a per-token linear head to the patch's p²·C pixels (ROPIM's 1×1 conv + PixelShuffle);
- loss: the L1 mean of `(I - P)·(target - pred)` over tokens and pixels (raw normalized pixels);
- the lr rule bs/512 (`MaskedAutoencoder.lr_scale = 0.5` on the engine's bs/256 rule), layer
  scale 0.1, drop path 0.1.

Deviations: ROPIM's ViT has no absolute positions and a shared relative position bias; here the
tokenizer's fixed 2-D sin-cos positions are added (the core encoder has no relative bias). Linear
layers start trunc-normal (std 0.02) as timm/BEiT, without BEiT's per-depth rescale of the output
projections. Nothing is hidden: the one branch sees its whole view (`BranchSpec(whole=True)`), so
`MAEOutput.mask` is all zeros and the masking strategy the skeleton requires is never drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anymae.core.build import config_dict, resolve_config
from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.losses import TokenNorm
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import register_model
from anymae.core.skeleton import LinearHead
from anymae.core.skeleton.modes import SoftMode
from anymae.core.skeleton.steps import BranchSpec
from anymae.core.transformer import init_trunc_normal_
from anymae.modalities.image import ImageTokenizer


@dataclass
class ROPIMConfig:
    """ROPIM ViT-B/16 (`configs/vit_base/ropim_pretrain__vit_base.yaml` + `config.py` defaults).

    Fields: the ViT's sizes (`layer_scale` = ROPIM's INIT_VALUES), the image geometry,
    `sketch_ratio` ρ, `norm_pix_loss` (ROPIM: raw pixels) and `lr_scale` (bs/512 = 0.5 × bs/256).
    """

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path: float = 0.1
    layer_scale: float | None = 0.1
    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    sketch_ratio: float = 0.14
    norm_pix_loss: bool = False
    lr_scale: float = 0.5


def build_ropim(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered ROPIM preset with overrides (e.g. `sketch_ratio=0.125`)."""
    cfg = resolve_config(ROPIM_PRESETS[name], overrides, what=f"model {name!r}")  # type: ignore[type-var]
    tokenizer = ImageTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
    encoder = TransformerEncoder(EncoderConfig(
        dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
        drop_path=cfg.drop_path, layer_scale=cfg.layer_scale,
    ))
    encoder.blocks.apply(init_trunc_normal_)
    encoder.norm.apply(init_trunc_normal_)
    head = LinearHead(cfg.embed_dim, cfg.patch_size**2 * cfg.in_chans)  # torch's default init, as ROPIM's 1×1 conv
    return MaskedAutoencoder(
        tokenizer, encoder, head, make_masking("random", 0.5),  # never drawn: the branch sees every token
        mode=SoftMode(ratio=cfg.sketch_ratio), branches=[BranchSpec(whole=True)],
        target_norm=TokenNorm() if cfg.norm_pix_loss else None, loss="l1",
        config=config_dict(name, cfg), lr_scale=cfg.lr_scale,  # type: ignore[arg-type]
    )


_TINY = {"img_size": 32, "patch_size": 4, "embed_dim": 128, "depth": 6, "num_heads": 4}
ROPIM_PRESETS: dict[str, ROPIMConfig] = {
    "ropim_vit_base_patch16": ROPIMConfig(),
    # CPU size: 64 tokens, ceil(64 · 0.14) = 9 buckets of 7 (one of 8).
    "ropim_vit_tiny_patch4": ROPIMConfig(**_TINY),
}

for _name, _cfg in ROPIM_PRESETS.items():
    register_model(
        _name, build_ropim, modality="image",
        summary=f"ROPIM ViT {_cfg.embed_dim}d x{_cfg.depth}, patch {_cfg.patch_size}, count-sketch soft masking",
        small={"img_size": 2 * _cfg.patch_size, "depth": 1},
    )
