"""What an encoder gives downstream code: per-token outputs, prefix outputs, tapped layers.

`Features` is the output of every model's `features(x)`; `PackedFeatures` is the same for a row
that packs several samples (a batch of graphs, tokens = nodes) and knows each token's sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from anymae.core.pooling import Pool, pool, segment_pool

__all__ = ["Features", "PackedFeatures", "segment_pool"]


@dataclass
class Features:
    """Encoder outputs for downstream use.

    Attributes:
        tokens: B×N×D per-token outputs (prefix tokens removed).
        prefix: B×P×D outputs of the prefix tokens (cls first, then registers); P may be 0.
        intermediates: outputs of the requested blocks, each B×(P+N)×D (before the final norm).
        valid: B×N bool, False at padding (variable-length sequences, `Tokens.valid`); None = all
            real. Pooling leaves padding out.
    """

    tokens: Tensor
    prefix: Tensor
    intermediates: list[Tensor] = field(default_factory=list)
    valid: Tensor | None = None

    def pooled(self, kind: Pool) -> Tensor:
        """B×D (2·D for cls_max / mean_max): :func:`anymae.core.pooling.pool` of these features."""
        return pool(self, kind)


@dataclass
class PackedFeatures(Features):
    """Features of one packed row of several samples (e.g. a batch of graphs, tokens = nodes).

    Attributes:
        segments: N long, the sample of each token of the row (None: one sample per row).
        num_segments: number of samples G in the row.
    """

    segments: Tensor | None = None
    num_segments: int = 0

    # `pooled` (inherited) pools per sample of the row: G×D (packed) or B×D (segments None).
