"""Decoders over spans: every modality keeps its own head (and target size).

Both decoders take `(latent, num_prefix, keep, query, tokens)` (through `SpanDropMode`) and
return predictions at the visible and queried tokens, padded to the widest modality's target
(B×Nv×Pmax, B×Nq×Pmax; modality m's values in the first P_m columns).

- `JointDecoder` (CAV-MAE's decoder): one transformer over every modality's visible tokens and
  mask tokens; each token gets its modality's decoder positions (`pos.<m>`) and, optionally, a
  learned decoder modality embedding (`modality_embed.<m>`); after the final norm each token
  goes through its modality's head (`heads.<m>`). With one modality and no modality embedding it
  computes what `core.decoders.MAEDecoder` computes.
- `OutputAdapters` (MultiMAE's output adapters, `SpatialOutputAdapter`), one per modality: the
  encoder output projected to the adapter's width (`proj_context`); mask tokens fill the hidden
  positions; every token gets the adapter's 2-D sin-cos positions (on its own modality's grid)
  plus a learned embedding of its source modality; the queries are the adapter's own modality's
  tokens (visible and mask tokens), the context every visible token plus the global tokens;
  one cross-attention (`core.cross_attention.CrossAttention`, pre-norm on queries and context,
  no residual around it, as the reference) and an MLP with a residual, then `depth`
  self-attention blocks and a linear map to the modality's patch values (no final norm).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import Tensor, nn

from anymae.core.cross_attention import CrossAttention
from anymae.core.decoders.mae import DecoderConfig
from anymae.core.masking import gather_tokens
from anymae.core.pos_embed import FixedSinCos
from anymae.core.tokens import Tokens
from anymae.core.transformer import layer_norm, make_blocks, run_blocks


def _width(tokens: Tokens) -> int:
    return max(s.target_dim for s in tokens.spans or ())


def _per_token(tokens: Tokens, values: dict[str, Tensor], batch: int) -> Tensor:
    """Per-span B×n_m×D (or 1×n_m×D) values -> B×N×D in sequence order."""
    return torch.cat([values[s.modality].expand(batch, s.num_tokens, -1) for s in tokens.spans or ()], dim=1)


class JointDecoder(nn.Module):
    """One decoder over all modalities' tokens with per-modality positions and heads (module doc).

    Args:
        cfg: sizes (`window` options do not apply; `keep_prefix` keeps the encoder's prefix tokens).
        in_dim: encoder width.
        pos: modality -> decoder position module `pos(grid, coords) -> (1|B)×n×dim`.
        heads: modality -> head, dim -> P_m.
        modality_embed: add a learned vector per modality (normal, std 0.02; CAV-MAE).
    """

    reads_tokens = True

    def __init__(self, cfg: DecoderConfig, in_dim: int, pos: Mapping[str, nn.Module], heads: Mapping[str, nn.Module],
                 *, modality_embed: bool = False) -> None:
        super().__init__()
        if set(pos) != set(heads):
            raise ValueError(f"JointDecoder needs positions and a head for the same modalities, got {sorted(pos)} "
                             f"and {sorted(heads)}")
        if cfg.window is not None or cfg.pos_every_block:
            raise ValueError("JointDecoder uses global attention with positions added once")
        self.cfg = cfg
        self.embed: nn.Module = nn.Linear(in_dim, cfg.dim, bias=cfg.project_bias) if cfg.project else nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.pos = nn.ModuleDict(dict(pos))
        self.blocks = make_blocks(cfg.dim, cfg.depth, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                                  norm_eps=cfg.norm_eps, drop_path=cfg.drop_path)
        self.norm = layer_norm(cfg.dim, cfg.norm_eps)
        self.heads = nn.ModuleDict(dict(heads))
        self.modality_embed = nn.ParameterDict()
        if modality_embed:
            for m in pos:
                self.modality_embed[m] = nn.Parameter(torch.zeros(1, 1, cfg.dim))
                nn.init.normal_(self.modality_embed[m], std=0.02)

    def cues(self, tokens: Tokens, batch: int) -> Tensor:
        """B×N×dim: each token's decoder position plus its modality's embedding."""
        parts = (tokens.extra or {}).get("parts", {})
        values = {}
        for s in tokens.spans or ():
            if s.modality not in self.pos:
                raise ValueError(f"the decoder has no head for modality {s.modality!r}; heads: {list(self.pos)}")
            sub = parts.get(s.modality)
            v = self.pos[s.modality](s.grid, sub.coords if sub is not None else None)  # (1|B)×n×dim
            values[s.modality] = v + self.modality_embed[s.modality] if s.modality in self.modality_embed else v
        return _per_token(tokens, values, batch)

    def heads_out(self, hidden: Tensor, index: Tensor, tokens: Tokens) -> Tensor:
        """B×L×dim normed decoder outputs of tokens `index` (B×L) -> B×L×Pmax through each token's head."""
        out = hidden.new_zeros(*hidden.shape[:2], _width(tokens))
        for s in tokens.spans or ():
            sel = (index >= s.start) & (index < s.end)  # B×L
            if bool(sel.any()):
                out[sel] = F.pad(self.heads[s.modality](hidden[sel]), (0, out.shape[-1] - s.target_dim))
        return out

    def forward(self, latent: Tensor, *, num_prefix: int, keep: Tensor, query: Tensor, tokens: Tokens,
                return_hidden: bool = False) -> tuple[Tensor, ...]:
        """latent B×(P+Nv)×D_enc, keep B×Nv, query B×Nq -> (B×Nv×Pmax, B×Nq×Pmax[, B×(Nv+Nq)×dim])."""
        x = self.embed(latent)  # B×(P+Nv)×dim
        prefix, visible = x[:, :num_prefix], x[:, num_prefix:]
        cue = self.cues(tokens, x.shape[0])  # B×N×dim
        masked = self.mask_token.expand(query.shape[0], query.shape[1], -1)  # B×Nq×dim
        parts, cue_parts = [visible, masked], [gather_tokens(cue, keep), gather_tokens(cue, query)]
        if self.cfg.keep_prefix and num_prefix:
            parts.insert(0, prefix)
            cue_parts.insert(0, prefix.new_zeros(prefix.shape))  # prefix positions are zero (MAE)
        seq, _ = run_blocks(self.blocks, torch.cat(parts, dim=1) + torch.cat(cue_parts, dim=1))  # B×L×dim
        hidden = seq[:, seq.shape[1] - keep.shape[1] - query.shape[1] :]  # B×(Nv+Nq)×dim
        out = self.heads_out(self.norm(hidden), torch.cat([keep, query], dim=1), tokens)  # B×(Nv+Nq)×Pmax
        nv = keep.shape[1]
        return (out[:, :nv], out[:, nv:], hidden) if return_hidden else (out[:, :nv], out[:, nv:])


class OutputAdapter(nn.Module):
    """One MultiMAE output adapter (module doc).

    Args:
        modality: the modality it predicts.
        modalities: every input modality (a learned embedding each).
        in_dim: encoder width.
        dim, depth, num_heads, mlp_ratio, qkv_bias: the adapter's sizes (MultiMAE: 256, 2, 8, 4).
        out_dim: P, values per token.
        grid: the default token grid of its positions (recomputed for another grid).
    """

    def __init__(self, modality: str, modalities: tuple[str, ...], in_dim: int, *, dim: int, depth: int,
                 num_heads: int, out_dim: int, grid: tuple[int, ...], mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.modality = modality
        self.proj_context = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.task_embeddings = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, dim)) for m in modalities})
        for p in (self.mask_token, *self.task_embeddings.values()):
            nn.init.trunc_normal_(p, std=0.02)
        self.pos_emb = FixedSinCos(grid, dim)
        self.query_norm, self.context_norm, self.out_norm = (layer_norm(dim, norm_eps) for _ in range(3))
        self.cross_attn = CrossAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.blocks = make_blocks(dim, depth, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, norm_eps=norm_eps)
        self.out_proj = nn.Linear(dim, out_dim)

    def forward(self, latent: Tensor, num_prefix: int, keep: Tensor, tokens: Tokens) -> Tensor:
        """latent B×(P+Nv)×D_enc, keep B×Nv -> B×n_m×P predictions for every token of its modality."""
        ctx = self.proj_context(latent)  # B×(P+Nv)×dim
        glob, visible = ctx[:, :num_prefix], ctx[:, num_prefix:]
        b, n = ctx.shape[0], tokens.num_tokens
        full = self.mask_token.expand(b, n, -1).scatter(1, keep.unsqueeze(-1).expand_as(visible), visible)  # B×N×dim
        cue = {}
        for s in tokens.spans or ():
            if s.modality not in self.task_embeddings:
                raise ValueError(f"output adapter {self.modality!r} has no embedding for modality {s.modality!r}")
            cue[s.modality] = self.pos_emb(s.grid) + self.task_embeddings[s.modality]  # 1×n×dim
        full = full + _per_token(tokens, cue, b)  # B×N×dim
        span = tokens.span(self.modality)
        queries = full[:, span.start : span.end]  # B×n_m×dim
        context = torch.cat([gather_tokens(full, keep), glob], dim=1)  # B×(Nv+P)×dim
        x = self.cross_attn(self.query_norm(queries), self.context_norm(context))  # no residual (MultiMAE)
        x = x + self.mlp(self.out_norm(x))
        x, _ = run_blocks(self.blocks, x)
        return self.out_proj(x)  # B×n_m×P


class OutputAdapters(nn.Module):
    """MultiMAE's decoders: one `OutputAdapter` per modality (`adapters.<m>`), as a span decoder."""

    reads_tokens = True

    def __init__(self, adapters: Mapping[str, OutputAdapter]) -> None:
        super().__init__()
        self.adapters = nn.ModuleDict(dict(adapters))

    def forward(self, latent: Tensor, *, num_prefix: int, keep: Tensor, query: Tensor, tokens: Tokens,
                return_hidden: bool = False) -> tuple[Tensor, ...]:
        """-> (B×Nv×Pmax at the visible tokens, B×Nq×Pmax at the queries[, None])."""
        b = latent.shape[0]
        full = latent.new_zeros(b, tokens.num_tokens, _width(tokens))  # B×N×Pmax
        for s in tokens.spans or ():
            if s.modality not in self.adapters:
                raise ValueError(f"no output adapter for modality {s.modality!r}; adapters: {list(self.adapters)}")
            pred = self.adapters[s.modality](latent, num_prefix, keep, tokens)  # B×n_m×P_m
            full = torch.cat([full[:, : s.start], F.pad(pred, (0, full.shape[-1] - s.target_dim)), full[:, s.end :]], 1)
        out = (gather_tokens(full, keep), gather_tokens(full, query))
        return (*out, None) if return_hidden else out
