"""`SpanDropMode`: MAE's drop mode for span decoders (the decoder reads the tokens' spans).

Planning and encoding are `DropMode`'s (the encoder sees the visible tokens through
`run_encoder`); decoding hands the tokens to the decoder (`JointDecoder`, `OutputAdapters`)
so that each token reaches its modality's positions and head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from torch import nn

from anymae.core.encoder import TransformerEncoder
from anymae.core.skeleton.modes import DropMode
from anymae.core.skeleton.steps import BranchPlan, Decoded, Encoded
from anymae.core.tokens import Tokens

if TYPE_CHECKING:
    from anymae.core.model import MaskedAutoencoder


@dataclass(frozen=True)
class SpanDropMode(DropMode):
    """Drop mode whose decoder takes `tokens` (module doc)."""

    name: ClassVar[str] = "span_drop"

    def check(self, encoder: nn.Module, decoder: nn.Module) -> None:
        if not isinstance(encoder, TransformerEncoder):
            raise TypeError(f"mode 'span_drop' needs a TransformerEncoder (or MultiEncoder), got "
                            f"{type(encoder).__name__}")
        if not getattr(decoder, "reads_tokens", False):
            raise TypeError(f"mode 'span_drop' needs a span decoder (JointDecoder, OutputAdapters), got "
                            f"{type(decoder).__name__}")

    def decode(
        self, model: MaskedAutoencoder, decoder: nn.Module, tokens: Tokens, planned: BranchPlan, encoded: Encoded
    ) -> Decoded:
        """Latent + mask tokens at the queries -> B×Nq×Pmax (and B×Nv×Pmax at the visible tokens)."""
        assert planned.query is not None
        pred_vis, pred, hidden = decoder(
            encoded.latent, num_prefix=encoded.num_prefix, keep=planned.plan.keep, query=planned.query, tokens=tokens,
            return_hidden=True,
        )
        return Decoded(pred=pred, pred_visible=pred_vis, hidden=hidden)
