"""Images: patch tokens, pixel targets, and the MAE paper's presets.

Tokenizer: timm's `PatchEmbed` (a Conv2d with kernel = stride = patch), any channel count,
non-square sizes; fixed 2-D sin-cos positions (cls slot zero, as MAE). Target: the patch's
pixels in MAE's (p, q, c) order, optionally per-patch normalized (norm_pix). Presets: MAE's
ViT-B/16, ViT-L/16, ViT-H/14 with the 512-wide, 8-block, 16-head decoder, plus CPU-sized ones;
ColorMAE (MAE with green filtered-noise masks, `core.masking.noise_banks`); SimMIM (mode
"replace": every patch encoded, hidden ones replaced by a learned [MASK] vector, a per-token
linear head and the L1 loss on hidden patches, 32-px cells hidden at 0.6).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from einops import rearrange
from timm.layers import PatchEmbed
from torch import Tensor, nn

from anymae.core.build import MAEConfig, build_mae, config_dict, encoder_config, resolve_config
from anymae.core.encoder import TransformerEncoder
from anymae.core.losses import TokenNorm
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import FixedSinCos
from anymae.core.registry import register_model
from anymae.core.skeleton import LinearHead, ReplaceMode
from anymae.core.tokens import Tokens
from anymae.core.transformer import init_mae_

# ImageNet channel statistics (RGB, on [0, 1] pixels): the default normalization of MAE's data.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# uint8 mid-gray (128) on [0, 1]; not 0.5, whose 127.5 would round to 127 or 128 by float noise.
MID_GRAY: float = 128 / 255

# Pictures draw values that are NaN or ±Inf in this colour (and say how many in a warning).
NONFINITE_RGB: tuple[int, int, int] = (255, 0, 255)

log = logging.getLogger(__name__)


def mark_nonfinite(pictures: np.ndarray, bad: np.ndarray, what: str) -> np.ndarray:
    """Paint the pixels of B×H×W×3 uint8 `pictures` where `bad` (B×H×W) holds in `NONFINITE_RGB`,
    and log one warning with their count (`what` names the pictures); no-op when none is bad."""
    count = int(bad.sum())
    if count:
        pictures = np.array(pictures)  # a writable copy (renderers may return broadcast views)
        pictures[bad] = NONFINITE_RGB
        log.warning("%s: %d pixel(s) came from NaN or Inf values, drawn in magenta %s", what, count, NONFINITE_RGB)
    return pictures


def _pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def patchify(imgs: Tensor, patch: int) -> Tensor:
    """B×C×H×W -> B×N×(p·p·C), patches row-major, values in (p, q, c) order (MAE)."""
    return rearrange(imgs, "b c (h p) (w q) -> b (h w) (p q c)", p=patch, q=patch)


def unpatchify(values: Tensor, patch: int, grid: tuple[int, int], channels: int) -> Tensor:
    """B×N×(p·p·C) -> B×C×H×W, the inverse of `patchify`."""
    return rearrange(values, "b (h w) (p q c) -> b c (h p) (w q)", h=grid[0], w=grid[1], p=patch, q=patch, c=channels)


class ImageTokenizer(nn.Module):
    """B×C×H×W images -> patch tokens (B×N×D), pixel targets (B×N×p²C) and the patch grid."""

    def __init__(self, img_size: int | tuple[int, int], patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.img_size, self.patch_size, self.in_chans, self.dim = _pair(img_size), patch_size, in_chans, dim
        self._check_size(*self.img_size)
        self.patch_embed = PatchEmbed(self.img_size, patch_size, in_chans, dim, strict_img_size=False)
        self.grid = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.pos_embed = FixedSinCos(self.grid, dim)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # like a Linear on the flattened patch (MAE)

    def _check_size(self, h: int, w: int) -> None:
        p = self.patch_size
        if h % p or w % p or h < p or w < p:
            raise ValueError(f"image size {h}×{w} is not divisible by the patch size {p}")

    def forward(self, imgs: Tensor) -> Tokens:
        if imgs.ndim != 4 or imgs.shape[1] != self.in_chans:
            raise ValueError(
                f"expected images of shape B×{self.in_chans}×H×W (in_chans={self.in_chans}), "
                f"got a tensor of shape {tuple(imgs.shape)}"
            )
        h, w = imgs.shape[-2:]
        self._check_size(h, w)
        x = self.patch_embed(imgs)  # B×N×D, N = (H/p)(W/p)
        grid = (h // self.patch_size, w // self.patch_size)
        return Tokens(x=x, target=patchify(imgs, self.patch_size), grid=grid)

    def example(self, batch_size: int) -> Tensor:
        """A random batch at the configured geometry: B×C×H×W."""
        return torch.randn(batch_size, self.in_chans, *self.img_size)

    def untokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        """B×N×p²C -> B×C×H×W."""
        return unpatchify(values, self.patch_size, tokens.grid, self.in_chans)  # type: ignore[arg-type]

    def _channel_stats(self, mean: Sequence[float], std: Sequence[float]) -> tuple[Tensor, Tensor]:
        """Per-channel (mean, std), each C, for un-normalizing this tokenizer's images.

        One value applies to every channel; otherwise the values are per channel in order and
        must cover at least the rendered channels (channel 0 for C < 3, the first three else);
        channels past the given values (never rendered) get mean 0, std 1.
        """
        c = self.in_chans
        shown = 3 if c >= 3 else 1
        if len(mean) != len(std) or not (len(mean) == 1 or len(mean) >= shown):
            raise ValueError(
                f"picture mean/std need one value or one per rendered channel (at least {shown} for "
                f"in_chans={c}), got mean={tuple(mean)!r} std={tuple(std)!r}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"picture std values must be > 0, got std={tuple(std)!r}")
        m = [float(mean[0])] * c if len(mean) == 1 else [float(v) for v in mean[:c]]
        sd = [float(std[0])] * c if len(std) == 1 else [float(v) for v in std[:c]]
        pad = c - len(m)
        return torch.tensor(m + [0.0] * pad), torch.tensor(sd + [1.0] * pad)

    def to_pictures(
        self, batch: Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
    ) -> np.ndarray:
        """Normalized images -> uint8 RGB pictures for people to look at.

        Un-normalizes with the dataset's `mean`/`std` (`x * std + mean`), clamps to [0, 1] and
        rounds to 0..255. One or two channels render channel 0 as gray; three or more render
        the first three as RGB (any further channels are not shown). A pixel with a NaN or Inf
        value in a rendered channel is drawn in magenta `NONFINITE_RGB` (`mark_nonfinite` warns).

        Args:
            batch: B×C×H×W images (C = in_chans), as the dataset normalized them.
            mean: per-channel mean of the normalization (one value for all channels, or one per
                channel covering at least the rendered ones).
            std: per-channel std of the normalization, same rule.

        Returns:
            B×H×W×3 uint8 array.
        """
        if not isinstance(batch, Tensor) or batch.ndim != 4 or batch.shape[1] != self.in_chans:
            got = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise ValueError(f"to_pictures expects images B×{self.in_chans}×H×W, got {got}")
        m, s = self._channel_stats(mean, std)
        x = batch.detach().float().cpu()
        x = x * s.view(1, -1, 1, 1) + m.view(1, -1, 1, 1)  # B×C×H×W on [0, 1]
        x = x[:, :3] if self.in_chans >= 3 else x[:, :1].expand(-1, 3, -1, -1)  # B×3×H×W
        bad = (~torch.isfinite(x)).any(dim=1).numpy()  # B×H×W
        rgb = rearrange(x.nan_to_num(0.0).clamp(0.0, 1.0), "b c h w -> b h w c")  # B×H×W×3
        return mark_nonfinite((rgb * 255).round().to(torch.uint8).numpy(), bad, "image pictures")

    def picture_fill(
        self,
        tokens: Tokens,
        level: float = MID_GRAY,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> Tensor:
        """The token value that `to_pictures` (with the same mean/std) renders as flat gray.

        Args:
            tokens: the tokenized batch (gives device and dtype).
            level: the gray on [0, 1] (0 black, 1 white; default the uint8 mid-gray 128).
            mean: as in `to_pictures`.
            std: as in `to_pictures`.

        Returns:
            1×1×p²C values in the target's (p, q, c) order, broadcastable to B×N×p²C.
        """
        m, s = self._channel_stats(mean, std)
        per_channel = (level - m) / s  # C
        ref = tokens.target if tokens.target is not None else tokens.x
        value = per_channel.repeat(self.patch_size**2).to(ref)  # p²C, c fastest as in (p, q, c)
        return value.view(1, 1, -1)


@dataclass
class ImageMAEConfig(MAEConfig):
    """An image MAE: MAEConfig plus the input geometry, the masking strategy and the mode.

    `mode="drop"` is MAE (the decoder fields apply); `mode="replace"` is SimMIM: every token is
    encoded with hidden ones replaced by a [MASK] vector (trunc-normal, std 0.02), and a linear
    head maps each encoder output to the patch's values (the decoder fields do not apply).
    """

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    masking: str = "random"  # a name in core.masking.MASKINGS: "random" (MAE), "block" (BEiT-style), ...
    masking_params: dict[str, Any] = field(default_factory=dict)  # the strategy's options (color, cell, loss_ratio)
    mode: str = "drop"  # "drop" (MAE) or "replace" (SimMIM)
    loss: str = "mse"  # a name in core.losses.LOSSES ("l1": SimMIM)


def build_image_mae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered image preset with overrides (e.g. img_size=32, norm_pix_loss=True)."""
    cfg = resolve_config(IMAGE_PRESETS[name], overrides, what=f"model {name!r}")
    tokenizer = ImageTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
    masking = make_masking(cfg.masking, cfg.mask_ratio, **dict(cfg.masking_params))
    target_norm = TokenNorm() if cfg.norm_pix_loss else None
    out_dim = cfg.patch_size**2 * cfg.in_chans
    if cfg.mode == "replace":
        encoder = TransformerEncoder(encoder_config(cfg))
        encoder.blocks.apply(init_mae_)
        encoder.norm.apply(init_mae_)
        return MaskedAutoencoder(
            tokenizer, encoder, LinearHead(cfg.embed_dim, out_dim), masking,
            mode=ReplaceMode(remask=False, project=False, mask_token_std=0.02),
            target_norm=target_norm, loss=cfg.loss, config=config_dict(name, cfg),
        )
    if cfg.mode != "drop":
        raise ValueError(f"model {name!r}: mode={cfg.mode!r}, expected 'drop' (MAE) or 'replace' (SimMIM)")
    return build_mae(
        cfg,
        tokenizer=tokenizer,
        decoder_pos=FixedSinCos(tokenizer.grid, cfg.decoder_embed_dim),
        head=nn.Linear(cfg.decoder_embed_dim, out_dim),
        masking=masking,
        target_norm=target_norm,
        loss=cfg.loss,
        config=config_dict(name, cfg),
        init=init_mae_,
    )


_TINY = {"img_size": 32, "patch_size": 4, "embed_dim": 128, "depth": 6, "num_heads": 4}
_TINY_DECODER = {"decoder_embed_dim": 64, "decoder_depth": 2, "decoder_num_heads": 4}
# ColorMAE (algorithms.md §7d): MAE ViT-B with green-noise masks at 0.75 and mmpretrain's norm_pix.
_COLORMAE = {"masking": "filtered_noise", "masking_params": {"color": "green"}, "norm_pix_loss": True}
# SimMIM: 32-px cells (2×2 patches at patch 16) hidden at 0.6, ceil-rounded; L1 on hidden patches.
_SIMMIM = {"mode": "replace", "loss": "l1", "masking": "random_cells", "masking_params": {"cell": 2},
           "mask_ratio": 0.6}


IMAGE_PRESETS: dict[str, ImageMAEConfig] = {
    # MAE paper sizes (facebookresearch/mae models_mae.py); decoder 512 wide, 8 blocks, 16 heads.
    "mae_vit_base_patch16": ImageMAEConfig(embed_dim=768, depth=12, num_heads=12),
    "mae_vit_large_patch16": ImageMAEConfig(embed_dim=1024, depth=24, num_heads=16),
    "mae_vit_huge_patch14": ImageMAEConfig(embed_dim=1280, depth=32, num_heads=16, patch_size=14),
    # Not in the paper: ViT-S/16 (timm's vit_small sizes) with the same decoder.
    "mae_vit_small_patch16": ImageMAEConfig(embed_dim=384, depth=12, num_heads=6),
    # CPU-sized: 32×32 inputs, patch 4 (64 tokens); the demo's model.
    "mae_vit_tiny_patch4": ImageMAEConfig(**_TINY, **_TINY_DECODER),
    "colormae_vit_base_patch16": ImageMAEConfig(**_COLORMAE),
    "colormae_vit_tiny_patch4": ImageMAEConfig(**_TINY, **_TINY_DECODER, **_COLORMAE),
    "simmim_vit_base_patch16": ImageMAEConfig(**_SIMMIM),
    # CPU-sized SimMIM: 8×8 patches of 4 px, cells of 2×2 patches (8 px).
    "simmim_vit_tiny_patch4": ImageMAEConfig(**_TINY, **_SIMMIM),
}


def _small(cfg: ImageMAEConfig) -> dict[str, Any]:
    """The smoke test's overrides: the smallest input the preset's masking accepts, one block."""
    cell = int(cfg.masking_params.get("cell", 1)) if cfg.masking == "random_cells" else 1
    return {"img_size": 2 * cfg.patch_size * cell, "depth": 1, "decoder_depth": 1, "mask_ratio": 0.5}

for _name, _cfg in IMAGE_PRESETS.items():
    register_model(
        _name,
        build_image_mae,
        modality="image",
        summary=f"ViT {_cfg.embed_dim}d x{_cfg.depth}, patch {_cfg.patch_size}, {_pair(_cfg.img_size)[0]}px",
        small=_small(_cfg),
    )
