"""LV-MAE (amazon-science/lv-mae): a masked-embedding autoencoder over precomputed segment features.

Long videos are cut into 5-s segments, each embedded offline (LanguageBind video, 1024-d); the
model is an MAE on the sequence of L2-normalized embeddings (`modalities.features`): no patch
embedding (the tokenizer is the identity, width = 1024), a cls token, fixed 1-D sin-cos
positions, encoder 32 blocks × 16 heads, decoder 512 wide × 8 blocks × 16 heads predicting the
1024-d embeddings; MSE on the hidden segments (`cos_loss=True`: 1 - cos). Sequences of up to
`max_len` = 256 segments, padded, with exact per-sample counts (`core.masking.padding`).
Masking: random, or "importance" masking (`masking="similarity"`, `core.masking.similarity`):
the segments most similar to their predecessor are hidden.

Presets:
- `lvmae_base`: the README's pretraining command (`--depth 32 --num_heads 16 --mask_ratio .5
  --masking_strategy --num_patches 256`): 429.35M parameters (encoder 403.08M, decoder 26.27M).
  The code's defaults differ: `mask_ratio=0.7`, random masking (`masking="random"`).
- `lvmae_tiny`: CPU size, 64-d features (identity tokenizer), sequences of up to 32.
"""

from __future__ import annotations

from typing import Any

from anymae.core.registry import register_model
from anymae.modalities.features import FeaturesMAEConfig, build_features_mae

_LVMAE = {"masking": "similarity", "mask_ratio": 0.5, "max_len": 256, "decoder_embed_dim": 512, "decoder_depth": 8,
          "decoder_num_heads": 16}

LVMAE_PRESETS: dict[str, FeaturesMAEConfig] = {
    "lvmae_base": FeaturesMAEConfig(in_dim=1024, embed_dim=1024, depth=32, num_heads=16, **_LVMAE),
    "lvmae_tiny": FeaturesMAEConfig(
        in_dim=64, embed_dim=64, depth=2, num_heads=4, masking="similarity", mask_ratio=0.5, max_len=32,
        decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4,
    ),
}


def build_lvmae(name: str, **overrides: Any) -> Any:
    """Build an LV-MAE preset with overrides (any `FeaturesMAEConfig` field, e.g. masking="random")."""
    return build_features_mae(name, LVMAE_PRESETS[name], **overrides)


_SMALL = {"in_dim": 32, "embed_dim": 32, "num_heads": 2, "depth": 1, "decoder_embed_dim": 32, "decoder_num_heads": 2,
          "decoder_depth": 1, "max_len": 8}

for _name, _cfg in LVMAE_PRESETS.items():
    register_model(
        _name,
        build_lvmae,
        modality="features",
        summary=f"LV-MAE: {_cfg.in_dim}-d segment features, encoder {_cfg.embed_dim}d x{_cfg.depth}, "
        f"up to {_cfg.max_len} segments, {_cfg.masking} masking",
        small=_SMALL,
    )
