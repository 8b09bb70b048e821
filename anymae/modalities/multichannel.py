"""Multi-channel images (microscopy, remote sensing): ChA-MAEViT (chaudatascience/cha_mae_vit).

Tokenizer: one token per (channel, patch) from a shared patch embedding (Conv3d with kernel
(1, p, p), i.e. one Conv2d applied to every channel), plus the channel's embedding (a learned
D × C_max table, orthogonal init, indexed by channel ids); a learned spatial position table
(trunc-normal 0.02) shared by all channels. Token grid (C, H/p, W/p), channel-major. Target:
each token's p² pixels (norm_pix per (channel, patch) in the presets). The decoder is
channel-aware: the encoder's channel embeddings and the shared position table are added to
every decoder token (the two tables are tied to the encoder's). Masking: dynamic channel &
patch masking (`core.masking.DynamicChannelPatchMasking`, "dcp"). Loss: `(1 - λ_f)` MSE +
`λ_f` Fourier-magnitude L1 (`core.losses.masked_mse_fourier`, λ_f = 0.01).

Variable channel sets: the model config names its channels (`channels`, index = channel id);
a batch (`ChannelStack`) carries the ids of the channels it holds, in any subset and order, so
a model trained on some channels takes any subset at fine-tuning and test time.

Self-supervised part only: the reference trains jointly with supervised terms (a proxy loss or
a cross-entropy on the pooled features, DiChaViT's token/channel diversity regularizers, and
the MAE term weighted 0.99); those are not part of this model. Further deviations: the cls and
memory tokens have no position slots of their own (the reference's table has 1 + M + HW rows;
in the encoder a slot added to a learned token is the same free vector, in the decoder it is a
learned bias on tokens that are never reconstructed), so presets have (1 + M)·D fewer
parameters; batches hold one channel count (no padded channels); the learned position table
is for one input size (the reference interpolates it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from anymae.core.build import MAEConfig, config_dict, encoder_config, resolve_config
from anymae.core.decoders.mae import DecoderConfig, MAEDecoder
from anymae.core.encoder import TransformerEncoder
from anymae.core.losses import TokenNorm
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import LearnedTable
from anymae.core.registry import register_model
from anymae.core.tokens import Tokens
from anymae.core.transformer import init_trunc_normal_
from anymae.modalities.image import MID_GRAY, _pair, mark_nonfinite

# Rendering of standardized values: [low, high] maps to black..white (see `to_pictures`).
RENDER_LOW, RENDER_HIGH = -2.5, 2.5
_GAP = 2  # white pixels between channels in a picture


@dataclass
class ChannelStack:
    """A multi-channel image (C×H×W) or a batch of them (B×C×H×W), with the ids of its channels.

    Attributes:
        pixels: C×H×W (one sample) or B×C×H×W (a batch) float values.
        channels: C int64 channel ids shared by the batch, or B×C ids per sample; id i is the
            model's i-th channel name (`ChannelMAEConfig.channels`).
    """

    pixels: Tensor
    channels: Tensor

    def __post_init__(self) -> None:
        if self.pixels.ndim not in (3, 4):
            raise ValueError(f"ChannelStack.pixels must be C×H×W or B×C×H×W, got shape {tuple(self.pixels.shape)}")
        self.channels = torch.as_tensor(self.channels, dtype=torch.long)
        c = self.pixels.shape[-3]
        ok = self.channels.ndim == 1 or (
            self.channels.ndim == 2 and self.pixels.ndim == 4 and self.channels.shape[0] == self.pixels.shape[0]
        )
        if not ok or self.channels.shape[-1] != c:
            raise ValueError(
                f"ChannelStack.channels must hold {c} ids (C, or B×C for a batch), got shape "
                f"{tuple(self.channels.shape)} for pixels {tuple(self.pixels.shape)}"
            )

    @property
    def shape(self) -> torch.Size:
        """The pixels' shape."""
        return self.pixels.shape

    @property
    def num_channels(self) -> int:
        return int(self.pixels.shape[-3])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ChannelStack:
        return ChannelStack(self.pixels.to(device, non_blocking=non_blocking), self.channels.to(device))

    def ids(self) -> Tensor:
        """B×C channel ids of a batch."""
        if self.pixels.ndim != 4:
            raise ValueError("ids() needs a batch (pixels B×C×H×W)")
        return self.channels.expand(self.pixels.shape[0], -1) if self.channels.ndim == 1 else self.channels

    def select(self, positions: Sequence[int]) -> ChannelStack:
        """The channels at `positions` (indices into this stack's channel axis), in that order."""
        index = torch.as_tensor(list(positions), dtype=torch.long)
        if index.numel() == 0:
            raise ValueError("select() needs at least one channel")
        return ChannelStack(self.pixels.index_select(-3, index.to(self.pixels.device)),
                            self.channels.index_select(-1, index.to(self.channels.device)))


def collate_stacks(items: list[ChannelStack]) -> ChannelStack:
    """One-sample stacks -> a batch; ids stay C when every sample has the same channels, else B×C.

    Raises:
        ValueError: samples with different channel counts or sizes (naming the first mismatch).
    """
    first = items[0]
    for i, item in enumerate(items):
        if item.pixels.shape != first.pixels.shape:
            raise ValueError(
                f"cannot batch multi-channel sample {i} of shape {tuple(item.pixels.shape)} with sample 0 of "
                f"shape {tuple(first.pixels.shape)}: a batch needs one channel count and size (padding of "
                "channels is not supported)"
            )
    pixels = torch.stack([it.pixels for it in items])  # B×C×H×W
    ids = torch.stack([it.channels for it in items])  # B×C
    same = bool((ids == ids[:1]).all())
    return ChannelStack(pixels, ids[0] if same else ids)


def channel_ids(names: Sequence[str], known: Sequence[str], *, where: str = "channels") -> list[int]:
    """Channel names -> ids (positions in `known`); an unknown name is an error listing the known ones."""
    index = {n: i for i, n in enumerate(known)}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ValueError(f"{where}: unknown channel name(s) {unknown}; the model's channels are {list(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: channel names repeat: {list(names)}")
    return [index[n] for n in names]


class SharedSpatialPos(nn.Module):
    """A learned spatial table (h·w rows, trunc-normal 0.02) repeated for each channel.

    `forward(grid=(C, h, w)) -> 1×(C·h·w)×D`, channel-major like the tokens.
    """

    def __init__(self, grid_hw: tuple[int, int], dim: int) -> None:
        super().__init__()
        self.spatial = LearnedTable(grid_hw, dim)

    def forward(self, grid: tuple[int, ...], coords: Tensor | None = None) -> Tensor:
        table = self.spatial(tuple(grid[1:]))  # 1×(h·w)×D
        return repeat(table, "1 n d -> 1 (c n) d", c=grid[0])


class ChannelTokenizer(nn.Module):
    """`ChannelStack` (or B×C×H×W with channels 0..C-1) -> one token per (channel, patch).

    Tokens: Conv3d(1, D, (1, p, p)) over every channel + the channel's embedding; target: the
    token's p² pixels in (p, q) order; grid (C, H/p, W/p); coords: B×N×1 channel id per token
    (used by the decoder's positions).

    Args:
        img_size: H, W of the inputs (the position table's size).
        patch_size: p.
        channels: the model's channel names; id i is `channels[i]` (C_max = len(channels)).
        dim: D.
    """

    def __init__(self, img_size: int | tuple[int, int], patch_size: int, channels: Sequence[str], dim: int) -> None:
        super().__init__()
        self.img_size, self.patch_size, self.dim = _pair(img_size), patch_size, dim
        self.channels = tuple(channels)
        if not self.channels:
            raise ValueError("a multi-channel model needs channel names (config field `channels`)")
        h, w = self.img_size
        if h % patch_size or w % patch_size:
            raise ValueError(f"image size {h}×{w} is not divisible by the patch size {patch_size}")
        self.grid_hw = (h // patch_size, w // patch_size)
        self.proj = nn.Conv3d(1, dim, kernel_size=(1, patch_size, patch_size), stride=(1, patch_size, patch_size))
        self.channel_embed = nn.Parameter(torch.empty(dim, len(self.channels)))  # D×C_max, orthogonal columns
        nn.init.orthogonal_(self.channel_embed)
        self.pos_embed = SharedSpatialPos(self.grid_hw, dim)

    def _as_stack(self, batch: Any) -> ChannelStack:
        if isinstance(batch, Tensor):
            batch = ChannelStack(batch, torch.arange(batch.shape[-3], device=batch.device))
        if not isinstance(batch, ChannelStack) or batch.pixels.ndim != 4:
            got = tuple(batch.shape) if hasattr(batch, "shape") else type(batch).__name__
            raise ValueError(f"expected a ChannelStack batch (pixels B×C×H×W), got {got}")
        if tuple(batch.pixels.shape[-2:]) != self.img_size:
            raise ValueError(
                f"multi-channel input of size {tuple(batch.pixels.shape[-2:])}, expected {self.img_size} "
                f"(the model's img_size; the learned position table is for that size)"
            )
        ids = batch.channels
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(self.channels)):
            raise ValueError(
                f"channel ids {sorted(set(ids.flatten().tolist()))} out of range: the model knows "
                f"{len(self.channels)} channels {list(self.channels)}"
            )
        return batch

    def channel_vectors(self, ids: Tensor) -> Tensor:
        """Channel embeddings for ids of any shape S -> S×D."""
        return self.channel_embed.t()[ids]

    def forward(self, batch: ChannelStack | Tensor) -> Tokens:
        stack = self._as_stack(batch)
        pixels, ids = stack.pixels, stack.ids()  # B×C×H×W, B×C
        x = self.proj(pixels.unsqueeze(1))  # B×D×C×h×w
        x = rearrange(x, "b d c h w -> b c (h w) d") + self.channel_vectors(ids).unsqueeze(2)  # B×C×hw×D
        c, (h, w) = pixels.shape[1], self.grid_hw
        coords = repeat(ids, "b c -> b (c n) 1", n=h * w)  # B×N×1 channel id per token
        target = rearrange(pixels, "b c (h p) (w q) -> b (c h w) (p q)", p=self.patch_size, q=self.patch_size)
        return Tokens(
            x=rearrange(x, "b c n d -> b (c n) d"), target=target, grid=(c, h, w), coords=coords,
            extra={"channels": stack.channels},
        )

    def untokenize(self, values: Tensor, tokens: Tokens) -> ChannelStack:
        """B×N×p² -> ChannelStack with the tokens' channel ids."""
        c, h, w = tokens.grid
        p = self.patch_size
        pixels = rearrange(values, "b (c h w) (p q) -> b c (h p) (w q)", c=c, h=h, w=w, p=p, q=p)
        return ChannelStack(pixels, (tokens.extra or {})["channels"])

    def example(self, batch_size: int) -> ChannelStack:
        """A random batch holding every channel of the model."""
        return ChannelStack(torch.randn(batch_size, len(self.channels), *self.img_size), torch.arange(len(self.channels)))

    def to_pictures(self, batch: ChannelStack, low: float = RENDER_LOW, high: float = RENDER_HIGH) -> np.ndarray:
        """Channels side by side in gray (2 white pixels between them): B×H×(C·W + 2(C-1))×3 uint8.

        A value v renders as the gray `(v - low) / (high - low)` clamped to [0, 1]; the defaults
        suit standardized channels (mean 0, std 1: ±2.5 std). NaN and ±Inf values are drawn in
        magenta (`image.mark_nonfinite`, which warns), not as black or white.
        """
        if not isinstance(batch, ChannelStack) or batch.pixels.ndim != 4:
            raise ValueError(f"to_pictures expects a ChannelStack batch, got {type(batch).__name__}")
        if not high > low:
            raise ValueError(f"to_pictures needs high > low, got low={low}, high={high}")
        raw = batch.pixels.detach().float().cpu()  # B×C×H×W
        x = ((raw.nan_to_num(0.0) - low) / (high - low)).clamp(0.0, 1.0)  # B×C×H×W
        b, c, h, w = x.shape
        canvas = torch.ones(b, h, c * w + _GAP * (c - 1))  # B×H×W'
        bad = torch.zeros(b, h, c * w + _GAP * (c - 1), dtype=torch.bool)  # B×H×W'
        for i in range(c):
            canvas[:, :, i * (w + _GAP) : i * (w + _GAP) + w] = x[:, i]
            bad[:, :, i * (w + _GAP) : i * (w + _GAP) + w] = ~torch.isfinite(raw[:, i])
        gray = (canvas * 255).round().to(torch.uint8)
        return mark_nonfinite(repeat(gray, "b h w -> b h w k", k=3).numpy(), bad.numpy(), "multi-channel pictures")

    def picture_fill(
        self, tokens: Tokens, level: float = MID_GRAY, low: float = RENDER_LOW, high: float = RENDER_HIGH
    ) -> Tensor:
        """The token value that `to_pictures` renders as the gray `level`: 1×1×p²."""
        ref = tokens.target if tokens.target is not None else tokens.x
        return torch.full((1, 1, self.patch_size**2), low + level * (high - low)).to(ref)


class ChannelAwareDecoderPos(nn.Module):
    """Decoder positions of ChA-MAEViT: the encoder's shared position table + each token's channel
    embedding (tied to the tokenizer's tables, which it reads without owning them).

    `forward(grid, coords: B×N×1 channel ids) -> B×N×D`.
    """

    def __init__(self, tokenizer: ChannelTokenizer) -> None:
        super().__init__()
        object.__setattr__(self, "_tokenizer", tokenizer)  # not a submodule: no duplicate parameter names

    def forward(self, grid: tuple[int, ...], coords: Tensor | None = None) -> Tensor:
        if coords is None:
            raise ValueError("channel-aware decoder positions need the tokens' channel ids (tokens.coords)")
        tok: ChannelTokenizer = self._tokenizer  # type: ignore[assignment]
        return tok.pos_embed(grid) + tok.channel_vectors(coords[..., 0])  # B×N×D


@dataclass
class ChannelMAEConfig(MAEConfig):
    """ChA-MAEViT: MAEConfig plus channels, memory tokens, DCP masking and the Fourier term.

    `decoder_embed_dim=None` means the encoder width (the reference's `embed_dim: ~`); the
    channel-aware decoder adds the encoder's tables, so no other width is accepted.
    """

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    channels: tuple[str, ...] = ()
    num_registers: int = 4  # memory tokens
    layer_scale: float | None = 1.0
    decoder_embed_dim: int | None = None  # type: ignore[assignment]
    decoder_qkv_bias: bool = False
    masking: str = "dcp"
    p_patch: float = 0.5
    p_channel: float = 0.5
    at_least_one_channel: bool = False
    fourier_weight: float = 0.01
    norm_pix_loss: bool = True


def build_channel_mae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered ChA-MAEViT preset with overrides (e.g. channels=[...], img_size=64)."""
    cfg = resolve_config(CHANNEL_PRESETS[name], overrides, what=f"model {name!r}")
    if cfg.decoder_embed_dim not in (None, cfg.embed_dim):
        raise ValueError(
            f"model {name!r}: decoder_embed_dim={cfg.decoder_embed_dim} but the channel-aware decoder adds the "
            f"encoder's {cfg.embed_dim}-wide channel and position tables; leave it null (= embed_dim)"
        )
    tokenizer = ChannelTokenizer(cfg.img_size, cfg.patch_size, cfg.channels, cfg.embed_dim)
    encoder = TransformerEncoder(encoder_config(cfg, num_registers=cfg.num_registers, layer_scale=cfg.layer_scale))
    dec_cfg = DecoderConfig(
        dim=cfg.embed_dim, depth=cfg.decoder_depth, num_heads=cfg.decoder_num_heads, mlp_ratio=cfg.mlp_ratio,
        qkv_bias=cfg.decoder_qkv_bias, keep_prefix=True,
    )
    head = nn.Linear(cfg.embed_dim, cfg.patch_size**2)
    decoder = MAEDecoder(dec_cfg, cfg.embed_dim, ChannelAwareDecoderPos(tokenizer), head)
    for part in (encoder.blocks, encoder.norm, decoder):
        part.apply(init_trunc_normal_)
    params = (
        {"p_patch": cfg.p_patch, "p_channel": cfg.p_channel, "at_least_one_channel": cfg.at_least_one_channel}
        if cfg.masking == "dcp" else {}
    )
    fourier = cfg.fourier_weight > 0
    return MaskedAutoencoder(
        tokenizer, encoder, decoder, make_masking(cfg.masking, cfg.mask_ratio, **params),
        target_norm=TokenNorm() if cfg.norm_pix_loss else None,
        loss="mse_fourier" if fourier else "mse",
        loss_params={"fourier_weight": cfg.fourier_weight} if fourier else None,
        config=config_dict(name, cfg),
    )


CHAMMI_CHANNELS: tuple[str, ...] = (
    "allen_nucleus", "allen_membrane", "allen_protein",
    "hpa_microtubules", "hpa_protein", "hpa_nucleus", "hpa_er",
    "cp_nucleus", "cp_er", "cp_rna", "cp_golgi", "cp_mito",
)  # fmt: skip  (the reference's channel ids 0..11)
JUMPCP_CHANNELS: tuple[str, ...] = tuple(f"ch{i}" for i in range(8))  # reference ids 0..7 (5 fluorescence + 3 brightfield)
SO2SAT_CHANNELS: tuple[str, ...] = tuple(f"s1_{i}" for i in range(8)) + tuple(
    f"s2_{b}" for b in ("b2", "b3", "b4", "b5", "b6", "b7", "b8", "b8a", "b11", "b12")
)  # 8 Sentinel-1 + 10 Sentinel-2 bands, reference ids 0..17

# ViT-S as the scripts: 384 wide, 6 heads, depth 11, LayerScale 1, qkv bias; decoder depth 1,
# 16 heads, encoder width, no qkv bias (configs/model/multi_channel_vit.yaml).
_VIT_S = {"embed_dim": 384, "depth": 11, "num_heads": 6, "decoder_depth": 1, "decoder_num_heads": 16}

CHANNEL_PRESETS: dict[str, ChannelMAEConfig] = {
    # CHAMMI (alternate DCP: p_patch = p_channel = 0.5, ratio 0.75), 4 memory tokens, patch 16.
    "chamaevit_small_patch16_chammi": ChannelMAEConfig(**_VIT_S, channels=CHAMMI_CHANNELS, num_registers=4),
    # JUMP-CP (its script: alternate DCP with ratio 0.25), 4 memory tokens, patch 16.
    "chamaevit_small_patch16_jumpcp": ChannelMAEConfig(
        **_VIT_S, channels=JUMPCP_CHANNELS, num_registers=4, mask_ratio=0.25
    ),
    # So2Sat (combination DCP: always both, ratio 0.25), 32×32 inputs, patch 8, 8 memory tokens.
    "chamaevit_small_patch8_so2sat": ChannelMAEConfig(
        **_VIT_S, img_size=32, patch_size=8, channels=SO2SAT_CHANNELS, num_registers=8,
        p_patch=0.0, p_channel=0.0, mask_ratio=0.25,
    ),
    # CPU-sized: 32×32, patch 8 (16 patches per channel), 5 channels, 96 wide, 4 blocks.
    "chamaevit_tiny_patch8": ChannelMAEConfig(
        img_size=32, patch_size=8, channels=tuple(f"ch{i}" for i in range(5)), embed_dim=96, depth=4,
        num_heads=4, decoder_depth=1, decoder_num_heads=4, num_registers=2,
    ),
}

for _name, _cfg in CHANNEL_PRESETS.items():
    register_model(
        _name,
        build_channel_mae,
        modality="multichannel",
        summary=f"ChA-MAEViT {_cfg.embed_dim}d x{_cfg.depth}, patch {_cfg.patch_size}, {len(_cfg.channels)} channels, "
        f"{_pair(_cfg.img_size)[0]}px",
        small={"img_size": 2 * _cfg.patch_size, "depth": 1, "decoder_depth": 1},
    )
