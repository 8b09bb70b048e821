"""CCViT (Yan et al. 2023): masked image modelling with k-means centroid ids as targets.

Facts from Cakeyan/CCViT_Public (`train_faiss_kmeans.py`, `engine_for_pretraining.py`,
`modeling_pretrain.py`; crossmodal_and_zoo.md B11):

- tokenizer: faiss k-means, K = 8192, 20 iterations, on raw 16×16×3 pixel patches of [0, 1]
  images flattened channel-first (768-d); id = nearest centroid (exact L2). No network.
  `core.targets.codebook.KMeansIds`; fitted before training on a seeded sample of the training
  data and saved in the run directory (`tasks.train.fit_targets`), or read from
  `model.codebook=PATH` (CCViT's `*_centroids.npy` loads as is);
- BEiT v2's architecture: a ViT-B/16 (layer scale 0.1) sees every patch, 75 of 196 patches
  replaced by a mask token (BEiT block masking), LM head 768 -> 8192, CE on the ids of masked
  patches; the "dual loss": plus MSE on norm_pix pixels (of the [0, 1] image) predicted by the
  cls-pretraining branch (cls + block-9 states -> 2 blocks -> own norm -> Linear 768 -> 768),
  `loss = ce + mse` (`core.targets.cls_branch.ClsPretrainBranch`);
- the second corruption: 20 further (visible) patches replaced by their centroid's pixels, and
  both losses count masked ∪ replaced patches (`core.targets.centroid_mode.CentroidReplaceMode`,
  `centroid_ratio` 0.1021: 20 of 196);
- 300 epochs, lr 1.5e-3, AdamW (0.9, 0.98), layer scale 0.1.

The CPU preset fits K = 64 codes (on 48-d 4×4×3 patches) and replaces 6 of 64 patches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anymae.core.build import config_dict, resolve_config
from anymae.core.losses import get_loss
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import register_model
from anymae.core.targets.centroid_mode import CentroidReplaceMode
from anymae.core.targets.cls_branch import ClsPretrainBranch
from anymae.core.targets.codebook import KMeansIds
from anymae.recipes.targets._beit import BEIT_MODE, TINY, BeitImageConfig, build_beit_like, build_encoder, rescale_blocks_, small

BEIT_MASK = 0.3827  # int(196 · 0.3827) = 75 patches (BEiT v2 / CCViT num_mask_patches)
CCVIT_REPLACED = 0.1021  # int(196 · 0.1021) = 20 patches replaced by their centroid (num_replaced_patches)


@dataclass
class CCViTConfig(BeitImageConfig):
    """CCViT's options on top of the shared BEiT-style image model."""

    mask_ratio: float = BEIT_MASK
    layer_scale: float | None = 0.1
    num_codes: int = 8192
    kmeans_iters: int = 20
    kmeans_max_vectors: int = 1_000_000
    codebook: str | None = None  # a centroids file (.npy / .pt / .safetensors); None = fit on the data
    dual_loss: bool = True  # + MSE on norm_pix pixels from the cls-pretraining branch
    pix_weight: float = 1.0
    centroid_ratio: float = CCVIT_REPLACED  # visible patches replaced by their centroid's pixels (0 = off)
    early_layers: int = 9
    head_layers: int = 2


PRESETS: dict[str, CCViTConfig] = {
    "ccvit_vit_base_patch16": CCViTConfig(),
    "ccvit_vit_tiny_patch4": CCViTConfig(**TINY, num_codes=64, early_layers=4),
}


def build_ccvit(name: str, **overrides: Any) -> MaskedAutoencoder:
    """A CCViT preset with overrides (options: `CCViTConfig`)."""
    cfg = resolve_config(PRESETS[name], overrides, what=f"model {name!r}")
    token_dim = cfg.patch_size**2 * cfg.in_chans
    target = KMeansIds(
        cfg.num_codes, token_dim, channels=cfg.in_chans, channel_first=True, mean=cfg.data_mean, std=cfg.data_std,
        iters=cfg.kmeans_iters, max_vectors=cfg.kmeans_max_vectors, source_file=cfg.codebook,
    )
    terms = []
    if cfg.dual_loss:
        branch = ClsPretrainBranch(
            get_loss("mse"), dim=cfg.embed_dim, num_heads=cfg.num_heads, depth=cfg.depth,
            early_layers=min(cfg.early_layers, cfg.depth), head_layers=cfg.head_layers, mlp_ratio=cfg.mlp_ratio,
            qkv_bias=cfg.qkv_bias, layer_scale=cfg.layer_scale, out_dim=token_dim, target="norm_pix",
            channels=cfg.in_chans, mean=cfg.data_mean, std=cfg.data_std, name="pix", weight=cfg.pix_weight,
        )
        _init_branch_(branch, cfg)
        terms.append(branch)
    return build_beit_like(
        cfg, head_dim=cfg.num_codes, target=target, loss="ce", config=config_dict(name, cfg), terms=terms,
        encoder=build_encoder(cfg), mode=CentroidReplaceMode(**BEIT_MODE, centroid_ratio=cfg.centroid_ratio),
    )


def _init_branch_(branch: ClsPretrainBranch, cfg: BeitImageConfig) -> None:
    from anymae.core.transformer import init_trunc_normal_

    branch.apply(init_trunc_normal_)
    rescale_blocks_(branch.blocks, first_id=branch.early + 2)  # BEiT v2: layer_id + early_layers + 1


for _name, _cfg in PRESETS.items():
    register_model(
        _name, build_ccvit, modality="image",
        summary=f"CCViT: ViT {_cfg.embed_dim}d x{_cfg.depth}, k-means ids ({_cfg.num_codes}) of masked patches",
        small=small(_cfg.patch_size, num_codes=8, early_layers=1),
    )  # fmt: skip
