"""What a modality's tokenizer hands to the core, and the contract a tokenizer follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor, nn


@dataclass
class Tokens:
    """A tokenized batch.

    Attributes:
        x: B×N×D token embeddings, positions not yet added.
        target: B×N×P reconstruction target per token, raw (any normalization is the loss's job);
            None when the tokenizer is used for features only.
        grid: the token layout as a grid shape (prod(grid) == N), e.g. (14, 14), (8, 14, 14), (64,).
        coords: optional B×N×k coordinates per token (point-cloud centers, ...).
        extra: modality-specific values needed to turn predictions back into data (never used by
            the core), e.g. the input's spatial size.
    """

    x: Tensor
    target: Tensor | None
    grid: tuple[int, ...]
    coords: Tensor | None = None
    extra: dict[str, Any] | None = None

    @property
    def num_tokens(self) -> int:
        return self.x.shape[1]


class Tokenizer(Protocol):
    """A modality's tokenizer (an nn.Module).

    `forward(batch) -> Tokens`; `pos_embed(grid, coords) -> (1|B)×N×D` encoder positions;
    `untokenize(values: B×N×P, tokens) -> batch` turns per-token values (targets or predictions)
    back into the modality's data for pictures; `example(batch_size) -> batch` makes a random
    batch at the configured geometry (smoke tests, benchmarks); `dim` is the embedding width.
    For pictures (`tasks/pictures.py`): `to_pictures(batch, **render) -> B×H×W×3 uint8` renders
    a batch, and `picture_fill(tokens, level, **render) -> (1|B)×(1|N)×P` is the token value that
    renders as flat gray `level` (0 black, 1 white).

    Optional: a tokenizer that packs several samples into one token row (a mini-batch of graphs,
    tokens = nodes) has `segments(tokens) -> (N long sample ids, number of samples)`; the model
    then folds the batch's per-sample seeds into one seed per row (`core.seeds.fold_seeds`) and
    `features()` gives `PackedFeatures`, which pool per sample.
    """

    dim: int
    pos_embed: nn.Module

    def __call__(self, batch: Any) -> Tokens: ...

    def untokenize(self, values: Tensor, tokens: Tokens) -> Any: ...

    def example(self, batch_size: int) -> Any: ...
