"""Precomputed features: sequences of per-segment embeddings (LV-MAE's "masked-embedding" input).

Input: a `FeatureBatch`: B×L×F float features (one row per segment, e.g. 5-s video segments
embedded offline) and an optional B×L bool `valid` (False at padding: clips of different length
padded to a common L at the end, `datasets.features.FeatureFiles.collate_x`). A plain B×L×F
tensor is a batch without padding.

Tokenizer: the identity when F equals the encoder width (LV-MAE: 1024-d LanguageBind embeddings,
no patch embedding), else a Linear F -> width; optional L2 normalization of every row first
(LV-MAE normalizes in its data loader; here it is a model option so that `features()` sees the
same inputs). Fixed 1-D sin-cos positions (MAE's `get_1d_sincos_pos_embed`, cls slot zero) on
the token index, computed for any length up to `max_len`. Target: the (normalized) input rows
themselves. Padding travels as `Tokens.valid`: masking plans padded sequences with exact
per-sample counts (`core.masking.padding`) and the encoder never attends to padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anymae.core.build import MAEConfig, build_mae, config_dict, resolve_config
from anymae.core.losses import TokenNorm
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import FixedSinCos
from anymae.core.tokens import Tokens
from anymae.core.transformer import init_mae_


@dataclass
class FeatureBatch:
    """A batch of feature sequences.

    Attributes:
        features: B×L×F float rows (padding rows are ignored; readers fill them with zeros).
        valid: B×L bool, False at padding (padding at the end of each row); None = no padding.
    """

    features: Tensor
    valid: Tensor | None = None

    @property
    def shape(self) -> torch.Size:
        return self.features.shape

    @property
    def lengths(self) -> Tensor:
        """B long: real rows per sample."""
        if self.valid is None:
            return torch.full((self.features.shape[0],), self.features.shape[1], dtype=torch.long)
        return self.valid.sum(1)

    def to(self, *args: Any, **kwargs: Any) -> FeatureBatch:
        """Move (or cast) the features; `valid` follows to the same device."""
        feats = self.features.to(*args, **kwargs)
        return FeatureBatch(feats, None if self.valid is None else self.valid.to(feats.device))


def as_feature_batch(batch: FeatureBatch | Tensor) -> FeatureBatch:
    """A `FeatureBatch` from itself or from a B×L×F tensor (no padding)."""
    return batch if isinstance(batch, FeatureBatch) else FeatureBatch(batch)


class FeatureTokenizer(nn.Module):
    """B×L×F feature rows -> B×L×D tokens (identity or Linear), targets = the rows, 1-D sin-cos positions.

    Args:
        in_dim: F, the width of a feature row.
        dim: encoder width (F == dim: identity, as LV-MAE).
        max_len: the longest sequence accepted (LV-MAE's `num_patches`).
        l2_normalize: L2-normalize every row before use (LV-MAE).
    """

    def __init__(self, in_dim: int, dim: int, max_len: int, *, l2_normalize: bool = True) -> None:
        super().__init__()
        if in_dim < 1 or max_len < 2:
            raise ValueError(f"features tokenizer: in_dim must be >= 1 and max_len >= 2, got {in_dim}, {max_len}")
        self.in_dim, self.dim, self.max_len, self.l2_normalize = in_dim, dim, max_len, l2_normalize
        self.proj: nn.Module = nn.Identity() if in_dim == dim else nn.Linear(in_dim, dim)
        self.pos_embed = FixedSinCos((max_len,), dim)  # 1-D: sincos_1d(arange(L)), MAE's concat layout

    def forward(self, batch: FeatureBatch | Tensor) -> Tokens:
        b = as_feature_batch(batch)
        x, valid = b.features, b.valid
        if x.ndim != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"expected features of shape B×L×{self.in_dim} (in_dim={self.in_dim}), got "
                             f"{tuple(x.shape)}")
        if not 2 <= x.shape[1] <= self.max_len:
            raise ValueError(f"a batch of {x.shape[1]} rows per sample: this model takes 2 to max_len={self.max_len}")
        if valid is not None:
            if valid.shape != x.shape[:2] or valid.dtype != torch.bool:
                raise ValueError(f"valid must be a B×L bool tensor {tuple(x.shape[:2])}, got {valid.dtype} "
                                 f"{tuple(valid.shape)}")
            if bool(valid.all()):
                valid = None  # no padding in this batch: the plain path
            else:
                x = x.masked_fill(~valid.unsqueeze(-1), 0.0)  # padding rows are zeros, whatever they held
        rows = F.normalize(x, p=2, dim=-1) if self.l2_normalize else x  # B×L×F (eps 1e-12; zero rows stay 0)
        return Tokens(x=self.proj(rows), target=rows, grid=(x.shape[1],), valid=valid)

    def example(self, batch_size: int) -> FeatureBatch:
        """A random batch of `batch_size` sequences of up to 8 rows, the later ones padded."""
        length = min(8, self.max_len)
        feats = torch.randn(batch_size, length, self.in_dim)
        valid = torch.ones(batch_size, length, dtype=torch.bool)
        valid[1:, length - 2 :] = False  # every sample but the first has 2 padding rows
        return FeatureBatch(feats.masked_fill(~valid.unsqueeze(-1), 0.0), valid)

    def untokenize(self, values: Tensor, tokens: Tokens) -> FeatureBatch:
        """B×L×F per-token values -> a `FeatureBatch` with the tokens' padding (rows zeroed there)."""
        if tokens.valid is not None:
            values = values.masked_fill(~tokens.valid.unsqueeze(-1), 0.0)
        return FeatureBatch(values, tokens.valid)

    def to_pictures(
        self, batch: FeatureBatch | Tensor, vmin: float | None = None, vmax: float | None = None
    ) -> np.ndarray:
        """Feature sequences -> B×F×L×3 uint8 gray heat maps (time left to right), padding drawn black.

        vmin / vmax: values mapped to black / white (default: the batch's range).
        """
        b = as_feature_batch(batch)
        x = b.features.detach().float().cpu().transpose(1, 2)  # B×F×L
        lo = float(x.min()) if vmin is None else vmin
        hi = float(x.max()) if vmax is None else vmax
        gray = ((x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)).clamp(0, 1)
        if b.valid is not None:
            gray = gray * b.valid.cpu()[:, None, :]
        return (gray[..., None].expand(-1, -1, -1, 3) * 255).round().to(torch.uint8).numpy()


@dataclass
class FeaturesMAEConfig(MAEConfig):
    """An MAE on feature sequences: MAEConfig plus the row width, the longest sequence and the objective.

    `in_dim` is the feature width F (the tokenizer is the identity when it equals `embed_dim`);
    `cos_loss` uses 1 - cos(pred, target) per token (LV-MAE's `--cos_loss`) instead of the MSE.
    """

    in_dim: int = 1024
    max_len: int = 256
    l2_normalize: bool = True
    masking: str = "random"  # a name in core.masking.MASKINGS: "random" or "similarity" (LV-MAE's importance)
    masking_params: dict[str, Any] = field(default_factory=dict)
    cos_loss: bool = False


def build_features_mae(name: str, cfg: FeaturesMAEConfig, **overrides: Any) -> MaskedAutoencoder:
    """An MAE on feature sequences from a preset config `cfg` (registered as `name`) with overrides."""
    cfg = resolve_config(cfg, overrides, what=f"model {name!r}")
    tokenizer = FeatureTokenizer(cfg.in_dim, cfg.embed_dim, cfg.max_len, l2_normalize=cfg.l2_normalize)
    if isinstance(tokenizer.proj, nn.Linear):
        init_mae_(tokenizer.proj)
    masking = make_masking(cfg.masking, cfg.mask_ratio, **dict(cfg.masking_params))
    return build_mae(
        cfg,
        tokenizer=tokenizer,
        decoder_pos=FixedSinCos((cfg.max_len,), cfg.decoder_embed_dim),
        head=nn.Linear(cfg.decoder_embed_dim, cfg.in_dim),
        masking=masking,
        target_norm=TokenNorm() if cfg.norm_pix_loss else None,
        loss="sce" if cfg.cos_loss else "mse",
        loss_params={"gamma": 1.0} if cfg.cos_loss else None,
        config=config_dict(name, cfg),
        init=init_mae_,
    )

