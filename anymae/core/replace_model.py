"""`ReplaceMaskedAutoencoder`: the encoder sees ALL tokens, hidden ones replaced (SimMIM / BERT / GraphMAE).

Where `MaskedAutoencoder` drops hidden tokens before the encoder (MAE), this family keeps every
token and replaces the hidden ones' inputs: with a learned [MASK] vector (zero init, put in
place of the token's input), and, for a `replace_rate` share of them, with the inputs of other
random tokens (BERT's 80/10/10 idea, GraphMAE's `encoding_mask_noise`). Then:

    h   = encoder(x_replaced, tokens)            B×N×H   any backbone: GNN, transformer, ...
    rep = encoder_to_decoder(h)                  B×N×H'  Linear, no bias
    rep[hidden] = 0                              re-masking (GraphMAE: a plain zero), optional
    pred = decoder(rep, tokens)                  B×N×P   a backbone again (one GNN layer, ...)
    loss = loss_fn(pred, target, weight=hidden)  on hidden tokens only

A backbone is any module `backbone(x: B×N×D_in, tokens: Tokens) -> B×N×D_out` with `in_dim` and
`out_dim` attributes; it reads the token layout it needs from `tokens` (a GNN reads its edges from
`tokens.extra`, which the core never looks at). `TransformerBackbone` is the shared transformer in
that role, optionally with an attention mask computed from the tokens.

Packed rows: a tokenizer may pack several samples into one row (a mini-batch of graphs is one
row of all its nodes, so that the mask permutes over every node of the batch as GraphMAE does).
Such a tokenizer has `segments(tokens) -> (N long sample ids, number of samples)`; the per-sample
seeds of the batch are then folded into one seed for the row (`fold_seeds`), and `features()`
pools per sample (`PackedFeatures`).

Outside interface as `MaskedAutoencoder`: `forward(x, seeds=...) -> MAEOutput`, `features(x)`,
`reconstruct(out)`, `config`, `no_weight_decay()`, `tokenizer`, `encoder`, `target_norm` (None).
Assumptions of shared code that this model does not meet: `encoder.depth` / `encoder.blocks.k`
(layer-wise lr decay) and `encoder.cls_token` / `encoder.dim` (the fine-tuning classifier), which
are transformer-specific; pretraining, checkpoints, resume, probes and pictures work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch import Tensor, nn

from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.features import PackedFeatures
from anymae.core.losses import get_loss
from anymae.core.masking import MaskingStrategy, MaskPlan, SampleRNG, gather_tokens, make_plan
from anymae.core.model import MAEOutput
from anymae.core.tokens import Tokens
from anymae.core.transformer import init_mae_

# Replacement sources draw from seeds offset by this constant, independent of the mask itself.
_REPLACE_SEED_OFFSET = 0x2545F4914F6CDD1D


def fold_seeds(seeds: Tensor, rows: int) -> Tensor:
    """Per-sample seeds -> one seed per token row.

    Equal counts pass through. When a tokenizer packs all B samples into one row, the B seeds are
    hashed (numpy `SeedSequence`) into one 63-bit seed: the row's mask then depends only on which
    samples (which seeds) it holds, so resumed and re-run batches draw the same mask.

    Args:
        seeds: B int64 seeds.
        rows: token rows the tokenizer produced.

    Returns:
        `rows` int64 seeds on the device of `seeds`.
    """
    if seeds.numel() == rows:
        return seeds
    if rows != 1:
        raise ValueError(f"got {seeds.numel()} seeds for {rows} token rows; packed batches must be one row")
    entropy = [int(s) & 0xFFFF_FFFF_FFFF_FFFF for s in seeds.flatten().tolist()]
    word = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]) >> 1
    return torch.tensor([word], dtype=torch.long, device=seeds.device)


class TransformerBackbone(nn.Module):
    """The shared `TransformerEncoder` as a replacement-MAE backbone over all tokens.

    `x: B×N×in_dim -> Linear -> blocks (+ final norm) -> head -> B×N×out_dim`. With `attn_mask`,
    a function of the tokens giving a boolean mask broadcastable to B×heads×N×N (True = may
    attend), attention follows a structure (a graph transformer: edges + self). Positions, if any,
    are the tokenizer's business (added to `x`). Prefix tokens are not supported with a mask.

    Args:
        cfg: the transformer's sizes (`cls_token` must be False when `attn_mask` is given).
        in_dim: input width.
        out_dim: output width; None = the transformer width (no head).
        attn_mask: optional `fn(tokens) -> bool mask`.
    """

    def __init__(
        self,
        cfg: EncoderConfig,
        in_dim: int,
        out_dim: int | None = None,
        *,
        attn_mask: Callable[[Tokens], Tensor | None] | None = None,
    ) -> None:
        super().__init__()
        if attn_mask is not None and (cfg.cls_token or cfg.num_registers):
            raise ValueError("TransformerBackbone with an attention mask needs cls_token=False and no registers")
        self.in_dim, self.out_dim = in_dim, out_dim or cfg.dim
        self.embed = nn.Linear(in_dim, cfg.dim)
        self.transformer = TransformerEncoder(cfg)
        self.head: nn.Module = nn.Linear(cfg.dim, out_dim) if out_dim else nn.Identity()
        self.attn_mask = attn_mask
        self.apply(init_mae_)

    def forward(self, x: Tensor, tokens: Tokens) -> Tensor:
        """B×N×in_dim -> B×N×out_dim."""
        mask = self.attn_mask(tokens) if self.attn_mask is not None else None
        h, _ = self.transformer(self.embed(x), attn_mask=mask)  # B×(P+N)×dim
        return self.head(h[:, self.transformer.num_prefix :])


class ReplaceMaskedAutoencoder(nn.Module):
    """Masked autoencoder whose encoder sees every token, hidden ones replaced (see module doc).

    Args:
        tokenizer: the modality's tokenizer (`dim` = width of `tokens.x`, the encoder's input).
        encoder: backbone `(B×N×dim, tokens) -> B×N×H`, with `in_dim` / `out_dim`.
        decoder: backbone `(B×N×H', tokens) -> B×N×P`, P = the target width.
        masking: which tokens to hide (e.g. `RandomMasking(r, count="hide")`, GraphMAE's count).
        replace_rate: share of hidden tokens whose input becomes another random token's input
            (GraphMAE: `int(replace_rate * Nm)` of them; `int((1 - replace_rate) * Nm)` get the
            [MASK] vector; a leftover from the two floors keeps its own input, as the reference).
        remask: zero the hidden rows of the decoder input (GraphMAE, for GNN decoders).
        loss: a `core.losses.LOSSES` name, e.g. "sce"; `loss_params` its parameters.
        config: plain values describing how this model was built (saved with checkpoints).
    """

    def __init__(
        self,
        tokenizer: nn.Module,
        encoder: nn.Module,
        decoder: nn.Module,
        masking: MaskingStrategy,
        *,
        replace_rate: float = 0.0,
        remask: bool = True,
        loss: str = "sce",
        loss_params: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= replace_rate < 1.0:
            raise ValueError(f"replace_rate must be in [0, 1), got {replace_rate}")
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.decoder = decoder
        self.masking = masking
        self.replace_rate = float(replace_rate)
        self.remask = remask
        self.mask_token = nn.Parameter(torch.zeros(1, 1, tokenizer.dim))  # GraphMAE: zero init
        self.encoder_to_decoder = nn.Linear(encoder.out_dim, decoder.in_dim, bias=False)
        self.target_norm = None  # targets are raw (pictures and reconstruct read this)
        self.loss_name = loss
        self.loss_params: dict[str, Any] = dict(loss_params or {})
        self.loss_fn: Callable[..., Tensor] = get_loss(loss, **self.loss_params)
        self.config: dict[str, Any] = dict(config or {})

    def replace_hidden(
        self, x: Tensor, plan: MaskPlan, *, seeds: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """The encoder input: hidden tokens' inputs replaced.

        Args:
            x: B×N×D token inputs.
            plan: the mask plan; `plan.hide` is in random order, so its first
                `int((1 - r) * Nm)` tokens get the [MASK] vector and its last `int(r * Nm)`
                tokens get the inputs of distinct random tokens (any of the N, as the
                reference's `randperm(N)[:k]`).
            seeds: per-row seeds (the replacement sources draw from `seeds + offset`).
            generator: generator for the batched draw when no seeds are given.

        Returns:
            B×N×D.
        """
        b, n, d = x.shape
        nm = plan.hide.shape[1]
        n_noise = int(self.replace_rate * nm) if self.replace_rate > 0 else 0
        n_token = int((1 - self.replace_rate) * nm) if self.replace_rate > 0 else nm
        out = x
        if n_noise:
            rng = SampleRNG(
                b, seeds=None if seeds is None else seeds + _REPLACE_SEED_OFFSET, generator=generator, device=x.device
            )
            sources = torch.argsort(rng.rand(n), dim=1)[:, :n_noise]  # B×k distinct tokens
            noise_nodes = plan.hide[:, nm - n_noise :]  # B×k
            out = out.scatter(1, noise_nodes.unsqueeze(-1).expand(-1, -1, d), gather_tokens(x, sources))
        token_nodes = plan.hide[:, :n_token]  # B×Nt
        fill = self.mask_token.to(x.dtype).expand(b, n_token, d)  # zeroed input + [MASK]
        return out.scatter(1, token_nodes.unsqueeze(-1).expand(-1, -1, d), fill)

    def forward(
        self,
        x: Any,
        *,
        seeds: Tensor | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> MAEOutput:
        """Mask, replace, encode, re-mask, decode and score a batch.

        Args:
            x: the modality batch.
            seeds: B int64 per-sample seeds (folded into one per row for packed rows).
            noise: B×N injected masking scores (small = visible), overriding the strategy.
            generator: generator for the batched draws when no seeds are given.
        """
        tokens = self.tokenizer(x)
        if tokens.target is None:
            raise ValueError("the tokenizer produced no reconstruction target")
        b = tokens.x.shape[0]
        row_seeds = None if seeds is None else fold_seeds(seeds.to(tokens.x.device), b)
        plan = make_plan(
            self.masking, tokens.grid, b, device=tokens.x.device, seeds=row_seeds, generator=generator,
            noise=noise, coords=tokens.coords,
        )
        hidden = plan.mask  # B×N, 1 = hidden
        h = self.encoder(self.replace_hidden(tokens.x, plan, seeds=row_seeds, generator=generator), tokens)
        rep = self.encoder_to_decoder(h)  # B×N×H'
        if self.remask:
            rep = rep.masked_fill(hidden.bool().unsqueeze(-1), 0.0)
        pred = self.decoder(rep, tokens)  # B×N×P
        loss = self.loss_fn(pred, tokens.target, hidden)
        return MAEOutput(loss, pred, tokens.target, hidden, hidden, plan, tokens)

    def features(self, x: Any, *, return_layers: tuple[int, ...] = (), final_norm: bool = True) -> PackedFeatures:
        """Encoder outputs on the unmasked input (GraphMAE's `embed`); no prefix tokens.

        `return_layers` is not supported (backbones have no common notion of blocks).
        """
        if return_layers:
            raise ValueError("ReplaceMaskedAutoencoder.features: return_layers is not supported")
        tokens = self.tokenizer(x)
        h = self.encoder(tokens.x, tokens)  # B×N×H
        segments = getattr(self.tokenizer, "segments", None)
        seg, num = segments(tokens) if callable(segments) else (None, 0)
        return PackedFeatures(tokens=h, prefix=h.new_zeros(h.shape[0], 0, h.shape[2]), segments=seg, num_segments=num)

    def reconstruct(self, out: MAEOutput, *, stats: Literal["own", "visible"] = "own") -> Any:
        """Input where the loss did not score, prediction where it did, in the modality's data space.

        Targets are raw here, so `stats` changes nothing (kept for the shared interface).
        """
        raw, scored = out.tokens.target, out.loss_weight.unsqueeze(-1)  # B×N×P, B×N×1
        return self.tokenizer.untokenize(raw * (1 - scored) + out.pred * scored, out.tokens)

    def no_weight_decay(self) -> set[str]:
        """The [MASK] vector (timm's convention for tokens)."""
        return {"mask_token"}
