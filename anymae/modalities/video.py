"""Video: tubelet tokens, per-tubelet normalized pixel targets, VideoMAE / VideoMAE V2 presets.

Tokenizer: a Conv3d with kernel = stride = (tubelet, patch, patch) over B×C×T×H×W clips
(VideoMAE's `PatchEmbed`; 16×224² at 2×16×16 -> 8×14×14 = 1568 tokens, flattened (t, h, w)).
Positions: VideoMAE's fixed 1-D sinusoid table over the flattened token index (sin/cos
interleaved, `get_sinusoid_encoding_table`), or a separable 3-D sin-cos table
(`pos_embed="separable"`). No cls token.

Target: the clip is un-normalized to [0, 1] pixels with the data's mean/std (ImageNet by
default) and cut into tubelets with values in (t, p, q, c) order; with `norm_pix_loss` each
tubelet is normalized per colour channel, `(x - mean) / (std + 1e-6)` over its t·p·q pixels
(`TokenNorm(channels=C, mode="std")`), exactly as VideoMAE / HF `VideoMAEForPreTraining`.

Attention: VideoMAE's blocks have a q bias and a v bias but no k bias. `use_qv_bias` swaps each
timm block's fused qkv Linear for `QVBiasLinear` (weight + `q_bias` + `v_bias`, a zero k bias
built on the fly), which makes parameter counts and checkpoints match the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
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
from anymae.modalities.image import IMAGENET_MEAN, IMAGENET_STD, MID_GRAY

PosEmbed = Literal["flat", "separable"]


def tubeletify(clips: Tensor, tubelet: int, patch: int) -> Tensor:
    """B×C×T×H×W -> B×N×(t·p·q·C), tokens (t, h, w) row-major, values in (t, p, q, c) order."""
    return rearrange(clips, "b c (t u) (h p) (w q) -> b (t h w) (u p q c)", u=tubelet, p=patch, q=patch)


def untubeletify(values: Tensor, tubelet: int, patch: int, grid: tuple[int, int, int], channels: int) -> Tensor:
    """B×N×(t·p·q·C) -> B×C×T×H×W, the inverse of `tubeletify`."""
    t, h, w = grid
    return rearrange(
        values, "b (t h w) (u p q c) -> b c (t u) (h p) (w q)", t=t, h=h, w=w, u=tubelet, p=patch, q=patch, c=channels
    )


class QVBiasLinear(nn.Module):
    """The fused qkv projection of VideoMAE / BEiT attention: biases on q and v only.

    Parameters `weight` (3D'×D), `q_bias` (D'), `v_bias` (D'); the k bias is a zero vector, not
    a parameter (VideoMAE: `cat(q_bias, zeros_like(v_bias), v_bias)`).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        if out_features % 3:
            raise ValueError(f"a fused qkv projection needs out_features divisible by 3, got {out_features}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.q_bias = nn.Parameter(torch.zeros(out_features // 3))
        self.v_bias = nn.Parameter(torch.zeros(out_features // 3))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        """x: B×L×D -> B×L×3D'."""
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])  # 3D'
        return F.linear(x, self.weight, bias)


def use_qv_bias(blocks: nn.ModuleList) -> None:
    """Replace each timm block's `attn.qkv` Linear by a `QVBiasLinear` (same weight, q/v biases kept)."""
    for block in blocks:
        old = block.attn.qkv
        new = QVBiasLinear(old.in_features, old.out_features).to(old.weight)
        with torch.no_grad():
            new.weight.copy_(old.weight)
            if old.bias is not None:
                d = old.out_features // 3
                new.q_bias.copy_(old.bias[:d])
                new.v_bias.copy_(old.bias[2 * d :])
        block.attn.qkv = new


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class VideoTokenizer(nn.Module):
    """B×C×T×H×W clips -> tubelet tokens (B×N×D), [0, 1]-pixel targets (B×N×tp²C), grid (T', H', W').

    Args:
        img_size: frame size (H, W) or one int.
        num_frames: T, frames per clip.
        patch_size: spatial patch p.
        tubelet_size: frames per token.
        in_chans: C.
        dim: embedding width.
        pos_embed: "flat" (VideoMAE's 1-D table over the flattened index) or "separable" (3-D).
        mean, std: the data's per-channel normalization (targets are un-normalized with it).
    """

    def __init__(
        self,
        img_size: int | Sequence[int],
        num_frames: int,
        patch_size: int,
        tubelet_size: int,
        in_chans: int,
        dim: int,
        *,
        pos_embed: PosEmbed = "flat",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.img_size, self.num_frames = _pair(img_size), num_frames
        self.patch_size, self.tubelet_size, self.in_chans, self.dim = patch_size, tubelet_size, in_chans, dim
        if len(mean) != in_chans or len(std) != in_chans or any(s <= 0 for s in std):
            raise ValueError(f"mean/std need {in_chans} values (one per channel, std > 0), got {mean!r} / {std!r}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.grid = self._grid(num_frames, *self.img_size)
        kernel = (tubelet_size, patch_size, patch_size)
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(in_chans, dim, kernel_size=kernel, stride=kernel)  # default init, as VideoMAE
        if pos_embed not in ("flat", "separable"):
            raise ValueError(f"pos_embed={pos_embed!r}: expected 'flat' (VideoMAE) or 'separable'")
        self.pos_kind: PosEmbed = pos_embed
        self.pos_embed = make_video_pos(self.grid, dim, pos_embed)

    def _grid(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        p, u = self.patch_size, self.tubelet_size
        if t % u or h % p or w % p or t < u or h < p or w < p:
            raise ValueError(
                f"clip of {t} frames at {h}×{w} does not divide into tubelets {u}×{p}×{p} "
                f"(num_frames must be a multiple of tubelet_size, sizes multiples of patch_size)"
            )
        return t // u, h // p, w // p

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, std) each 1×C×1×1×1 on `like`'s device and dtype."""
        shape = (1, self.in_chans, 1, 1, 1)
        return (torch.tensor(self.mean).view(shape).to(like), torch.tensor(self.std).view(shape).to(like))

    def forward(self, clips: Tensor) -> Tokens:
        if clips.ndim != 5 or clips.shape[1] != self.in_chans:
            raise ValueError(
                f"expected clips of shape B×{self.in_chans}×T×H×W (channels first, then frames), "
                f"got a tensor of shape {tuple(clips.shape)}"
            )
        grid = self._grid(*clips.shape[2:])
        x = rearrange(self.patch_embed.proj(clips), "b d t h w -> b (t h w) d")  # B×N×D
        mean, std = self._stats(clips)
        with torch.no_grad():
            target = tubeletify(clips * std + mean, self.tubelet_size, self.patch_size)  # B×N×P on [0, 1]
        return Tokens(x=x, target=target, grid=grid)

    def untokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        """B×N×P [0, 1]-pixel values -> normalized B×C×T×H×W clips (the dataset's normalization)."""
        clips = untubeletify(values, self.tubelet_size, self.patch_size, tokens.grid, self.in_chans)  # type: ignore[arg-type]
        mean, std = self._stats(clips)
        return (clips - mean) / std

    def example(self, batch_size: int) -> Tensor:
        """A random batch at the configured geometry: B×C×T×H×W."""
        return torch.randn(batch_size, self.in_chans, self.num_frames, *self.img_size)

    def to_pictures(
        self,
        batch: Tensor,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        frame_step: int = 1,
    ) -> np.ndarray:
        """Normalized clips -> one uint8 RGB picture per clip, its frames side by side.

        Args:
            batch: B×C×T×H×W clips as the dataset normalized them.
            mean, std: the normalization (default: this tokenizer's).
            frame_step: show every `frame_step`-th frame.

        Returns:
            B×H×(T'·W)×3 uint8 array, T' = ceil(T / frame_step); 1-2 channels render channel 0 gray.
        """
        if not isinstance(batch, Tensor) or batch.ndim != 5 or batch.shape[1] != self.in_chans:
            got = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise ValueError(f"to_pictures expects clips B×{self.in_chans}×T×H×W, got {got}")
        m = torch.tensor(self.mean if mean is None else mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        s = torch.tensor(self.std if std is None else std, dtype=torch.float32).view(1, -1, 1, 1, 1)
        x = batch.detach().float().cpu()[:, :, ::frame_step] * s + m  # B×C×T'×H×W on [0, 1]
        x = x[:, :3] if self.in_chans >= 3 else x[:, :1].expand(-1, 3, -1, -1, -1)
        strip = rearrange(x.clamp(0.0, 1.0), "b c t h w -> b h (t w) c")  # B×H×(T'·W)×3
        return (strip * 255).round().to(torch.uint8).numpy()

    def picture_fill(self, tokens: Tokens, level: float = MID_GRAY, **render: Any) -> Tensor:
        """The target value rendered as flat gray `level`: targets are [0, 1] pixels -> 1×1×P."""
        ref = tokens.target if tokens.target is not None else tokens.x
        return torch.full((1, 1, ref.shape[-1]), float(level), dtype=ref.dtype, device=ref.device)


def make_video_pos(grid: tuple[int, int, int], dim: int, kind: PosEmbed) -> FixedSinCos:
    """VideoMAE's flat interleaved sinusoid table, or a separable 3-D sin-cos table."""
    return FixedSinCos(grid, dim, flat=True, layout="interleave") if kind == "flat" else FixedSinCos(grid, dim)


@dataclass
class VideoMAEConfig(MAEConfig):
    """A video MAE: MAEConfig plus clip geometry, tube masking and VideoMAE V2's decoder masking.

    `qkv_bias=True` means VideoMAE's q and v biases (no k bias); False means no biases.
    """

    img_size: int | tuple[int, int] = 224
    num_frames: int = 16
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    pos_embed: PosEmbed = "flat"
    masking: str = "tube"
    mask_ratio: float = 0.9
    decoder_masking: str | None = None  # "running_cell" for VideoMAE V2's dual masking
    decoder_mask_ratio: float = 0.5
    norm_pix_loss: bool = True  # VideoMAE's default (`normlize_target`)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    decoder_depth: int = 4
    decoder_embed_dim: int = 384
    decoder_num_heads: int = 6


def build_video_mae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered video preset with overrides (e.g. num_frames=8, mask_ratio=0.75)."""
    cfg = resolve_config(VIDEO_PRESETS[name], overrides, what=f"model {name!r}")
    tokenizer = VideoTokenizer(
        cfg.img_size, cfg.num_frames, cfg.patch_size, cfg.tubelet_size, cfg.in_chans, cfg.embed_dim,
        pos_embed=cfg.pos_embed, mean=cfg.mean, std=cfg.std,
    )  # fmt: skip
    out = cfg.tubelet_size * cfg.patch_size**2 * cfg.in_chans
    model = build_mae(
        cfg,
        tokenizer=tokenizer,
        decoder_pos=make_video_pos(tokenizer.grid, cfg.decoder_embed_dim, cfg.pos_embed),
        head=nn.Linear(cfg.decoder_embed_dim, out),
        masking=make_masking(cfg.masking, cfg.mask_ratio),
        decoder_masking=make_masking(cfg.decoder_masking, cfg.decoder_mask_ratio) if cfg.decoder_masking else None,
        target_norm=TokenNorm(channels=cfg.in_chans, mode="std") if cfg.norm_pix_loss else None,
        encoder_extra={"cls_token": False},
        decoder_extra={"project_bias": False, "keep_prefix": False},
        config=config_dict(name, cfg),
        init=init_mae_,
    )
    if cfg.qkv_bias:
        use_qv_bias(model.encoder.blocks)
        use_qv_bias(model.decoder.blocks)
    return model


_S: dict[str, Any] = {"embed_dim": 384, "depth": 12, "num_heads": 6, "decoder_embed_dim": 192, "decoder_num_heads": 3}
_B: dict[str, Any] = {"embed_dim": 768, "depth": 12, "num_heads": 12, "decoder_embed_dim": 384, "decoder_num_heads": 6}
_L: dict[str, Any] = {"embed_dim": 1024, "depth": 24, "num_heads": 16, "decoder_embed_dim": 512, "decoder_num_heads": 8}
_H: dict[str, Any] = {"embed_dim": 1280, "depth": 32, "num_heads": 16, "decoder_embed_dim": 640, "decoder_num_heads": 8}
_V2: dict[str, Any] = {"decoder_masking": "running_cell", "decoder_mask_ratio": 0.5}

VIDEO_PRESETS: dict[str, VideoMAEConfig] = {
    # VideoMAE (MCG-NJU/VideoMAE modeling_pretrain.py; decoder depth 4 as the scripts), 16×224², 2×16×16.
    "videomae_vit_small_patch16": VideoMAEConfig(**_S),
    "videomae_vit_base_patch16": VideoMAEConfig(**_B),
    "videomae_vit_large_patch16": VideoMAEConfig(**_L),
    "videomae_vit_huge_patch16": VideoMAEConfig(**_H),
    # VideoMAE V2 (OpenGVLab/VideoMAEv2): tube 0.9 + running-cell decoder masking 0.5.
    "videomae2_vit_base_patch16": VideoMAEConfig(**_B, **_V2),
    "videomae2_vit_giant_patch14": VideoMAEConfig(
        embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11, patch_size=14,
        decoder_embed_dim=512, decoder_num_heads=8, **_V2,
    ),
    # CPU-sized: 8 frames at 32², tubelets 2×8×8 -> 4×4×4 = 64 tokens; tube masking 0.75.
    "videomae_vit_tiny_patch8": VideoMAEConfig(
        img_size=32, num_frames=8, patch_size=8, embed_dim=96, depth=4, num_heads=4,
        decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4, mask_ratio=0.75,
    ),
}

for _name, _cfg in VIDEO_PRESETS.items():
    register_model(
        _name,
        build_video_mae,
        modality="video",
        summary=(
            f"ViT {_cfg.embed_dim}d x{_cfg.depth}, tubelet {_cfg.tubelet_size}x{_cfg.patch_size}², "
            f"{_cfg.num_frames}x{_pair(_cfg.img_size)[0]}px" + (", dual masking" if _cfg.decoder_masking else "")
        ),
        small={
            "img_size": 2 * _cfg.patch_size, "num_frames": 2 * _cfg.tubelet_size, "depth": 1, "decoder_depth": 1,
            "mask_ratio": 0.5,
        },
    )  # fmt: skip
