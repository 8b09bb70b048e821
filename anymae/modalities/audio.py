"""Audio: log-mel spectrogram patches, Audio-MAE's presets, and spectrogram pictures.

Input: B×1×T×F normalized Kaldi fbank (time × mel bins, 1024×128 for 10-s AudioSet clips; the
frontend is `anymae.datasets.audio.files`). Tokenizer: the image tokenizer with one channel and a
rectangular size (T, F): 16×16 patches on the 64×8 (time × frequency) grid, values in Audio-MAE's
(p, q) order, fixed 2-D sin-cos positions on the rectangular grid (its "flexible" table).

Model (facebookresearch/AudioMAE `models_mae.py`): ViT encoder with cls token; masking random at
0.8 (`int(512·0.2)` = 102 visible) or `grid_lines` (the reference's `mask_2d`, t 0.7 f 0.3);
norm_pix targets; decoder 512 wide, either "local" (`decoder_mode=1`, the AS-2M recipe and the
reference default: 16 Swin-v2-cr blocks, 16 heads, window 4×4, shift (2, 0) on odd blocks, cls
dropped before the decoder) or "global" (`decoder_mode=0`: 8 ViT blocks, 16 heads, cls kept).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib
import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from anymae.core.build import MAEConfig, build_mae, config_dict, resolve_config
from anymae.core.losses import TokenNorm
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import FixedSinCos
from anymae.core.registry import register_model
from anymae.core.tokens import Tokens
from anymae.core.transformer import init_mae_
from anymae.modalities.image import ImageTokenizer

# Token values at or below this mark hidden tokens in pictures: `picture_fill` returns
# FILL_BASE · (1 + level), which `to_pictures` draws as flat gray `level` (spectrogram values are O(1)).
FILL_BASE: float = -1.0e4
PICTURE_RANGE: tuple[float, float] = (-1.5, 1.5)  # normalized fbank values mapped to the colormap's ends


class AudioTokenizer(ImageTokenizer):
    """B×1×T×F normalized fbank -> patch tokens on the (T/p)×(F/p) grid (time rows, frequency columns).

    The image tokenizer with `in_chans=1` and size (T, F); only data making and rendering differ.
    """

    def __init__(self, target_length: int, num_mel_bins: int, patch_size: int, dim: int) -> None:
        super().__init__((target_length, num_mel_bins), patch_size, 1, dim)

    def example(self, batch_size: int) -> Tensor:
        """A random batch at the configured geometry: B×1×T×F, values like a normalized fbank."""
        return 0.5 * torch.randn(batch_size, 1, *self.img_size)

    def to_pictures(
        self, batch: Tensor, vmin: float = PICTURE_RANGE[0], vmax: float = PICTURE_RANGE[1], cmap: str = "magma"
    ) -> np.ndarray:
        """Spectrograms -> colormapped pictures, time left to right, LOW frequencies at the bottom.

        Args:
            batch: B×1×T×F normalized fbank (values at or below FILL_BASE draw as flat gray).
            vmin, vmax: values mapped to the colormap's two ends (clamped outside).
            cmap: a matplotlib colormap name.

        Returns:
            B×F×T×3 uint8 array.
        """
        if not isinstance(batch, Tensor) or batch.ndim != 4 or batch.shape[1] != 1:
            got = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise ValueError(f"to_pictures expects spectrograms B×1×T×F, got {got}")
        if not vmax > vmin:
            raise ValueError(f"to_pictures: vmax={vmax} must be > vmin={vmin}")
        x = rearrange(batch.detach().float().cpu()[:, 0], "b t f -> b f t").flip(1).numpy()  # B×F×T, low f at bottom
        fill = x <= FILL_BASE / 2
        rgb = matplotlib.colormaps[cmap](np.clip((x - vmin) / (vmax - vmin), 0.0, 1.0))[..., :3]  # B×F×T×3
        gray = np.clip(x / FILL_BASE - 1.0, 0.0, 1.0)[..., None]  # level encoded by picture_fill
        rgb = np.where(fill[..., None], gray, rgb)
        return np.round(rgb * 255).astype(np.uint8)

    def picture_fill(self, tokens: Tokens, level: float = 128 / 255, **render: Any) -> Tensor:
        """1×1×p² token value that `to_pictures` draws as flat gray `level` (see FILL_BASE)."""
        ref = tokens.target if tokens.target is not None else tokens.x
        return torch.full((1, 1, self.patch_size**2), FILL_BASE * (1.0 + level), dtype=ref.dtype, device=ref.device)


@dataclass
class AudioMAEConfig(MAEConfig):
    """An Audio-MAE: MAEConfig plus spectrogram geometry, masking and decoder choice."""

    target_length: int = 1024  # fbank frames (10 ms): 1024 AudioSet, 512 ESC-50, 128 SpeechCommands
    num_mel_bins: int = 128
    patch_size: int = 16
    mask_ratio: float = 0.8
    norm_pix_loss: bool = True  # the AS-2M recipe
    masking: str = "random"  # "random" or "grid_lines" (the reference's mask_2d)
    mask_t_ratio: float = 0.7  # grid_lines: share of hidden time rows
    mask_f_ratio: float = 0.3  # grid_lines: share of hidden frequency columns
    decoder: Literal["local", "global"] = "local"  # decoder_mode 1 / 0
    local_decoder_depth: int = 16
    window: tuple[int, int] = (4, 4)
    window_shift: tuple[int, int] = (2, 0)


def build_audio_mae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered audio preset with overrides (e.g. decoder="global", target_length=512)."""
    cfg = resolve_config(AUDIO_PRESETS[name], overrides, what=f"model {name!r}")
    if cfg.decoder not in ("local", "global"):
        raise ValueError(f"model {name!r}: decoder={cfg.decoder!r}: expected 'local' or 'global'")
    tokenizer = AudioTokenizer(cfg.target_length, cfg.num_mel_bins, cfg.patch_size, cfg.embed_dim)
    if cfg.masking == "grid_lines":
        masking = make_masking("grid_lines", cfg.mask_t_ratio, col_ratio=cfg.mask_f_ratio)
    else:
        masking = make_masking(cfg.masking, cfg.mask_ratio)
    local = cfg.decoder == "local"
    decoder_extra: dict[str, Any] = {"keep_prefix": not local}
    if local:
        decoder_extra.update(window=tuple(cfg.window), window_shift=tuple(cfg.window_shift), window_grid=tokenizer.grid)
    sizes = dataclasses.replace(cfg, decoder_depth=cfg.local_decoder_depth) if local else cfg
    return build_mae(
        sizes,
        tokenizer=tokenizer,
        decoder_pos=FixedSinCos(tokenizer.grid, cfg.decoder_embed_dim),
        head=nn.Linear(cfg.decoder_embed_dim, cfg.patch_size**2),
        masking=masking,
        target_norm=TokenNorm() if cfg.norm_pix_loss else None,
        config=config_dict(name, cfg),
        decoder_extra=decoder_extra,
        init=init_mae_,
    )


AUDIO_PRESETS: dict[str, AudioMAEConfig] = {
    # Audio-MAE sizes (models_mae.py): decoder 512 wide, 16 heads; encoder ViT-S/B/L with patch 16.
    "audiomae_vit_small_patch16": AudioMAEConfig(embed_dim=384, depth=12, num_heads=6),
    "audiomae_vit_base_patch16": AudioMAEConfig(embed_dim=768, depth=12, num_heads=12),
    "audiomae_vit_large_patch16": AudioMAEConfig(embed_dim=1024, depth=24, num_heads=16),
    # CPU-sized: 128 frames (1.28 s) × 64 mel bins at patch 16 (8×4 tokens), 4×2 windows.
    "audiomae_tiny_patch16": AudioMAEConfig(
        target_length=128, num_mel_bins=64, embed_dim=128, depth=4, num_heads=4,
        decoder_embed_dim=64, decoder_num_heads=4, decoder_depth=2, local_decoder_depth=2,
        window=(4, 2), window_shift=(2, 0),
    ),
}

for _name, _cfg in AUDIO_PRESETS.items():
    register_model(
        _name,
        build_audio_mae,
        modality="audio",
        summary=f"ViT {_cfg.embed_dim}d x{_cfg.depth} on {_cfg.target_length}x{_cfg.num_mel_bins} fbank, "
        f"{_cfg.decoder} decoder",
        small={"target_length": 64, "num_mel_bins": 32, "depth": 1, "local_decoder_depth": 2, "decoder_depth": 1,
               "window": (2, 2), "window_shift": (1, 0)},
    )
