"""MultiMAE (EPFL-VILAB/MultiMAE): any set of aligned image-like modalities, one token budget.

Composition (crossmodal_and_zoo.md A1, checked against `multimae/output_adapters.py`):

- batch: `{"rgb": B×3×H×W, "depth": B×1×H×W, ...}` aligned images (any non-empty subset);
  more image-like modalities through `modalities` (name -> channel count);
- tokenizers ("input adapters"): the image modality's patch embedding per modality (Conv2d
  c -> 768, patch 16) with its own fixed 2-D sin-cos; no modality embedding;
- masking `DirichletBudget`: 98 visible tokens per sample shared by the modalities, shares from
  Dirichlet(α = 1), counts rounded, exact total by `argsort(mask + U)`; `sample_subsets` draws a
  uniform non-empty subset of modalities first (off, as the reference);
- encoder: one ViT-B (12 blocks, qkv bias) with 1 learned global token (the cls slot: attention
  does not depend on its place) and no final LayerNorm;
- decoders `OutputAdapters`: per modality 256 wide, one cross-attention from the modality's own
  tokens (visible + mask tokens, positions + source-modality embeddings) to every visible token
  and the global token, then 2 self-attention blocks (8 heads), linear to the patch values;
- losses per modality, on hidden tokens, averaged per sample then over the batch: RGB MSE on the
  normalized image (no norm_pix), depth L1 (the data standardizes depth per image), any other
  modality `losses[name]` (default MSE). Options: `norm_pix` per modality.

Not included: the semantic-segmentation modality (a label-map input adapter and cross-entropy),
the extra `norm_rgb` output adapter, uncertainty task weighting, fp32 output adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from anymae.core.build import MAEConfig, config_dict, encoder_config, resolve_config
from anymae.core.encoder import TransformerEncoder
from anymae.core.losses import TokenNorm
from anymae.core.model import MaskedAutoencoder
from anymae.core.multimodal import (
    DirichletBudget, ModalityLoss, MultiTokenizer, OutputAdapter, OutputAdapters, build_multimodal_mae,
)
from anymae.core.registry import register_model
from anymae.core.transformer import init_mae_
from anymae.modalities.image import ImageTokenizer


@dataclass
class MultiMAEConfig(MAEConfig):
    """MultiMAE-B (`multimae-b_98_rgb+-depth-semseg_1600e.yaml` without semseg).

    `mask_ratio` is unused (the budget `num_encoded_tokens` is absolute); `decoder_*` are the
    output adapters' sizes. Fields beyond `MAEConfig`:
        img_size, patch_size: the shared geometry of the aligned images.
        modalities: name -> channels, in sequence order.
        losses: name -> loss name (`core.losses.LOSSES`); missing: "mse".
        norm_pix: names whose targets are normalized per patch.
        num_encoded_tokens, alphas, sample_subsets: the Dirichlet budget.
        modality_drop: whole-modality masking: name -> probability.
    """

    decoder_embed_dim: int = 256
    decoder_depth: int = 2
    decoder_num_heads: int = 8
    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    modalities: dict[str, int] = field(default_factory=lambda: {"rgb": 3, "depth": 1})
    losses: dict[str, str] = field(default_factory=lambda: {"rgb": "mse", "depth": "l1"})
    norm_pix: tuple[str, ...] = ()
    num_encoded_tokens: int = 98
    alphas: float = 1.0
    sample_subsets: bool = False
    modality_drop: dict[str, float] = field(default_factory=dict)


def build_multimae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered MultiMAE preset with overrides (e.g. `modalities={"rgb": 3, "depth": 1, "nir": 1}`)."""
    cfg = resolve_config(MULTIMAE_PRESETS[name], overrides, what=f"model {name!r}")
    names = tuple(cfg.modalities)
    unknown = sorted((set(cfg.losses) | set(cfg.norm_pix) | set(cfg.modality_drop)) - set(names))
    if unknown:
        raise ValueError(f"model {name!r}: losses / norm_pix / modality_drop name unknown modality(ies) {unknown}; "
                         f"modalities: {list(names)}")
    d = cfg.embed_dim
    tokenizers = {m: ImageTokenizer(cfg.img_size, cfg.patch_size, int(c), d) for m, c in cfg.modalities.items()}
    tokenizer = MultiTokenizer(tokenizers)
    masking = DirichletBudget(cfg.num_encoded_tokens, alphas=cfg.alphas, sample_subsets=cfg.sample_subsets,
                              drop=cfg.modality_drop)
    encoder = TransformerEncoder(encoder_config(cfg, cls_token=True))  # the cls slot is the global token
    encoder.norm = nn.Identity()  # MultiMAE has no final LayerNorm
    adapters = {
        m: OutputAdapter(m, names, d, dim=cfg.decoder_embed_dim, depth=cfg.decoder_depth,
                         num_heads=cfg.decoder_num_heads, out_dim=cfg.patch_size**2 * int(c),
                         grid=tokenizers[m].grid, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias)
        for m, c in cfg.modalities.items()
    }
    decoder = OutputAdapters(adapters)
    encoder.blocks.apply(init_mae_)
    for adapter in adapters.values():
        for part in (adapter.proj_context, adapter.cross_attn, adapter.mlp, adapter.blocks, adapter.out_proj):
            part.apply(init_mae_)
    losses = {m: ModalityLoss(cfg.losses.get(m, "mse"), norm=TokenNorm() if m in cfg.norm_pix else None,
                              per_sample=True) for m in names}
    return build_multimodal_mae(tokenizer=tokenizer, encoder=encoder, decoder=decoder, masking=masking, losses=losses,
                                config=config_dict(name, cfg))


MULTIMAE_PRESETS: dict[str, MultiMAEConfig] = {
    "multimae_vit_base_patch16": MultiMAEConfig(),
    # CPU size: 32×32 RGB + depth at patch 4 (64 tokens each), 32 visible tokens of 128.
    "multimae_vit_tiny_patch4": MultiMAEConfig(
        img_size=32, patch_size=4, embed_dim=128, depth=6, num_heads=4, decoder_embed_dim=64, decoder_depth=2,
        decoder_num_heads=4, num_encoded_tokens=32,
    ),
}

for _name, _cfg in MULTIMAE_PRESETS.items():
    register_model(
        _name, build_multimae, modality="multi-image",
        summary=f"MultiMAE ViT {_cfg.embed_dim}d x{_cfg.depth}, {'+'.join(_cfg.modalities)}, patch {_cfg.patch_size}, "
                f"{_cfg.num_encoded_tokens} visible tokens",
        small={"img_size": 2 * _cfg.patch_size, "depth": 1, "decoder_depth": 1, "num_encoded_tokens": 2},
    )
