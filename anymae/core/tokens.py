"""What a modality's tokenizer hands to the core, and the contract a tokenizer follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from torch import Tensor, nn


@dataclass(frozen=True)
class Span:
    """One modality's tokens inside a concatenated multi-modal sequence (`core.multimodal`).

    Attributes:
        modality: the modality's name (a key of the multi-modal batch).
        start, end: its tokens are `[start, end)` of the sequence.
        grid: its own token layout (prod(grid) == end - start).
        target_dim: P_m, the size of one of its tokens' targets (columns `[:P_m]` of the padded
            target / prediction rows).
    """

    modality: str
    start: int
    end: int
    grid: tuple[int, ...]
    target_dim: int

    @property
    def num_tokens(self) -> int:
        return self.end - self.start


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
        valid: optional B×N bool, False at padding (variable-length sequences padded to N): masking
            never counts padding as kept or hidden (`core.masking.padding`), and attention never
            reads it (`TransformerEncoder(valid=...)`). None = every token is real.
        spans: several modalities concatenated (`core.multimodal.MultiTokenizer`): one `Span` per
            modality in sequence order; `grid` is then `(N,)` and `target` is B×N×max(P_m), each
            modality's values in its first P_m columns (zero after). None for one modality.
    """

    x: Tensor
    target: Tensor | None
    grid: tuple[int, ...]
    coords: Tensor | None = None
    extra: dict[str, Any] | None = None
    valid: Tensor | None = None
    spans: Sequence[Span] | None = None

    @property
    def num_tokens(self) -> int:
        return self.x.shape[1]

    def span(self, modality: str) -> Span:
        """The span of `modality`; a KeyError naming the modalities present otherwise."""
        for span in self.spans or ():
            if span.modality == modality:
                return span
        present = [s.modality for s in self.spans or ()]
        raise KeyError(f"no tokens of modality {modality!r} in this batch; modalities present: {present}")


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
