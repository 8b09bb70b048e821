"""Several modalities in one token sequence: `MultiTokenizer` and the multi-modal batch.

A multi-modal batch is a mapping modality -> that modality's batch, e.g.
`{"audio": B×1×T×F fbank, "video": B×3×H×W frame}` (`ModalityBatch` is such a dict that also
answers `.shape` and `.to`). `MultiTokenizer` runs each present modality's own tokenizer, adds
that modality's optional learned embedding (CAV-MAE: yes; MultiMAE, OmniMAE: no), and
concatenates the tokens in the tokenizer's modality order into one sequence with named spans
(`core.tokens.Span`: modality, start, end, grid, target size):

    x      B×N×D       N = Σ n_m, modality m at [start_m, end_m)
    grid   (N,)        each modality's own layout is `span.grid`
    target B×N×Pmax    modality m's P_m values in the first P_m columns, zeros after

Positions stay per modality: `positions(tokens)` concatenates every modality tokenizer's own
`pos_embed(grid, coords)` (the skeleton's `encode_with_positions` asks for it). A batch may hold
any non-empty subset of the modalities (OmniMAE: one per step); `untokenize` gives a
`ModalityBatch` back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anymae.core.tokens import Span, Tokens


class ModalityBatch(dict):
    """A multi-modal batch: modality -> that modality's batch (tensors or objects with `.to`)."""

    @property
    def shape(self) -> dict[str, Any]:
        """Each modality's batch shape, by modality."""
        return {k: getattr(v, "shape", None) for k, v in self.items()}

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ModalityBatch:
        return ModalityBatch({k: v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v.to(device)
                              for k, v in self.items()})


class MultiTokenizer(nn.Module):
    """Modality tokenizers run side by side; their tokens concatenated with named spans (module doc).

    Args:
        tokenizers: modality name -> that modality's tokenizer (all of width `dim`), in sequence
            order. A tokenizer may be shared between names (OmniMAE's image and video).
        modality_embed: add a learned vector per modality (normal, std 0.02, as CAV-MAE) to its tokens.
        route: optional `fn(batch) -> mapping` for a batch that is not a mapping (OmniMAE: a 4-D
            tensor is {"image": x}, a 5-D one {"video": x}), so single-source data works as is.
    """

    def __init__(self, tokenizers: Mapping[str, nn.Module], *, modality_embed: bool = False,
                 route: Callable[[Any], Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        if not tokenizers:
            raise ValueError("MultiTokenizer needs at least one modality tokenizer")
        widths = {name: int(tok.dim) for name, tok in tokenizers.items()}
        if len(set(widths.values())) != 1:
            raise ValueError(f"every modality tokenizer must have the same width, got {widths}")
        self.dim = next(iter(widths.values()))
        self.tokenizers = nn.ModuleDict(dict(tokenizers))
        self.modalities: tuple[str, ...] = tuple(tokenizers)
        self.route = route
        self.modality_embed = nn.ParameterDict()
        if modality_embed:
            for name in self.modalities:
                self.modality_embed[name] = nn.Parameter(torch.zeros(1, 1, self.dim))
                nn.init.normal_(self.modality_embed[name], std=0.02)

    def as_mapping(self, batch: Any) -> Mapping[str, Any]:
        """`batch`, or `route(batch)` for a batch that is not a mapping."""
        return self.route(batch) if self.route is not None and not isinstance(batch, Mapping) else batch

    def present(self, batch: Mapping[str, Any]) -> list[str]:
        """The batch's modalities in sequence order; an error naming unknown keys or an empty batch."""
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"a multi-modal model takes a mapping modality -> batch with keys from {list(self.modalities)}, "
                f"got {type(batch).__name__}"
            )
        unknown = sorted(set(batch) - set(self.modalities))
        if unknown:
            raise ValueError(f"unknown modality key(s) {unknown} in the batch; this model reads "
                             f"{list(self.modalities)}")
        names = [m for m in self.modalities if m in batch]
        if not names:
            raise ValueError(f"the batch holds no modality; expected at least one of {list(self.modalities)}")
        return names

    def forward(self, batch: Mapping[str, Any]) -> Tokens:
        batch = self.as_mapping(batch)
        parts: dict[str, Tokens] = {}
        xs, targets, spans = [], [], []
        start = 0
        for name in self.present(batch):
            sub = self.tokenizers[name](batch[name])
            if name in self.modality_embed:
                sub.x = sub.x + self.modality_embed[name]  # B×n×D
            parts[name] = sub
            n = sub.x.shape[1]
            p = sub.target.shape[-1] if sub.target is not None else 0
            spans.append(Span(name, start, start + n, tuple(sub.grid), p))
            xs.append(sub.x)
            targets.append(sub.target)
            start += n
        sizes = {x.shape[0] for x in xs}
        if len(sizes) != 1:
            raise ValueError(f"the modalities' batch sizes differ: {dict(zip(parts, (x.shape[0] for x in xs)))}")
        target = None
        if all(t is not None for t in targets):
            width = max(s.target_dim for s in spans)
            target = torch.cat([F.pad(t, (0, width - t.shape[-1])) for t in targets], dim=1)  # B×N×Pmax
        return Tokens(x=torch.cat(xs, dim=1), target=target, grid=(start,), extra={"parts": parts}, spans=tuple(spans))

    def positions(self, tokens: Tokens) -> Tensor:
        """(1|B)×N×D encoder positions: each modality tokenizer's own, concatenated in span order."""
        parts: dict[str, Tokens] = (tokens.extra or {})["parts"]
        pos = [self.tokenizers[s.modality].pos_embed(s.grid, parts[s.modality].coords) for s in tokens.spans or ()]
        b = max(p.shape[0] for p in pos)
        return torch.cat([p.expand(b, -1, -1) for p in pos], dim=1)

    def untokenize(self, values: Tensor, tokens: Tokens) -> ModalityBatch:
        """B×N×Pmax per-token values -> each modality's data (`ModalityBatch`)."""
        parts: dict[str, Tokens] = (tokens.extra or {})["parts"]
        return ModalityBatch({
            s.modality: self.tokenizers[s.modality].untokenize(values[:, s.start : s.end, : s.target_dim],
                                                                parts[s.modality])
            for s in tokens.spans or ()
        })

    def example(self, batch_size: int) -> ModalityBatch:
        """A random batch of every modality at its configured geometry."""
        return ModalityBatch({name: self.tokenizers[name].example(batch_size) for name in self.modalities})


def span_ids(tokens: Tokens, index: Tensor | None = None) -> Tensor:
    """Which span each token belongs to: N long (or B×M for token indices `index`), -1 for none."""
    n = tokens.num_tokens
    ids = torch.full((n,), -1, dtype=torch.long, device=tokens.x.device)
    for k, s in enumerate(tokens.spans or ()):
        ids[s.start : s.end] = k
    return ids if index is None else ids[index]
