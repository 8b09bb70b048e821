"""BEiT v2 (Peng et al. 2022): masked image modelling on the ids of a frozen VQ-KD tokenizer.

Facts from microsoft/unilm `beit2` (`modeling_pretrain.py`, `modeling_vqkd.py`,
`norm_ema_quantizer.py`, `PRETRAINING.md`; crossmodal_and_zoo.md B10):

- tokenizer (frozen): ViT-B/16 encoder -> Linear-Tanh-Linear to 32-d -> L2-normalize -> nearest
  of 8192 L2-normalized codes; `core.targets.vq.VQTokenizerIds`, weights from the file the user
  gives as `model.tokenizer_file=PATH` (this module's own state-dict format: see `core.targets.vq`;
  the official VQ-KD checkpoint format is not read);
- MIM: a ViT-B/16 (layer scale 0.1) sees every patch, 75 of 196 replaced by a mask token (BEiT
  block masking), LM head -> 8192, CE at masked positions; plus the cls-pretraining branch
  ([final cls + block-9 patch states] -> 2 blocks -> the shared final norm and LM head), CE again;
  loss = sum (`core.targets.cls_branch.ClsPretrainBranch`);
- bs 2048, lr 1.5e-3, warmup 10, clip 3, AdamW (0.9, 0.999) for 1600 epochs (0.98 for 300),
  drop_path 0.1 (0 for 300).

Without a tokenizer file, `tokenizer_fallback="random_encoder"` (the CPU config's choice) keeps
the tokenizer's seeded random encoder and fits its codebook by spherical k-means on the training
data: a stand-in that lets the recipe run end to end, not BEiT v2's semantic VQ-KD targets.

Deviations: fixed 2-D sin-cos positions instead of BEiT's shared relative position bias; the
tokenizer sees the model's (normalized) input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anymae.core.build import config_dict, resolve_config
from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.losses import get_loss
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import register_model
from anymae.core.targets.cls_branch import ClsPretrainBranch
from anymae.core.targets.vq import VQTokenizerIds
from anymae.modalities.image import ImageTokenizer
from anymae.recipes.targets._beit import TINY, BeitImageConfig, build_beit_like, build_encoder, rescale_blocks_, small
from anymae.recipes.targets.ccvit import BEIT_MASK


@dataclass
class BEiTv2Config(BeitImageConfig):
    """BEiT v2's options on top of the shared BEiT-style image model."""

    mask_ratio: float = BEIT_MASK
    layer_scale: float | None = 0.1
    tokenizer_file: str | None = None  # the VQ-KD tokenizer's weights (required unless a fallback is chosen)
    tokenizer_fallback: str = "none"  # without a file: "none" (error) or "random_encoder" (CPU smoke runs only)
    num_codes: int = 8192
    code_dim: int = 32
    tokenizer_dim: int = 768
    tokenizer_depth: int = 12
    tokenizer_heads: int = 12
    early_layers: int = 9
    head_layers: int = 2
    cls_pretraining: bool = True  # the cls-pretraining branch (shared LM head, CE)


PRESETS: dict[str, BEiTv2Config] = {
    "beitv2_vit_base_patch16": BEiTv2Config(),
    "beitv2_vit_tiny_patch4": BEiTv2Config(
        **TINY, num_codes=512, tokenizer_dim=128, tokenizer_depth=6, tokenizer_heads=4, early_layers=4
    ),
}


def build_vq_tokenizer(cfg: BEiTv2Config) -> VQTokenizerIds:
    """The frozen VQ-KD tokenizer of a config (weights loaded later from `tokenizer_file`)."""
    tokenizer = ImageTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.tokenizer_dim)
    encoder = TransformerEncoder(EncoderConfig(dim=cfg.tokenizer_dim, depth=cfg.tokenizer_depth,
                                               num_heads=cfg.tokenizer_heads))  # fmt: skip
    return VQTokenizerIds(tokenizer, encoder, code_dim=cfg.code_dim, num_codes=cfg.num_codes,
                          source_file=cfg.tokenizer_file, fallback=cfg.tokenizer_fallback)  # type: ignore[arg-type]


def build_beitv2(name: str, **overrides: Any) -> MaskedAutoencoder:
    """A BEiT v2 preset with overrides (options: `BEiTv2Config`)."""
    cfg = resolve_config(PRESETS[name], overrides, what=f"model {name!r}")
    terms = []
    if cfg.cls_pretraining:
        from anymae.core.transformer import init_trunc_normal_

        branch = ClsPretrainBranch(
            get_loss("ce"), dim=cfg.embed_dim, num_heads=cfg.num_heads, depth=cfg.depth,
            early_layers=min(cfg.early_layers, cfg.depth), head_layers=cfg.head_layers, mlp_ratio=cfg.mlp_ratio,
            qkv_bias=cfg.qkv_bias, layer_scale=cfg.layer_scale, out_dim=None, target="main", name="cls_pt",
        )
        branch.apply(init_trunc_normal_)
        rescale_blocks_(branch.blocks, first_id=branch.early + 2)
        terms.append(branch)
    return build_beit_like(
        cfg, head_dim=cfg.num_codes, target=build_vq_tokenizer(cfg), loss="ce", config=config_dict(name, cfg),
        terms=terms, encoder=build_encoder(cfg),
    )


for _name, _cfg in PRESETS.items():
    register_model(
        _name, build_beitv2, modality="image",
        summary=f"BEiT v2: ViT {_cfg.embed_dim}d x{_cfg.depth}, ids of a frozen VQ-KD tokenizer (model.tokenizer_file)",
        small=small(_cfg.patch_size, num_codes=16, early_layers=1, tokenizer_depth=1),
    )  # fmt: skip
