"""CCViT's second corruption: some visible tokens are replaced by their k-means centroid (a masking mode).

    hidden tokens     -> the [MASK] vector                       (ReplaceMode)
    `int(r · N)` visible tokens, drawn per sample -> the embedding of their nearest centroid's values
    loss set          = hidden ∪ replaced

CCViT (Cakeyan/CCViT_Public `engine_for_pretraining.py`, `utils.kmeans_mask`): after BEiT's block
mask (75 of 196), 20 further patches, disjoint from the masked ones, have their [0, 1] pixels
replaced by their centroid's pixels before normalization and patch embedding; the losses count
masked ∪ replaced patches (`bool_replaced_pos |= bool_masked_pos`).

Here the replaced tokens' values are the centroid in the tokenizer's target layout, normalized
like the data (`KMeansIds.centroid_values`), turned back into the modality's data by the tokenizer's
`untokenize` and re-tokenized, so any tokenizer whose embedding is per token (image patches) gets
exactly the embedding of the centroid patch. The draw uses the branch's per-sample seeds (offset,
so it never coincides with the mask's draw) and the branch's loss weights gain the replaced
tokens. The mode reads the model's `target` (a `KMeansIds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from anymae.core.masking import SampleRNG, gather_tokens
from anymae.core.seeds import SECOND_STREAM_OFFSET, offset_seeds
from anymae.core.skeleton.modes import ReplaceMode
from anymae.core.skeleton.steps import BranchPlan, Encoded
from anymae.core.targets.codebook import KMeansIds
from anymae.core.tokens import Tokens

if TYPE_CHECKING:
    from anymae.core.model import MaskedAutoencoder

CENTROID_STREAM_OFFSET = SECOND_STREAM_OFFSET ^ 0x43435669  # the replaced tokens' draw ("CCVi")


@dataclass(frozen=True)
class CentroidReplaceMode(ReplaceMode):
    """`ReplaceMode` plus CCViT's centroid replacement of `int(centroid_ratio · N)` visible tokens.

    Args:
        centroid_ratio: share of all N tokens replaced by their centroid (CCViT: 20 / 196); taken
            from the visible ones (at most all of them).
        (the rest as `ReplaceMode`)
    """

    centroid_ratio: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.centroid_ratio < 1.0:
            raise ValueError(f"centroid_ratio must be in [0, 1), got {self.centroid_ratio}")

    def draw_replaced(self, planned: BranchPlan, num: int, device: torch.device,
                      generator: torch.Generator | None) -> torch.Tensor:  # fmt: skip
        """B×k indices of visible tokens to replace (k = min(num, visible count)), per-sample seeded."""
        keep = planned.plan.keep  # B×Nv
        k = min(num, keep.shape[1])
        rng = SampleRNG(keep.shape[0], seeds=offset_seeds(planned.seeds, CENTROID_STREAM_OFFSET),
                        generator=generator, device=device)  # fmt: skip
        order = torch.argsort(rng.rand(keep.shape[1]), dim=1)[:, :k]  # B×k positions in keep
        return torch.gather(keep, 1, order)

    def encode(
        self, model: MaskedAutoencoder, tokens: Tokens, planned: BranchPlan, *, generator: torch.Generator | None,
        taps: tuple[int, ...],
    ) -> Encoded:
        """Hidden tokens -> [MASK], drawn visible tokens -> their centroid's embedding; all encoded."""
        x = self.replace_hidden(tokens.x, planned.plan, model.mask_token, seeds=planned.seeds, generator=generator)
        num = int(self.centroid_ratio * tokens.num_tokens)
        if num:
            provider = model.target
            if not isinstance(provider, KMeansIds) or tokens.target is None:
                raise TypeError("CentroidReplaceMode needs the model's target to be a KMeansIds over the tokenizer's "
                                f"raw targets, got {type(provider).__name__}")  # fmt: skip
            replaced = self.draw_replaced(planned, num, x.device, generator)  # B×k
            ids = provider.codebook.assign(gather_tokens(provider.raw(tokens), replaced))  # B×k
            values = provider.centroid_values(ids).to(tokens.target.dtype)  # B×k×P, the target's layout
            p, d = values.shape[-1], x.shape[-1]
            corrupted = tokens.target.scatter(1, replaced.unsqueeze(-1).expand(-1, -1, p), values)  # B×N×P
            embedded = model.tokenizer(model.tokenizer.untokenize(corrupted, tokens)).x  # B×N×D
            x = x.scatter(1, replaced.unsqueeze(-1).expand(-1, -1, d), gather_tokens(embedded, replaced))
            planned.weight = planned.weight.scatter(1, replaced, 1.0)  # the loss counts replaced tokens too
        return model.run_encoder(x, tokens, None, taps=taps)


__all__ = ["CENTROID_STREAM_OFFSET", "CentroidReplaceMode"]
