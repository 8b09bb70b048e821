"""Encoder layouts over spans: modality-specific blocks, then joint blocks (CAV-MAE).

`MultiEncoder` is a `TransformerEncoder` (its joint part keeps timm's names: `blocks.{i}`,
`norm`, prefix tokens) with, in front, `modality_depth` blocks per modality
(`modality_blocks.<m>.{i}`) that each see only their modality's tokens. Layer numbering for
taps: modality blocks are layers 0 .. modality_depth-1 (their outputs put back in sequence
order), joint blocks follow. One shared encoder for every modality (OmniMAE, MultiMAE) is the
plain `TransformerEncoder`; a global token is its cls token (attention does not depend on
order and the global token carries no position, so MultiMAE's "at the end" and MAE's "in front"
compute the same; `Features.prefix` holds it either way).

Modality-only passes (CAV-MAE's contrastive features and its audio-only / visual-only modes):
the modality's tokens through its modality blocks, then the joint blocks with that modality's
own LayerNorms (`stream_norms.<m>.{i}.norm1` / `norm2`, the shared attention and MLP) and the
modality's final norm (`modality_norms.<m>`: CAV-MAE's norm_a / norm_v). The reference loops
its joint blocks re-applying each to the modality-block output (a quirk that only matters for
more than one joint block); here they chain.

The encoder reads the spans from `tokens` (`reads_tokens`: `encode_with_positions` passes the
tokens and the visible indices). Samples may hold different numbers of a modality's visible
tokens (whole-modality masking, a shared budget): the modality blocks then run on padded rows
with an attention mask.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.tokens import Tokens
from anymae.core.transformer import layer_norm, make_blocks


def split_spans(tokens: Tokens, index: Tensor | None, batch: int) -> list[tuple[Tensor, Tensor, bool]]:
    """Per span: (B×K positions into the M-sequence, B×K valid, whether every row is full).

    `index`: B×M token indices of the sequence (None: all N in order). A row's own tokens come
    first (in sequence order); padding after points at the extra slot M (see `gather_rows`).
    """
    device = tokens.x.device
    if index is None:
        index = torch.arange(tokens.num_tokens, device=device).expand(batch, -1)
    m = index.shape[1]
    out = []
    for span in tokens.spans or ():
        inside = (index >= span.start) & (index < span.end)  # B×M
        count = inside.sum(dim=1)  # B
        k = int(count.max()) if count.numel() else 0
        order = torch.argsort((~inside).to(torch.int8), dim=1, stable=True)[:, :k]  # B×K: own tokens first
        valid = torch.arange(k, device=device)[None, :] < count[:, None]  # B×K
        out.append((torch.where(valid, order, m), valid, bool((count == k).all())))
    return out


def gather_rows(x: Tensor, where: Tensor) -> Tensor:
    """x: B×M×D, where: B×K positions in [0, M] (M = padding) -> B×K×D (zeros at padding)."""
    padded = torch.nn.functional.pad(x, (0, 0, 0, 1))  # B×(M+1)×D
    return torch.gather(padded, 1, where.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def scatter_rows(x: Tensor, where: Tensor, rows: Tensor) -> Tensor:
    """x: B×M×D with `rows` (B×K×D) written at `where` (B×K; padding M is dropped) -> B×M×D."""
    padded = torch.nn.functional.pad(x, (0, 0, 0, 1))  # B×(M+1)×D
    return padded.scatter(1, where.unsqueeze(-1).expand_as(rows), rows)[:, :-1]


def run_masked_blocks(blocks: Sequence[nn.Module], x: Tensor, valid: Tensor, full: bool,
                      norms: Sequence[tuple[nn.Module, nn.Module]] | None = None) -> Tensor:
    """Blocks over B×K×D padded rows; `valid` B×K masks padded keys (a row without a valid token
    attends to everything: its output is never read). `norms`: per block (norm1, norm2) used
    instead of the block's own (a stream's LayerNorms around the shared attention and MLP)."""
    mask = None
    if not full:
        keys = valid | ~valid.any(dim=1, keepdim=True)  # B×K
        mask = keys[:, None, None, :]  # B×1×1×K
    for i, block in enumerate(blocks):
        if norms is None:
            x = block(x, attn_mask=mask)
        else:
            n1, n2 = norms[i]
            x = x + block.drop_path1(block.ls1(block.attn(n1(x), attn_mask=mask)))
            x = x + block.drop_path2(block.ls2(block.mlp(n2(x))))
    return x


class MultiEncoder(TransformerEncoder):
    """Modality blocks, then joint blocks over the concatenated tokens (module doc).

    Args:
        cfg: the joint part's sizes; `cfg.depth` counts ALL layers (CAV-MAE: 12 = 11 + 1).
        modalities: the modality names.
        modality_depth: blocks per modality before the joint blocks.
        stream_norms: give every joint block per-modality LayerNorms and every modality a final
            norm for modality-only passes (CAV-MAE).
    """

    reads_tokens = True

    def __init__(self, cfg: EncoderConfig, modalities: Sequence[str], modality_depth: int, *,
                 stream_norms: bool = True) -> None:
        if not 0 <= modality_depth < cfg.depth:
            raise ValueError(f"modality_depth={modality_depth} must be in [0, depth={cfg.depth}) "
                             "(at least one joint block)")
        if cfg.pos_every_block:
            raise ValueError("MultiEncoder adds positions once (pos_every_block=False)")
        super().__init__(dataclasses.replace(cfg, depth=cfg.depth - modality_depth))
        self.modalities = tuple(modalities)
        self.modality_depth = modality_depth
        self.depth = cfg.depth
        self.modality_blocks = nn.ModuleDict({
            m: make_blocks(cfg.dim, modality_depth, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                           layer_scale=cfg.layer_scale, norm_eps=cfg.norm_eps)
            for m in self.modalities
        })
        self.stream_norms = nn.ModuleDict()
        self.modality_norms = nn.ModuleDict()
        if stream_norms:
            for m in self.modalities:
                self.stream_norms[m] = nn.ModuleList(
                    nn.ModuleDict({"norm1": layer_norm(cfg.dim, cfg.norm_eps),
                                   "norm2": layer_norm(cfg.dim, cfg.norm_eps)})
                    for _ in self.blocks
                )
                self.modality_norms[m] = layer_norm(cfg.dim, cfg.norm_eps)

    def _check(self, modality: str) -> None:
        if modality not in self.modality_blocks:
            raise ValueError(f"the encoder has no blocks for modality {modality!r}; modalities: "
                             f"{list(self.modalities)}")

    def forward(
        self, x: Tensor, pos: Tensor | None = None, *, attn_mask: Tensor | None = None,
        return_layers: tuple[int, ...] = (), final_norm: bool = True, tokens: Tokens | None = None,
        index: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Encode B×M×D tokens (positions `pos` added once) with their spans from `tokens`.

        Args:
            x: B×M×D token inputs: the tokens at `index` (B×M), or all N in order (None).
            pos: (1|B)×M×D their positions.
            attn_mask: not supported (the modality blocks build their own).
            return_layers: layer indices (modality blocks first) whose B×(P+M)×D outputs to return.
            final_norm: apply the joint final norm.
            tokens: the tokenized batch (spans).
            index: B×M token indices, or None.

        Returns:
            (B×(P+M)×D latent, intermediate outputs in layer order)
        """
        if tokens is None or not tokens.spans:
            raise ValueError("MultiEncoder needs the tokens' spans (tokens=...) from a MultiTokenizer")
        if attn_mask is not None:
            raise ValueError("MultiEncoder does not take an attention mask")
        if pos is not None:
            x = x + pos  # B×M×D, once
        inter: list[Tensor] = []
        if self.modality_depth:
            parts = split_spans(tokens, index, x.shape[0])
            rows = []
            for span, (where, _, _) in zip(tokens.spans, parts):
                self._check(span.modality)
                rows.append(gather_rows(x, where))  # B×K×D
            for i in range(self.modality_depth):
                rows = [run_masked_blocks(self.modality_blocks[s.modality][i : i + 1], r, valid, full)
                        for s, r, (_, valid, full) in zip(tokens.spans, rows, parts)]
                if i in return_layers or i == self.modality_depth - 1:
                    seq = x
                    for r, (where, _, _) in zip(rows, parts):
                        seq = scatter_rows(seq, where, r)  # B×M×D
                    if i in return_layers:
                        inter.append(self.prepend_prefix(seq))
                    if i == self.modality_depth - 1:
                        x = seq
        x = self.prepend_prefix(x)  # B×(P+M)×D
        for j, block in enumerate(self.blocks):
            x = block(x)
            if self.modality_depth + j in return_layers:
                inter.append(x)
        return (self.norm(x) if final_norm else x), inter

    def modality_pass(self, x: Tensor, modality: str, valid: Tensor | None = None, *, final_norm: bool = True,
                      from_layer: int | None = None) -> Tensor:
        """One modality's tokens alone: [its modality blocks,] the joint blocks with its stream norms.

        Args:
            x: B×K×D the modality's tokens with positions (padded rows: `valid` B×K).
            modality: which modality.
            final_norm: apply the modality's final norm.
            from_layer: None = start at the modality blocks; `modality_depth` = `x` already went
                through them (a tap of layer modality_depth - 1).

        Returns:
            B×K×D.
        """
        self._check(modality)
        if modality not in self.stream_norms:
            raise ValueError("this MultiEncoder has no per-modality norms (stream_norms=False): no modality-only pass")
        full = valid is None
        valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if valid is None else valid
        if from_layer is None:
            x = run_masked_blocks(self.modality_blocks[modality], x, valid, full)
        elif from_layer != self.modality_depth:
            raise ValueError(f"from_layer={from_layer}: expected None or {self.modality_depth}")
        norms = [(n["norm1"], n["norm2"]) for n in self.stream_norms[modality]]
        x = run_masked_blocks(self.blocks, x, valid, full, norms)
        return self.modality_norms[modality](x) if final_norm else x
