"""Loss terms of multi-modal models: one reconstruction per modality, and a cross-modal InfoNCE.

- `SpanReconstruction` ("rec_<m>"): modality m's reconstruction on its hidden tokens: its own
  loss (`core.losses`) on its own target columns, normalized per token its own way (norm_pix:
  `TokenNorm`), averaged over that modality's scored tokens (CAV-MAE: `(loss·mask).sum() /
  mask.sum()` per modality; the MAE loss is the sum over modalities). A batch without the
  modality (OmniMAE's image-only steps) gives 0.
- `ModalityContrastive` ("contrastive"): InfoNCE between two modalities' pooled features
  (CAV-MAE): each modality's visible tokens through its modality-only pass (a `MultiEncoder`'s
  `modality_pass` from the tapped modality-block output; a shared encoder: the encoder on that
  modality's visible tokens alone), mean over visible tokens, L2-normalized, similarity / τ;
  single direction by default (for each sample of `second`, log-softmax over the `first` axis,
  as the reference's `log_softmax(total, dim=0)` with `total = a @ v.T`), both directions
  averaged as an option. Samples where either modality is hidden whole are left out.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from anymae.core.encoder import TransformerEncoder
from anymae.core.losses import TokenNorm
from anymae.core.masking import gather_tokens
from anymae.core.multimodal.encoder import MultiEncoder, gather_rows, split_spans
from anymae.core.skeleton.steps import Pass
from anymae.core.skeleton.terms import LossTerm


class SpanReconstruction(LossTerm):
    """One modality's reconstruction loss (module doc).

    Args:
        modality: which span.
        loss_fn: `(pred, target, weight) -> scalar` (`core.losses.get_loss`).
        norm: per-token target normalization of this modality (None: raw targets).
        branch: which branch's predictions.
        per_sample: average over each sample's scored tokens, then over the samples that have
            some (MultiMAE); False = one average over all scored tokens of the batch (CAV-MAE).
        name: default "rec_<modality>".
        weight: the term's weight.
    """

    def __init__(self, modality: str, loss_fn: Callable[[Tensor, Tensor, Tensor | None], Tensor], *,
                 norm: TokenNorm | None = None, branch: int = 0, per_sample: bool = False, name: str | None = None,
                 weight: float = 1.0) -> None:
        super().__init__(name or f"rec_{modality}", weight)
        self.modality, self.loss_fn, self.norm, self.branch = modality, loss_fn, norm, branch
        self.per_sample = bool(per_sample)

    def forward(self, state: Pass) -> Tensor:
        br = state.branches[self.branch]
        pred, query = br.decoded.pred, br.planned.query
        spans = [s for s in state.tokens.spans or () if s.modality == self.modality]
        if not spans:
            return pred.sum() * 0.0 + 0.0  # the batch has no such modality (+0.0: no "-0")
        span = spans[0]
        if query is None:
            raise ValueError(f"{self.name}: span reconstruction needs a drop-mode branch (queried tokens)")
        inside = ((query >= span.start) & (query < span.end)).to(br.planned.weight.dtype)  # B×Nq
        weight = br.planned.weight * inside
        if not bool(weight.sum() > 0):
            return pred.sum() * 0.0 + 0.0
        target = gather_tokens(state.target, query)[..., : span.target_dim]  # B×Nq×P_m
        if self.norm is not None:
            target = self.norm.normalize(target)
        if self.per_sample:  # weights w / W_b: the token mean becomes the mean of per-sample means
            weight = weight / weight.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return self.loss_fn(pred[..., : span.target_dim], target, weight)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, modality={self.modality!r}, norm={self.norm}"


def info_nce(first: Tensor, second: Tensor, temperature: float, *, bidirectional: bool = False) -> Tensor:
    """CAV-MAE's InfoNCE between B×D features (row i of both = one sample).

    `total = norm(first) @ norm(second).T / τ` (B×B); single direction: `-mean(diag(log_softmax(total, 0)))`
    (each `second` sample against every `first`); bidirectional: the mean of both directions.
    """
    a, b = F.normalize(first, dim=-1), F.normalize(second, dim=-1)
    total = a @ b.T / temperature  # B×B
    nce = -torch.diagonal(F.log_softmax(total, dim=0)).mean()
    if not bidirectional:
        return nce
    return (nce - torch.diagonal(F.log_softmax(total.T, dim=0)).mean()) / 2


def modality_pooled(state: Pass, modality: str, *, tap: int | None, branch: int = 0) -> tuple[Tensor, Tensor]:
    """(B×D mean over each sample's visible tokens of `modality` after its modality-only pass, B valid)."""
    model, tokens = state.model, state.tokens
    br = state.branches[branch]
    keep = br.plan.keep
    k = [i for i, s in enumerate(tokens.spans or ()) if s.modality == modality]
    if not k:
        raise ValueError(f"the batch has no tokens of modality {modality!r}")
    encoder = model.encoder
    if isinstance(encoder, MultiEncoder) and tap is not None:
        h = br.encoded.taps[tap][:, br.encoded.num_prefix :]  # B×M×D after the modality blocks
        where, valid, full = split_spans(tokens, keep, keep.shape[0])[k[0]]
        out = encoder.modality_pass(gather_rows(h, where), modality, None if full else valid,
                                    from_layer=encoder.modality_depth)  # B×K×D
    elif isinstance(encoder, TransformerEncoder) and not isinstance(encoder, MultiEncoder):
        where, valid, full = split_spans(tokens, keep, keep.shape[0])[k[0]]
        index = torch.gather(torch.nn.functional.pad(keep, (0, 1)), 1, where)  # B×K token indices
        if not full:
            raise ValueError("a shared-encoder contrastive pass needs the same visible count of a modality in every "
                             "sample (no whole-modality masking or shared budget)")
        x = gather_tokens(tokens.x, index)
        enc = model.run_encoder(x, tokens, index)
        out = enc.latent[:, enc.num_prefix :]
    else:
        raise ValueError("ModalityContrastive needs a MultiEncoder with stream norms (and its tap) or a shared "
                         "TransformerEncoder")
    w = valid.to(out.dtype).unsqueeze(-1)  # B×K×1
    pooled = (out * w).sum(1) / w.sum(1).clamp_min(1.0)  # B×D
    return pooled, valid.any(dim=1)


class ModalityContrastive(LossTerm):
    """InfoNCE between two modalities' pooled modality-only features (module doc).

    Args:
        first, second: the two modalities (CAV-MAE: "audio", "video").
        temperature: τ (CAV-MAE 0.05).
        weight: the term's weight (CAV-MAE 0.01).
        bidirectional: average both directions.
        tap: the `MultiEncoder`'s last modality layer (modality_depth - 1), read from the pass;
            None for a shared encoder (re-encodes each modality's visible tokens).
        name: "contrastive".
    """

    def __init__(self, first: str, second: str, *, temperature: float = 0.05, weight: float = 0.01,
                 bidirectional: bool = False, tap: int | None = None, name: str = "contrastive") -> None:
        super().__init__(name, weight, taps=() if tap is None else (tap,))
        if not temperature > 0:
            raise ValueError(f"contrastive temperature must be > 0, got {temperature}")
        self.first, self.second = first, second
        self.temperature, self.bidirectional, self.tap = float(temperature), bool(bidirectional), tap

    def forward(self, state: Pass) -> Tensor:
        present = {s.modality for s in state.tokens.spans or ()}
        if self.first not in present or self.second not in present:  # a batch of one modality: no pairs
            return state.target.sum() * 0.0
        a, va = modality_pooled(state, self.first, tap=self.tap)
        b, vb = modality_pooled(state, self.second, tap=self.tap)
        both = va & vb
        if int(both.sum()) < 2:
            return (a.sum() + b.sum()) * 0.0
        if not bool(both.all()):
            a, b = a[both], b[both]
        return info_nce(a, b, self.temperature, bidirectional=self.bidirectional)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, pair=({self.first!r}, {self.second!r}), temperature={self.temperature}, "
                f"bidirectional={self.bidirectional}")
