"""What an encoder gives downstream code: per-token outputs, prefix outputs, tapped layers.

`Features` is the output of every model's `features(x)`; `PackedFeatures` is the same for a row
that packs several samples (a batch of graphs, tokens = nodes) and knows each token's sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor


@dataclass
class Features:
    """Encoder outputs for downstream use.

    Attributes:
        tokens: B×N×D per-token outputs (prefix tokens removed).
        prefix: B×P×D outputs of the prefix tokens (cls first, then registers); P may be 0.
        intermediates: outputs of the requested blocks, each B×(P+N)×D (before the final norm).
    """

    tokens: Tensor
    prefix: Tensor
    intermediates: list[Tensor] = field(default_factory=list)

    def pooled(self, kind: Literal["cls", "mean"] = "cls") -> Tensor:
        """B×D: the cls token's output, or the mean over tokens."""
        if kind == "cls":
            if self.prefix.shape[1] == 0:
                raise ValueError("this encoder has no cls token; use pooling 'mean'")
            return self.prefix[:, 0]
        if kind == "mean":
            return self.tokens.mean(dim=1)
        raise ValueError(f"unknown pooling {kind!r}; expected 'cls' or 'mean'")


@dataclass
class PackedFeatures(Features):
    """Features of one packed row of several samples (e.g. a batch of graphs, tokens = nodes).

    Attributes:
        segments: N long, the sample of each token of the row (None: one sample per row).
        num_segments: number of samples G in the row.
    """

    segments: Tensor | None = None
    num_segments: int = 0

    def pooled(self, kind: Literal["cls", "mean", "sum", "max"] = "mean") -> Tensor:  # type: ignore[override]
        """G×D (packed) or B×D: mean, sum or max over each sample's tokens."""
        if kind == "cls":
            raise ValueError("this encoder has no cls token; use pooling 'mean' (or 'sum' / 'max')")
        if kind not in ("mean", "sum", "max"):
            raise ValueError(f"unknown pooling {kind!r}; expected 'mean', 'sum' or 'max'")
        if self.segments is None:
            reduce = {"mean": torch.mean, "sum": torch.sum, "max": torch.amax}[kind]
            return reduce(self.tokens, dim=1)
        return segment_pool(self.tokens[0], self.segments, self.num_segments, kind)  # G×D


def segment_pool(x: Tensor, segments: Tensor, num: int, kind: str) -> Tensor:
    """N×D rows grouped by `segments` (N long in [0, num)) -> num×D mean / sum / max."""
    index = segments.unsqueeze(-1).expand_as(x)  # N×D
    if kind == "max":
        out = x.new_full((num, x.shape[1]), float("-inf"))
        out = out.scatter_reduce(0, index, x, reduce="amax", include_self=True)
        return out.nan_to_num(neginf=0.0)  # an empty segment pools to 0
    total = x.new_zeros(num, x.shape[1]).index_add(0, segments, x)  # num×D
    if kind == "sum":
        return total
    count = torch.bincount(segments, minlength=num).clamp(min=1).to(x.dtype)  # num
    return total / count.unsqueeze(-1)
