"""LV-MAE's similarity ("importance") masking: hide the tokens most like their predecessor.

LV-MAE (amazon-science/lv-mae `data/CombinedData.py`, `importance_masking`): for a sequence of
segment embeddings, token t scores `cos(x_t, x_{t-1})` and token 0 scores 0; the argsort
primitive keeps the smallest scores, so the `N - int(N(1 - r))` tokens most similar to their
predecessor are hidden (`hide="similar"`, the code). The code's comment says the opposite
("small cos_similarity means change, so we want to remove those"); `hide="dissimilar"` gives that
reading. The draw is deterministic (no random numbers).

The predecessor is the previous token in token order: for a 1-D sequence (the features
modality) the previous segment, for any other layout the previous token in raster order.
Padding at the end of a sequence (`Tokens.valid`) is handled by `core.masking.padding`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from anymae.core.masking.plan import MASKINGS, MaskContext, SampleRNG, check_ratio


def neighbour_similarity(x: Tensor) -> Tensor:
    """B×N×P token values -> B×N scores: `cos(x_t, x_{t-1})` (eps 1e-8, as `F.cosine_similarity`), 0 at t = 0."""
    sim = F.cosine_similarity(x[:, 1:].float(), x[:, :-1].float(), dim=-1)  # B×(N-1)
    return torch.cat([sim.new_zeros(x.shape[0], 1), sim], dim=1)  # B×N


@MASKINGS.register("similarity")
class SimilarityMasking:
    """Hide the tokens most (or least) similar to their predecessor (module doc).

    Args:
        ratio: share hidden; `int(N(1 - ratio))` tokens stay visible (LV-MAE's rounding).
        hide: "similar" (the LV-MAE code) or "dissimilar" (its comment).
        source: the token values compared: "target" (the raw per-token target: for the features
            modality the input embeddings, as LV-MAE) or "x" (the token embeddings).
    """

    reads_context = True

    def __init__(
        self, ratio: float = 0.5, *, hide: Literal["similar", "dissimilar"] = "similar",
        source: Literal["target", "x"] = "target",
    ) -> None:
        self.ratio = check_ratio(ratio)
        if hide not in ("similar", "dissimilar") or source not in ("target", "x"):
            raise ValueError(f"similarity masking: expected hide 'similar' or 'dissimilar' and source 'target' or "
                             f"'x', got hide={hide!r}, source={source!r}")
        self.hide, self.source = hide, source

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return int(num_tokens * (1 - self.ratio))

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None, context: MaskContext) -> Tensor:
        tokens = context.tokens
        values = None if tokens is None else (tokens.target if self.source == "target" else tokens.x)
        if values is None:
            raise ValueError(f"similarity masking compares each token's {self.source!r} values with its predecessor's: "
                             "the mask context has no tokenized batch with them")
        if values.shape[1] != math.prod(grid):
            raise ValueError(f"similarity masking: {values.shape[1]} token values for grid {grid}")
        scores = neighbour_similarity(values).to(rng.device)  # B×N, large = like its predecessor
        return scores if self.hide == "similar" else -scores
