"""A drop mode that decodes nothing: `EncoderOnlyMode` + `NoDecoder`.

The encoder sees the visible tokens and nothing is decoded (MaskAlign: the loss is a term on the
visible encoder tokens). The queries are empty, so the reconstruction term is 0 (logged as
"rec": 0), and all of the loss comes from the terms. (Decoders other than `MAEDecoder` that take
its call — CAE's latent regressor, SelectiveMAE's query decoder — run under the plain `DropMode`,
which admits any decoder declaring `decodes_queries = True`.)
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from anymae.core.masking import MaskPlan
from anymae.core.skeleton.modes import DropMode


class NoDecoder(nn.Module):
    """The decoder of `EncoderOnlyMode`: predicts nothing (B×0×`out_dim`)."""

    decodes_queries = True

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.out_dim = int(out_dim)

    def forward(self, latent: Tensor, *, query: Tensor, **_: object) -> tuple[None, Tensor, None]:
        """-> (None, B×Nq×out_dim zeros (Nq = 0 under `EncoderOnlyMode`), None)."""
        return None, latent.new_zeros(latent.shape[0], query.shape[1], self.out_dim), None


@dataclass(frozen=True)
class EncoderOnlyMode(DropMode):
    """Encode the visible tokens; query nothing (module doc)."""

    def check(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().check(encoder, decoder)
        if not isinstance(decoder, NoDecoder):
            raise TypeError(
                f"EncoderOnlyMode decodes nothing: its decoder is a NoDecoder, got {type(decoder).__name__}"
            )

    def plan_queries(self, plan: MaskPlan, decoder_plan: MaskPlan | None) -> tuple[Tensor | None, Tensor]:
        """(B×0 queries, B×0 weights): no token is predicted."""
        if decoder_plan is not None:
            raise ValueError("EncoderOnlyMode decodes nothing; a decoder-side masking does not apply")
        query = plan.hide[:, :0]  # B×0
        return query, query.float()


__all__ = ["EncoderOnlyMode", "NoDecoder"]
