"""Volumes (CT-like 3-D scans): cubic patch tokens, voxel targets, fixed 3-D sin-cos positions.

A batch is B×C×H×W×D (channels first, then the three spatial axes in the order the file stores
them; the datasets in `datasets/volume` window CT intensities to [0, 1] before this). Tokens:

- patches of p×p×p voxels (a Conv3d with kernel = stride = p, weight xavier-uniform as a Linear
  on the flattened patch: Hi-End-MAE's `PatchEmbed3D`), a grid (H/p, W/p, D/p), tokens flattened
  row-major over (h, w, d);
- the target of a token is its voxels in (p_h, p_w, p_d, c) order, channel fastest: Hi-End-MAE's
  `patchify_image`, [B,C,gh,ph,gw,pw,gd,pd] -> [B, gh·gw·gd, ph·pw·pd·C] (`patchify3d`);
- positions: Hi-End-MAE's fixed 3-D sin-cos table (`core.pos_embed.sincos_grid` with
  `axis_order="first"`: the width is split in six D/6 parts [sin h, cos h, sin w, cos w, sin d,
  cos d]); prefix (cls) tokens get none. The width must be divisible by 6, as the reference asserts.

Pictures (`to_pictures`): the central slice across each axis (H, W, D) side by side, gray.
The modality registers no presets of its own: recipes compose it (`recipes/decoders/hiendmae.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from anymae.core.build import MAEConfig
from anymae.core.pos_embed import FixedSinCos
from anymae.core.tokens import Tokens
from anymae.modalities.image import MID_GRAY, mark_nonfinite

Size3 = tuple[int, int, int]


def triple(size: int | Sequence[int]) -> Size3:
    """An int or three ints -> (H, W, D)."""
    if isinstance(size, int):
        return (size, size, size)
    values = tuple(int(s) for s in size)
    if len(values) != 3:
        raise ValueError(f"a volume size needs one or three values, got {tuple(size)!r}")
    return values  # type: ignore[return-value]


def patchify3d(volumes: Tensor, patch: int) -> Tensor:
    """B×C×H×W×D -> B×N×(p³·C): tokens (h, w, d) row-major, values in (p_h, p_w, p_d, c) order."""
    return rearrange(volumes, "b c (h p) (w q) (d r) -> b (h w d) (p q r c)", p=patch, q=patch, r=patch)


def unpatchify3d(values: Tensor, patch: int, grid: Size3, channels: int) -> Tensor:
    """B×N×(p³·C) -> B×C×H×W×D, the inverse of `patchify3d`."""
    h, w, d = grid
    return rearrange(
        values, "b (h w d) (p q r c) -> b c (h p) (w q) (d r)", h=h, w=w, d=d, p=patch, q=patch, r=patch, c=channels
    )


def volume_pos(grid: Size3, dim: int) -> FixedSinCos:
    """Hi-End-MAE's fixed 3-D sin-cos table at width `dim` (divisible by 6) for `grid`."""
    if dim % 6:
        raise ValueError(f"3-D sin-cos positions need a width divisible by 6 (Hi-End-MAE asserts it), got {dim}")
    return FixedSinCos(grid, dim, axis_order="first")


class VolumeTokenizer(nn.Module):
    """B×C×H×W×D volumes -> cubic patch tokens (B×N×D'), voxel targets (B×N×p³C), grid (H/p, W/p, D/p).

    Args:
        img_size: the configured volume size (one int for a cube, or (H, W, D)); other sizes
            divisible by the patch are tokenized too (positions are recomputed for their grid).
        patch_size: p, the cube's side.
        in_chans: C.
        dim: embedding width (divisible by 6).
    """

    def __init__(self, img_size: int | Sequence[int], patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.img_size, self.patch_size, self.in_chans, self.dim = triple(img_size), patch_size, in_chans, dim
        self.grid = self._grid(self.img_size)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as a Linear on the flattened patch (Hi-End-MAE)
        self.pos_embed = volume_pos(self.grid, dim)

    def _grid(self, size: Sequence[int]) -> Size3:
        p = self.patch_size
        if any(s % p or s < p for s in size):
            raise ValueError(f"volume size {'×'.join(map(str, size))} is not divisible by the patch size {p}")
        return tuple(s // p for s in size)  # type: ignore[return-value]

    def forward(self, volumes: Tensor) -> Tokens:
        if volumes.ndim != 5 or volumes.shape[1] != self.in_chans:
            raise ValueError(
                f"expected volumes of shape B×{self.in_chans}×H×W×D (in_chans={self.in_chans}), "
                f"got a tensor of shape {tuple(volumes.shape)}"
            )
        grid = self._grid(volumes.shape[2:])
        x = rearrange(self.patch_embed.proj(volumes), "b e h w d -> b (h w d) e")  # B×N×D'
        return Tokens(x=x, target=patchify3d(volumes, self.patch_size), grid=grid)

    def untokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        """B×N×p³C -> B×C×H×W×D."""
        return unpatchify3d(values, self.patch_size, tokens.grid, self.in_chans)  # type: ignore[arg-type]

    def example(self, batch_size: int) -> Tensor:
        """A random batch at the configured geometry: B×C×H×W×D on [0, 1] (windowed intensities)."""
        return torch.rand(batch_size, self.in_chans, *self.img_size)

    def to_pictures(self, batch: Tensor, low: float = 0.0, high: float = 1.0) -> np.ndarray:
        """Volumes -> one gray picture per volume: its central slices across H, W and D side by side.

        Channel 0 is shown; `low` renders black and `high` white (the windowed [0, 1] by default).
        Slices are W×D (across H), H×D (across W) and H×W (across D), each padded at the bottom to
        the tallest with black. NaN / Inf voxels are drawn magenta (`mark_nonfinite`).

        Args:
            batch: B×C×H×W×D volumes.
            low, high: the values drawn black and white.

        Returns:
            B×max(W, H)×(D + D + W)×3 uint8 array.
        """
        if not isinstance(batch, Tensor) or batch.ndim != 5 or batch.shape[1] != self.in_chans:
            got = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise ValueError(f"to_pictures expects volumes B×{self.in_chans}×H×W×D, got {got}")
        if not high > low:
            raise ValueError(f"to_pictures needs high > low, got low={low}, high={high}")
        x = batch.detach().float().cpu()[:, 0]  # B×H×W×D
        h, w, d = x.shape[1:]
        slices = [x[:, h // 2], x[:, :, w // 2], x[:, :, :, d // 2]]  # B×W×D, B×H×D, B×H×W
        tallest = max(s.shape[1] for s in slices)
        padded = [F.pad(s, (0, 0, 0, tallest - s.shape[1]), value=low) for s in slices]  # each B×tallest×cols
        strip = torch.cat(padded, dim=2)  # B×tallest×(D + D + W)
        bad = (~torch.isfinite(strip)).numpy()
        gray = ((strip.nan_to_num(low) - low) / (high - low)).clamp(0.0, 1.0)
        rgb = (gray * 255).round().to(torch.uint8).unsqueeze(-1).expand(-1, -1, -1, 3)  # B×rows×cols×3
        return mark_nonfinite(rgb.numpy(), bad, "volume pictures")

    def picture_fill(self, tokens: Tokens, level: float = MID_GRAY, low: float = 0.0, high: float = 1.0) -> Tensor:
        """The target value `to_pictures` (same low/high) renders as flat gray `level` -> 1×1×P."""
        ref = tokens.target if tokens.target is not None else tokens.x
        value = low + float(level) * (high - low)
        return torch.full((1, 1, ref.shape[-1]), value, dtype=ref.dtype, device=ref.device)


@dataclass
class VolumeMAEConfig(MAEConfig):
    """A volume MAE: MAEConfig plus the input geometry and the masking strategy (Hi-End-MAE base p16 defaults)."""

    img_size: int | tuple[int, int, int] = 96
    patch_size: int = 16
    in_chans: int = 1
    masking: str = "random"  # a name in core.masking.MASKINGS
    masking_params: dict[str, Any] = field(default_factory=dict)
    decoder_embed_dim: int = 384
    decoder_depth: int = 2
    decoder_num_heads: int = 12


def volume_parts(cfg: VolumeMAEConfig) -> tuple[VolumeTokenizer, FixedSinCos, nn.Linear]:
    """(tokenizer, decoder positions, head decoder width -> p³C) of a volume MAE config."""
    tokenizer = VolumeTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
    head = nn.Linear(cfg.decoder_embed_dim, cfg.patch_size**3 * cfg.in_chans)
    return tokenizer, volume_pos(tokenizer.grid, cfg.decoder_embed_dim), head
