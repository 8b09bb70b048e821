"""ColorMAE: masks from banks of filtered ("coloured") noise, generated here (algorithms.md §7d).

The reference ships precomputed banks only; this module generates them. White Gaussian noise is
filtered in the frequency domain with a Gaussian blur's transfer function
`G_s(f) = exp(-2 π² s² |f|²)` (f in cycles per token, s the blur's std in tokens; the filtering
wraps around, so the banks tile):

- red    = G_σ · white                  low-pass (a blurred white noise)
- blue   = (1 - G_σ) · white            high-pass (white minus blurred)
- green  = (G_σ - G_2σ) · white         band-pass (difference of two blurs; ColorMAE's default)
- purple = (1 - G_σ + G_2σ) · white     band-stop (white minus green)

Each sample takes a random crop of the token grid's size from a random bank map, flipped
vertically and horizontally at random (all drawn from its own generator), and keeps the
`int(N(1 - ratio))` tokens with the LARGEST values (the reference's descending argsort); the
noise handed to the argsort primitive is the negated crop. The reference's division by the
slice max is left out: it does not change which values are largest. The banks are a pure
function of (colour, count, size, sigma, seed), so they are not saved with checkpoints.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from anymae.core.masking.plan import MASKINGS, SampleRNG, check_ratio

Color = Literal["red", "blue", "green", "purple"]
COLORS: tuple[str, ...] = ("red", "blue", "green", "purple")


def radial_frequency(size: int) -> Tensor:
    """size×size |f| in cycles per token, in `torch.fft.fft2`'s layout."""
    f = torch.fft.fftfreq(size, dtype=torch.float64)  # size
    return torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)


def color_filter(color: str, size: int, sigma: float) -> Tensor:
    """size×size float64 transfer function of `color` (module doc), in `fft2` layout."""
    f2 = radial_frequency(size) ** 2
    low = torch.exp(-2 * math.pi**2 * sigma**2 * f2)  # G_σ
    lower = torch.exp(-2 * math.pi**2 * (2 * sigma) ** 2 * f2)  # G_2σ
    filters = {"red": low, "blue": 1 - low, "green": low - lower, "purple": 1 - low + lower}
    if color not in filters:
        raise ValueError(f"ColorMAE colour {color!r} is not one of {list(COLORS)}")
    return filters[color]


def noise_bank(color: str, count: int = 8, size: int = 64, *, sigma: float = 1.0, seed: int = 0) -> Tensor:
    """count×size×size float32 maps of `color` noise (module doc), a pure function of the arguments.

    Raises:
        ValueError for an unknown colour, count < 1, size < 2 or sigma <= 0.
    """
    if count < 1 or size < 2 or not sigma > 0:
        raise ValueError(f"noise bank: expected count >= 1, size >= 2, sigma > 0, got {count}, {size}, {sigma}")
    h = color_filter(color, size, sigma)  # size×size
    gen = torch.Generator().manual_seed(seed)
    white = torch.randn(count, size, size, generator=gen, dtype=torch.float64)  # count×size×size
    return torch.fft.ifft2(torch.fft.fft2(white) * h).real.float()


@MASKINGS.register("filtered_noise")
class ColorNoiseMasking:
    """ColorMAE masking on a 2-D token grid (module doc).

    Args:
        ratio: share of hidden tokens; `int(N(1 - ratio))` stay visible.
        color: "red", "blue", "green" (default, the paper's best) or "purple".
        bank_count: maps in the bank.
        bank_size: side of each map in tokens (at least the grid's larger side is used).
        sigma: the blur's std in tokens.
        bank_seed: the seed the bank is generated from.
    """

    def __init__(
        self, ratio: float = 0.75, *, color: Color = "green", bank_count: int = 8, bank_size: int = 64,
        sigma: float = 1.0, bank_seed: int = 0,
    ) -> None:
        self.ratio = check_ratio(ratio)
        color_filter(color, 2, sigma)  # refuses an unknown colour now, not at the first batch
        self.color, self.bank_count, self.bank_size = color, int(bank_count), int(bank_size)
        self.sigma, self.bank_seed = float(sigma), int(bank_seed)
        self._banks: dict[int, Tensor] = {}

    def bank(self, size: int) -> Tensor:
        """The count×S×S bank for maps of side S = max(bank_size, size) (generated once)."""
        side = max(self.bank_size, size)
        if side not in self._banks:
            self._banks[side] = noise_bank(self.color, self.bank_count, side, sigma=self.sigma, seed=self.bank_seed)
        return self._banks[side]

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return int(num_tokens * (1 - self.ratio))

    def crops(self, grid: tuple[int, ...], rng: SampleRNG) -> Tensor:
        """B×h×w per-sample crops of the bank: random map, offset, vertical and horizontal flip."""
        if len(grid) != 2:
            raise ValueError(f"ColorMAE masking needs a 2-D token grid, got grid {grid}")
        h, w = grid
        bank = self.bank(max(h, w))  # K×S×S
        k, s = bank.shape[0], bank.shape[1]
        u = rng.rand(5).cpu()  # B×5: map, top, left, flip rows, flip columns
        pick = (u[:, 0] * k).long().clamp(max=k - 1)  # B
        top = (u[:, 1] * (s - h + 1)).long().clamp(max=s - h)  # B
        left = (u[:, 2] * (s - w + 1)).long().clamp(max=s - w)  # B
        rows = torch.arange(h)[None, :].expand(len(pick), h)  # B×h
        cols = torch.arange(w)[None, :].expand(len(pick), w)  # B×w
        rows = torch.where((u[:, 3] < 0.5)[:, None], rows.flip(1), rows) + top[:, None]
        cols = torch.where((u[:, 4] < 0.5)[:, None], cols.flip(1), cols) + left[:, None]
        return bank[pick[:, None, None], rows[:, :, None], cols[:, None, :]].to(rng.device)  # B×h×w

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        return -self.crops(grid, rng).flatten(1)  # B×N: the largest bank values are kept
