"""Reconstruction targets and losses on hidden tokens."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Literal

from einops import rearrange
from torch import Tensor


@dataclass(frozen=True)
class TokenNorm:
    """Per-token target normalization ("norm_pix").

    MAE / Audio-MAE: statistics over all P values of a token (`channels=1`), unbiased variance,
    `(x - mean) / sqrt(var + eps)` (`mode="var"`). VideoMAE: statistics per colour channel over the
    token's pixels, values laid out channel-last (`channels=3`), `(x - mean) / (std + eps)`
    (`mode="std"`).
    """

    channels: int = 1
    eps: float = 1e-6
    mode: Literal["var", "std"] = "var"

    def stats(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """target: B×N×P -> (mean, scale), each B×N×P broadcastable."""
        grouped = rearrange(target, "b n (p c) -> b n p c", c=self.channels)  # B×N×(P/c)×c
        mean = grouped.mean(dim=2, keepdim=True)
        var = grouped.var(dim=2, keepdim=True, unbiased=True)
        scale = (var + self.eps).sqrt() if self.mode == "var" else var.sqrt() + self.eps
        expand = lambda t: rearrange(t.expand_as(grouped), "b n p c -> b n (p c)")  # noqa: E731
        return expand(mean), expand(scale)

    def normalize(self, target: Tensor) -> Tensor:
        mean, scale = self.stats(target)
        return (target - mean) / scale

    def denormalize(self, values: Tensor, reference: Tensor) -> Tensor:
        """Map normalized values back with the statistics of `reference` (raw B×N×P targets)."""
        mean, scale = self.stats(reference)
        return values * scale + mean


def masked_mse(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Per-token MSE averaged over P, then averaged over tokens with `weight` (1 = counts).

    pred, target: B×M×P; weight: B×M (None: all tokens count). Equals the reference
    `((pred - target)**2).mean(-1)`, `(loss * mask).sum() / mask.sum()`.
    """
    per_token = (pred - target).pow(2).mean(dim=-1)  # B×M
    if weight is None:
        return per_token.mean()
    total = weight.sum()
    if total == 0:
        return per_token.sum() * 0.0  # nothing to reconstruct (keeps the graph connected)
    return (per_token * weight).sum() / total


# name -> loss(pred B×M×P, target B×M×P, weight B×M | None, **params) -> scalar.
# A loss's own parameters (e.g. a cosine exponent) are keyword arguments with defaults.
LOSSES: dict[str, Callable[..., Tensor]] = {"mse": masked_mse}


def get_loss(name: str, **params: Any) -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
    """A reconstruction loss by name, with its parameters bound: (pred, target, weight) -> scalar."""
    try:
        fn = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}") from None
    if not params:
        return fn
    accepted = set(inspect.signature(fn).parameters) - {"pred", "target", "weight"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(f"loss {name!r}: unknown parameter(s) {unknown}; it accepts {sorted(accepted) or 'none'}")
    return functools.partial(fn, **params)

