"""`MaskedAutoencoder`: tokenizer -> mask plan -> encoder -> decoder -> loss on hidden tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn

from anymae.core.decoder import MAEDecoder
from anymae.core.encoder import TransformerEncoder
from anymae.core.features import Features
from anymae.core.losses import TokenNorm, get_loss
from anymae.core.masking import MaskingStrategy, MaskPlan, gather_tokens, make_plan
from anymae.core.tokens import Tokens

# Decoder-side masks draw from seeds offset by this constant, independent of the encoder's mask.
_DECODER_SEED_OFFSET = 0x5DEECE66D


@dataclass
class MAEOutput:
    """One forward pass.

    Attributes:
        loss: scalar reconstruction loss on the tokens in `loss_weight`.
        pred: B×N×P predictions in token order (zero where the decoder made none).
        target: B×N×P targets as the loss sees them (normalized when norm_pix is on).
        mask: B×N float, 1 where the token was hidden from the encoder.
        loss_weight: B×N float, 1 where the loss counts (hidden and decoded).
        plan: the encoder's mask plan.
        tokens: the tokenized batch (raw targets, layout) for pictures.
        parts: every named part of the loss as a detached scalar (logged by the engine as a
            metric next to `loss`); empty when the loss has a single part.
    """

    loss: Tensor
    pred: Tensor
    target: Tensor
    mask: Tensor
    loss_weight: Tensor
    plan: MaskPlan
    tokens: Tokens
    parts: dict[str, Tensor] = field(default_factory=dict)


class MaskedAutoencoder(nn.Module):
    """The shared MAE, composed from a modality's tokenizer and head and the core's parts.

    Args:
        tokenizer: the modality's tokenizer (see `core.tokens.Tokenizer`).
        encoder: the shared transformer encoder.
        decoder: the MAE decoder (holding the modality's head and decoder positions).
        masking: the encoder-side masking strategy.
        target_norm: per-token target normalization (norm_pix), or None for raw targets.
        loss: name of the reconstruction loss (`core.losses.LOSSES`).
        loss_params: keyword parameters of that loss (e.g. an exponent), plain values.
        decoder_masking: optional decoder-side strategy (VideoMAE V2): its kept tokens are the
            ones the decoder predicts; the loss covers tokens hidden from the encoder among them.
        config: plain values describing how this model was built (saved with checkpoints).
    """

    def __init__(
        self,
        tokenizer: nn.Module,
        encoder: TransformerEncoder,
        decoder: MAEDecoder,
        masking: MaskingStrategy,
        *,
        target_norm: TokenNorm | None = None,
        loss: str = "mse",
        loss_params: dict[str, Any] | None = None,
        decoder_masking: MaskingStrategy | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.decoder = decoder
        self.masking = masking
        self.decoder_masking = decoder_masking
        self.target_norm = target_norm
        self.loss_name = loss
        self.loss_params: dict[str, Any] = dict(loss_params or {})
        self.loss_fn: Callable[[Tensor, Tensor, Tensor | None], Tensor] = get_loss(loss, **self.loss_params)
        self.config: dict[str, Any] = dict(config or {})

    def _encoder_input(self, tokens: Tokens) -> tuple[Tensor, Tensor]:
        """-> (B×N×D tokens with positions added unless re-added per block, (1|B)×N×D positions)."""
        pos = self.tokenizer.pos_embed(tokens.grid, tokens.coords)
        x = tokens.x if self.encoder.cfg.pos_every_block else tokens.x + pos
        return x, pos

    def forward(
        self,
        x: Any,
        *,
        seeds: Tensor | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        decoder_noise: Tensor | None = None,
    ) -> MAEOutput:
        """Mask, encode, decode and score a batch.

        Args:
            x: the modality batch (e.g. B×C×H×W images).
            seeds: B int64 per-sample seeds: each sample's mask then depends only on its seed.
            noise: B×N injected masking scores (small = visible), overriding the strategy.
            generator: generator for the batched draw when no seeds are given.
            decoder_noise: B×N injected scores for the decoder-side strategy.
        """
        tokens = self.tokenizer(x)
        if tokens.target is None:
            raise ValueError("the tokenizer produced no reconstruction target")
        b, n = tokens.x.shape[:2]
        dev = tokens.x.device
        plan = make_plan(
            self.masking, tokens.grid, b, device=dev, seeds=seeds, generator=generator, noise=noise, coords=tokens.coords
        )
        query = plan.hide
        if self.decoder_masking is not None:
            dec_seeds = None if seeds is None else seeds + _DECODER_SEED_OFFSET
            dec_plan = make_plan(
                self.decoder_masking, tokens.grid, b, device=dev, seeds=dec_seeds, generator=generator,
                noise=decoder_noise, coords=tokens.coords,
            )
            query = dec_plan.keep
        x_all, pos = self._encoder_input(tokens)
        x_vis = gather_tokens(x_all, plan.keep)  # B×Nv×D
        pos_vis = gather_tokens(pos, plan.keep) if self.encoder.cfg.pos_every_block else None
        latent, _ = self.encoder(x_vis, pos_vis)  # B×(P+Nv)×D
        pred_vis, pred_query = self.decoder(
            latent, num_prefix=self.encoder.num_prefix, keep=plan.keep, query=query,
            grid=tokens.grid, coords=tokens.coords,
        )
        target = self.target_norm.normalize(tokens.target) if self.target_norm else tokens.target
        mask = plan.mask  # B×N
        weight_query = torch.gather(mask, 1, query)  # B×Nq
        loss = self.loss_fn(pred_query, gather_tokens(target, query), weight_query)
        pred = pred_query.new_zeros(b, n, pred_query.shape[-1])
        pred = pred.scatter(1, plan.keep.unsqueeze(-1).expand_as(pred_vis), pred_vis)
        pred = pred.scatter(1, query.unsqueeze(-1).expand_as(pred_query), pred_query)  # B×N×P
        loss_weight = torch.zeros_like(mask).scatter(1, query, weight_query)
        return MAEOutput(loss, pred, target, mask, loss_weight, plan, tokens)

    def features(
        self, x: Any, *, return_layers: tuple[int, ...] = (), final_norm: bool = True
    ) -> Features:
        """Encoder features on all tokens, no masking (downstream interface of every modality)."""
        tokens = self.tokenizer(x)
        x_all, pos = self._encoder_input(tokens)
        pos_all = pos.expand(x_all.shape[0], -1, -1) if self.encoder.cfg.pos_every_block else None
        latent, inter = self.encoder(x_all, pos_all, return_layers=return_layers, final_norm=final_norm)
        p = self.encoder.num_prefix
        return Features(tokens=latent[:, p:], prefix=latent[:, :p], intermediates=inter)

    def reconstruct(self, out: MAEOutput, *, stats: Literal["own", "visible"] = "own") -> Any:
        """The reconstruction of one forward pass in the modality's data space.

        Tokens the loss did not score are the input; scored tokens are the prediction. For
        norm_pix models predictions are mapped back with per-token statistics taken from
        `stats`: "own" uses each hidden token's own mean and variance (what MAE's visualizations
        do; it reveals those two numbers of the answer), "visible" uses the average statistics of
        the sample's visible tokens (nothing from the hidden token is used).
        """
        raw = out.tokens.target  # B×N×P
        pred = out.pred
        if self.target_norm is not None:
            mean, scale = self.target_norm.stats(raw)  # B×N×P each
            if stats == "visible":
                vis = (1 - out.mask).unsqueeze(-1)  # B×N×1
                mean = (mean * vis).sum(1, keepdim=True) / vis.sum(1, keepdim=True)  # B×1×P
                scale = (scale * vis).sum(1, keepdim=True) / vis.sum(1, keepdim=True)
            elif stats != "own":
                raise ValueError(f"stats={stats!r}: expected 'own' or 'visible'")
            pred = pred * scale + mean
        scored = out.loss_weight.unsqueeze(-1)  # B×N×1
        return self.tokenizer.untokenize(raw * (1 - scored) + pred * scored, out.tokens)

    def no_weight_decay(self) -> set[str]:
        """Names of tokens and learned position tables (timm's convention)."""
        names = {"encoder.cls_token", "encoder.reg_token", "decoder.mask_token"}
        names |= {n for n, _ in self.named_parameters() if "pos_embed" in n}
        return {n for n in names if n in dict(self.named_parameters())}
