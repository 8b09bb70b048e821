"""Two masks through one encoder, two decoders, and a consistency term on co-hidden tokens.

Point-CMAE (Ren et al., "Bringing Masked Autoencoders Explicit Contrastive Properties for Point
Cloud Self-Supervised Learning"): each sample is masked twice independently with the same
strategy; the shared encoder encodes both visible sets; each branch has its own decoder (mask
token, decoder positions, blocks, head) and reconstruction loss; the decoders' last-block
outputs (before the final norm), L2-normalized, are compared on the tokens hidden in BOTH masks:

- `consistency="diagonal"` (default, the paper's intent): mean over co-hidden tokens of
  `1 - cos(h1[t], h2[t]) + eps`;
- `consistency="row"` (the released code's quirk): for each co-hidden token t the mean of
  `1 - cos(h1[t], h2[j]) + eps` over ALL N tokens j of the sample (the full N×N similarity
  matrix, rows selected by the co-hidden mask), averaged over co-hidden rows.

total = reconstruction_weight · (rec1 + rec2) + consistency_weight · consistency; the released
runner uses 1000 · rec + 1 · consistency. Deviation: the released encoder also prepends a cls
token per branch whose (projected) output is never used in the loss; here the encoder is used
as configured (no cls for Point-CMAE's presets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from anymae.core.decoder import MAEDecoder
from anymae.core.encoder import TransformerEncoder
from anymae.core.losses import TokenNorm
from anymae.core.masking import MaskingStrategy, MaskPlan, gather_tokens, make_plan
from anymae.core.model import MAEOutput, MaskedAutoencoder

Consistency = Literal["diagonal", "row"]

# The second mask draws from seeds offset by this constant (independent of the first mask).
_SECOND_MASK_SEED_OFFSET = 0x2545F4914F6CDD1D
_EPS = 1e-8  # the reference's epsilon inside the (1 - cos) term


@dataclass
class TwoMaskOutput(MAEOutput):
    """`MAEOutput` of the first branch (pred, mask, plan, ...) with the total `loss` and its parts.

    Attributes:
        parts: {"rec1", "rec2", "consistency"} unweighted scalars (detached).
        plan2: the second branch's mask plan.
    """

    plan2: MaskPlan | None = None


def consistency_loss(h1: Tensor, h2: Tensor, both_hidden: Tensor, mode: Consistency = "diagonal") -> Tensor:
    """Cosine consistency of two branches' token features on co-hidden tokens.

    Args:
        h1, h2: B×N×D features in token order.
        both_hidden: B×N bool, tokens hidden in both masks.
        mode: "diagonal" (token t against token t) or "row" (token t against every token).

    Returns:
        scalar; 0 (connected to the graph) when no token is hidden twice.
    """
    a, b = F.normalize(h1, dim=-1), F.normalize(h2, dim=-1)
    w = both_hidden.to(a.dtype)  # B×N
    count = w.sum()
    if mode == "diagonal":
        per_token = 1 - (a * b).sum(-1) + _EPS  # B×N
    elif mode == "row":
        per_token = (1 - torch.bmm(a, b.transpose(1, 2)) + _EPS).mean(dim=-1)  # B×N×N -> B×N
    else:
        raise ValueError(f"consistency={mode!r}: expected 'diagonal' or 'row'")
    if count == 0:
        return per_token.sum() * 0.0
    return (per_token * w).sum() / count


def _scatter_tokens(vis: Tensor, hid: Tensor, keep: Tensor, hide: Tensor, n: int) -> Tensor:
    """B×Nv×D and B×Nm×D values at `keep` / `hide` -> B×N×D in token order."""
    out = vis.new_zeros(vis.shape[0], n, vis.shape[-1])
    out = out.scatter(1, keep.unsqueeze(-1).expand_as(vis), vis)
    return out.scatter(1, hide.unsqueeze(-1).expand_as(hid), hid)


class TwoMaskAutoencoder(MaskedAutoencoder):
    """A MaskedAutoencoder with a second mask, a second decoder and a consistency term.

    Everything of `MaskedAutoencoder` (features, reconstruct, pictures) works on the first
    branch; `forward` returns a `TwoMaskOutput` whose `loss` is the weighted total.

    Args:
        tokenizer, encoder, decoder, masking, target_norm, loss, loss_params, config: as
            `MaskedAutoencoder` (`decoder` is the first branch's decoder).
        decoder2: the second branch's decoder (its own mask token, positions, blocks, head).
        consistency: "diagonal" or "row" (see module doc).
        reconstruction_weight: weight of rec1 + rec2 (Point-CMAE: 1000).
        consistency_weight: weight of the consistency term (Point-CMAE: 1).
    """

    def __init__(
        self,
        tokenizer: Any,
        encoder: TransformerEncoder,
        decoder: MAEDecoder,
        decoder2: MAEDecoder,
        masking: MaskingStrategy,
        *,
        consistency: Consistency = "diagonal",
        reconstruction_weight: float = 1.0,
        consistency_weight: float = 1.0,
        target_norm: TokenNorm | None = None,
        loss: str = "mse",
        loss_params: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            tokenizer, encoder, decoder, masking, target_norm=target_norm, loss=loss, loss_params=loss_params,
            config=config,
        )
        if consistency not in ("diagonal", "row"):
            raise ValueError(f"consistency={consistency!r}: expected 'diagonal' or 'row'")
        self.decoder2 = decoder2
        self.consistency = consistency
        self.reconstruction_weight = float(reconstruction_weight)
        self.consistency_weight = float(consistency_weight)

    def _branch(
        self, decoder: MAEDecoder, x_all: Tensor, pos: Tensor, plan: MaskPlan, tokens: Any, target: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One branch -> (loss, B×Nv×P visible preds, B×Nm×P hidden preds, B×N×D hidden states)."""
        x_vis = gather_tokens(x_all, plan.keep)  # B×Nv×D
        pos_vis = gather_tokens(pos, plan.keep) if self.encoder.cfg.pos_every_block else None
        latent, _ = self.encoder(x_vis, pos_vis)  # B×(P+Nv)×D
        pred_vis, pred_hid, hidden = decoder(
            latent, num_prefix=self.encoder.num_prefix, keep=plan.keep, query=plan.hide, grid=tokens.grid,
            coords=tokens.coords, return_hidden=True,
        )
        loss = self.loss_fn(pred_hid, gather_tokens(target, plan.hide), None)
        nv = plan.keep.shape[1]
        states = _scatter_tokens(hidden[:, :nv], hidden[:, nv:], plan.keep, plan.hide, plan.num_tokens)  # B×N×D
        return loss, pred_vis, pred_hid, states

    def forward(
        self,
        x: Any,
        *,
        seeds: Tensor | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        decoder_noise: Tensor | None = None,
        noise2: Tensor | None = None,
    ) -> TwoMaskOutput:
        """Both branches on a batch.

        Args:
            x: the modality batch.
            seeds: B per-sample seeds; the second mask uses `seeds + offset`.
            noise, noise2: B×N injected scores of the first / second mask.
            generator: generator for batched draws without seeds (both masks draw from it).
            decoder_noise: unused (no decoder-side masking here); accepted for the common call.
        """
        tokens = self.tokenizer(x)
        if tokens.target is None:
            raise ValueError("the tokenizer produced no reconstruction target")
        b, n = tokens.x.shape[:2]
        dev = tokens.x.device
        seeds2 = None if seeds is None else seeds + _SECOND_MASK_SEED_OFFSET
        plan1 = make_plan(self.masking, tokens.grid, b, device=dev, seeds=seeds, generator=generator, noise=noise,
                          coords=tokens.coords)
        plan2 = make_plan(self.masking, tokens.grid, b, device=dev, seeds=seeds2, generator=generator, noise=noise2,
                          coords=tokens.coords)
        x_all, pos = self._encoder_input(tokens)
        target = self.target_norm.normalize(tokens.target) if self.target_norm else tokens.target
        rec1, pred_vis, pred_hid, h1 = self._branch(self.decoder, x_all, pos, plan1, tokens, target)
        rec2, _, _, h2 = self._branch(self.decoder2, x_all, pos, plan2, tokens, target)
        mask1, mask2 = plan1.mask, plan2.mask  # B×N, 1 = hidden
        cons = consistency_loss(h1, h2, (mask1 * mask2) > 0, self.consistency)
        loss = self.reconstruction_weight * (rec1 + rec2) + self.consistency_weight * cons
        pred = _scatter_tokens(pred_vis, pred_hid, plan1.keep, plan1.hide, n)  # B×N×P
        parts = {"rec1": rec1.detach(), "rec2": rec2.detach(), "consistency": cons.detach()}
        return TwoMaskOutput(loss, pred, target, mask1, mask1.clone(), plan1, tokens, parts=parts, plan2=plan2)

    def no_weight_decay(self) -> set[str]:
        return super().no_weight_decay() | ({"decoder2.mask_token"} & dict(self.named_parameters()).keys())
