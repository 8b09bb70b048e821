"""HOG targets: histograms of oriented gradients per 8×8 cell, laid out per patch (MaskFeat, DMJD).

`hog_cells(images)` computes per-channel, per-cell orientation histograms; `HOGTargets` is the
`TargetProvider` that turns them into B×N×P per-patch targets in the skeleton's token order.

Two gradient/binning conventions, both taken from the reference code:

- `style="maskfeat"` (facebookresearch/SlowFast `operators.HOGLayerC`, used by MaskFeat):
  reflect-pad by 1, per-channel 3×3 cross-correlation with
  `kx = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]` (gx = left - right) and `ky = kx.T`
  (gy = top - bottom); magnitude `sqrt(gx² + gy²)`; orientation `atan2(gx, gy)` (note the
  argument order: x first), scaled `phase / π · bins` (in [-bins, bins]) and binned
  `floor(phase) mod bins` (unsigned: θ and θ+π share a bin, each bin is π/bins wide); magnitudes
  optionally weighted by a tiled 2-D gaussian window (`gaussian_window` = kernel length, std
  `gaussian_window // 2`, normalized to sum 1; MaskFeat's image model uses 0 = off);
  magnitude-weighted scatter into `bins`, **summed** over each cell×cell block.
- `style="skimage"` (mx-mark/DMJD `util/hog_tensor.py`, a port of skimage's HOG histograms):
  central differences `g_row[i] = x[i+1] - x[i-1]`, `g_col[j] = x[j+1] - x[j-1]`, zero on the
  first/last row (column); magnitude `hypot(g_col, g_row)`; orientation
  `deg(atan2(g_row, g_col)) mod 180`, bin `floor(orientation / (180 / bins))` (an orientation
  that rounds to exactly 180° falls in no bin, as in the reference); the histogram is the
  **mean** over the cell (sum / cell²).

Per-cell normalization over the `bins` values of one channel (`norm`):
`"l2"`: MaskFeat's `F.normalize(p=2, dim=bins)` (eps 1e-12); `"layernorm"`: DMJD's
`LayerNorm(bins, elementwise_affine=False)` (eps 1e-5, biased variance); `"none"`.

Per-patch layout (`layout`), for a patch of (p/cell)² cells:
`"cells_bins_channels"`: DMJD's `b c (ph dh) (pw dw) d -> b (ph pw) (dh dw d c)` (cells row-major,
then bins, then channels: at patch 16, 2·2·9·3 = 108 values); `"channels_bins_cells"`: MaskFeat's
(`flatten(1, 2)` of B×C×bins×h×w then a per-patch unfold: channels, then bins, then cells
row-major). The order only matters for matching a reference head's weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812
from einops import rearrange
from torch import Tensor, nn

from anymae.core.targets import TargetProvider
from anymae.core.tokens import Tokens

HOGNorm = Literal["l2", "layernorm", "none"]
HOGStyle = Literal["maskfeat", "skimage"]
HOGLayout = Literal["cells_bins_channels", "channels_bins_cells"]
_NORMS = ("l2", "layernorm", "none")
_STYLES = ("maskfeat", "skimage")
_LAYOUTS = ("cells_bins_channels", "channels_bins_cells")


def gaussian_window(length: int) -> Tensor:
    """length×length gaussian kernel, std `length // 2`, centred, normalized to sum 1 (HOGLayerC's
    `get_gkern`)."""
    n = torch.arange(length, dtype=torch.float64)
    n = (n - n.mean()) / (length // 2)
    w = torch.exp(-0.5 * n**2)
    kern = torch.outer(w, w)
    return (kern / kern.sum()).float()


def _gradients_maskfeat(x: Tensor) -> tuple[Tensor, Tensor]:
    """x: B×C×H×W -> (gx, gy), each B×C×H×W (Sobel-like, reflect padding; module doc)."""
    c = x.shape[1]
    kx = x.new_tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    wx = kx.view(1, 1, 3, 3).expand(c, 1, 3, 3)  # C×1×3×3 depthwise
    wy = kx.t().contiguous().view(1, 1, 3, 3).expand(c, 1, 3, 3)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")  # B×C×(H+2)×(W+2)
    return F.conv2d(padded, wx, groups=c), F.conv2d(padded, wy, groups=c)


def _bins_maskfeat(x: Tensor, bins: int, window: int) -> tuple[Tensor, Tensor]:
    """x: B×C×H×W -> (bin index B×C×H×W int64 in [0, bins), magnitude B×C×H×W)."""
    gx, gy = _gradients_maskfeat(x)
    mag = torch.stack([gx, gy], dim=-1).norm(dim=-1)
    phase = torch.atan2(gx, gy) / math.pi * bins  # in [-bins, bins]
    if window:
        h, w = mag.shape[-2:]
        if h % window or w % window:
            raise ValueError(f"hog gaussian_window={window} must divide the image size {h}×{w}")
        kern = gaussian_window(window).to(mag).repeat(h // window, w // window)  # H×W
        mag = mag * kern
    return phase.floor().long() % bins, mag


def _bins_skimage(x: Tensor, bins: int) -> tuple[Tensor, Tensor]:
    """x: B×C×H×W -> (bin index B×C×H×W int64, possibly == bins (no bin), magnitude B×C×H×W)."""
    g_row = torch.zeros_like(x)
    g_row[:, :, 1:-1, :] = x[:, :, 2:, :] - x[:, :, :-2, :]
    g_col = torch.zeros_like(x)
    g_col[:, :, :, 1:-1] = x[:, :, :, 2:] - x[:, :, :, :-2]
    mag = torch.hypot(g_col, g_row)
    orientation = torch.rad2deg(torch.atan2(g_row, g_col)) % 180
    return torch.div(orientation, 180.0 / bins, rounding_mode="floor").long(), mag


@torch.no_grad()
def hog_cells(
    images: Tensor,
    *,
    bins: int = 9,
    cell: int = 8,
    norm: HOGNorm = "l2",
    style: HOGStyle = "maskfeat",
    gaussian_window: int = 0,
) -> Tensor:
    """Per-channel HOG of each cell (conventions in the module doc).

    Args:
        images: B×C×H×W, H and W multiples of `cell`.
        bins: orientation bins over 180° (unsigned).
        cell: cell side in pixels (MaskFeat's `pool`, DMJD's `pixels_per_cell`).
        norm: per-cell normalization over the bins: "l2" (MaskFeat), "layernorm" (DMJD), "none".
        style: gradient/binning convention, "maskfeat" (HOGLayerC) or "skimage" (DMJD).
        gaussian_window: "maskfeat" only: gaussian magnitude window length (0 = off).

    Returns:
        B×C×bins×(H/cell)×(W/cell) float32 (computed in float32 even under autocast).
    """
    if images.ndim != 4:
        raise ValueError(f"hog_cells expects images B×C×H×W, got shape {tuple(images.shape)}")
    if norm not in _NORMS:
        raise ValueError(f"hog norm must be one of {_NORMS}, got {norm!r}")
    if style not in _STYLES:
        raise ValueError(f"hog style must be one of {_STYLES}, got {style!r}")
    if bins < 1 or cell < 1:
        raise ValueError(f"hog bins and cell must be >= 1, got bins={bins} cell={cell}")
    h, w = images.shape[-2:]
    if h % cell or w % cell:
        raise ValueError(f"hog cell={cell} must divide the image size {h}×{w}")
    if style == "skimage" and gaussian_window:
        raise ValueError("hog gaussian_window is a style='maskfeat' option (DMJD's HOG has none)")
    x = images.float()
    with torch.autocast(device_type=x.device.type, enabled=False):  # float32 gradients under bf16 autocast
        if style == "maskfeat":
            idx, mag = _bins_maskfeat(x, bins, gaussian_window)
        else:
            idx, mag = _bins_skimage(x, bins)
    onehot = idx.unsqueeze(2) == torch.arange(bins, device=x.device).view(1, 1, bins, 1, 1)  # B×C×bins×H×W
    per_pixel = onehot.to(mag.dtype) * mag.unsqueeze(2)  # B×C×bins×H×W
    hist = rearrange(per_pixel, "b c k (hc p) (wc q) -> b c k hc wc (p q)", p=cell, q=cell).sum(-1)
    if style == "skimage":
        hist = hist / (cell * cell)  # DMJD averages over the cell
    if norm == "l2":
        hist = F.normalize(hist, p=2, dim=2)
    elif norm == "layernorm":
        hist = rearrange(hist, "b c k hc wc -> b c hc wc k")
        hist = F.layer_norm(hist, (bins,), eps=1e-5)
        hist = rearrange(hist, "b c hc wc k -> b c k hc wc")
    return hist  # B×C×bins×Hc×Wc


def _channel_values(values: Sequence[float] | None, channels: int, name: str) -> Tensor | None:
    if values is None:
        return None
    vals = [float(v) for v in values]
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels:
        raise ValueError(f"HOGTargets {name} needs one value or one per channel ({channels}), got {len(vals)}")
    return torch.tensor(vals).view(1, channels, 1, 1)


class HOGTargets(TargetProvider):
    """Per-patch HOG targets for image tokens: B×N×((p/cell)²·bins·C) in token (row-major) order.

    `inputs` is the image batch B×C×H×W as the model sees it. With `mean`/`std` given, it is first
    un-normalized (`x·std + mean`; DMJD computes HOG on the un-normalized image); without them the
    HOG is of the input as is (MaskFeat: HOG of the normalized input). Options as in `hog_cells`;
    `layout` orders each patch's values (module doc).
    """

    discrete = False

    def __init__(
        self,
        patch_size: int,
        in_chans: int = 3,
        *,
        bins: int = 9,
        cell: int = 8,
        norm: HOGNorm = "l2",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        style: HOGStyle = "maskfeat",
        gaussian_window: int = 0,
        layout: HOGLayout = "cells_bins_channels",
    ) -> None:
        super().__init__()
        if patch_size % cell:
            raise ValueError(f"HOGTargets cell={cell} must divide patch_size={patch_size}")
        if norm not in _NORMS:
            raise ValueError(f"HOGTargets norm must be one of {_NORMS}, got {norm!r}")
        if style not in _STYLES:
            raise ValueError(f"HOGTargets style must be one of {_STYLES}, got {style!r}")
        if layout not in _LAYOUTS:
            raise ValueError(f"HOGTargets layout must be one of {_LAYOUTS}, got {layout!r}")
        if (mean is None) != (std is None):
            raise ValueError("HOGTargets needs both mean and std (to un-normalize) or neither")
        self.patch_size, self.in_chans, self.bins, self.cell = patch_size, in_chans, bins, cell
        self.norm, self.style, self.gaussian_window, self.layout = norm, style, gaussian_window, layout
        self.cells_per_side = patch_size // cell
        self.dim = self.cells_per_side**2 * bins * in_chans
        if std is not None and any(float(v) <= 0 for v in std):  # checked on floats (models may be built on meta)
            raise ValueError(f"HOGTargets std values must be > 0, got {tuple(std)}")
        m, s = _channel_values(mean, in_chans, "mean"), _channel_values(std, in_chans, "std")
        # not saved: derived from the options, which the recipe's config holds
        self.register_buffer("mean", m, persistent=False)
        self.register_buffer("std", s, persistent=False)

    def hog_patches(self, images: Tensor) -> Tensor:
        """images: B×C×H×W (as the model sees them) -> B×N×dim per-patch HOG, N = (H/p)·(W/p)."""
        if images.ndim != 4 or images.shape[1] != self.in_chans:
            raise ValueError(
                f"HOGTargets expects images B×{self.in_chans}×H×W, got shape {tuple(images.shape)}"
            )
        h, w = images.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"HOGTargets patch_size={self.patch_size} must divide the image size {h}×{w}")
        x = images.float()
        if self.mean is not None:
            x = x * self.std + self.mean  # un-normalize: B×C×H×W
        hist = hog_cells(
            x, bins=self.bins, cell=self.cell, norm=self.norm, style=self.style, gaussian_window=self.gaussian_window
        )  # B×C×bins×Hc×Wc
        k = self.cells_per_side
        if self.layout == "cells_bins_channels":
            return rearrange(hist, "b c d (ph dh) (pw dw) -> b (ph pw) (dh dw d c)", dh=k, dw=k)
        return rearrange(hist, "b c d (ph dh) (pw dw) -> b (ph pw) (c d dh dw)", dh=k, dw=k)

    def forward(self, tokens: Tokens, inputs: Any, cache: dict[str, Any], model: nn.Module) -> Tensor:
        if not isinstance(inputs, Tensor):
            raise TypeError(f"HOGTargets needs the image batch (a B×C×H×W tensor), got {type(inputs).__name__}")
        out = self.hog_patches(inputs)  # B×N×dim
        if out.shape[1] != tokens.num_tokens:
            raise ValueError(
                f"HOGTargets made {out.shape[1]} patches for {tuple(inputs.shape[-2:])} at patch "
                f"{self.patch_size}, but the tokenizer made {tokens.num_tokens} tokens (grid {tokens.grid})"
            )
        return out  # float32, no gradient

    def extra_repr(self) -> str:
        return (
            f"patch_size={self.patch_size}, in_chans={self.in_chans}, bins={self.bins}, cell={self.cell}, "
            f"norm={self.norm!r}, style={self.style!r}, layout={self.layout!r}, dim={self.dim}"
        )


__all__ = ["HOGTargets", "gaussian_window", "hog_cells"]
