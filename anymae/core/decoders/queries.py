"""A cross-attention-only decoder: it materializes the queried tokens and nothing else.

    queries q = mask_token + pos[query]                         B×Nq×dim
    for each block: q = CrossBlock(self_attention=False)(q, latent)   (keys / values: the encoder
                                                                 output, prefix included, bridged
                                                                 from the encoder width inside the
                                                                 attention)
    pred = head(norm(q))                                         B×Nq×P

The queries never attend to each other, so the cost grows with the number of queried tokens only
(SelectiveMAE reconstructs 49 of 196 tokens from 29 visible ones) and the prediction of one query
does not depend on which other tokens are queried. The encoder output is not projected to the
decoder width and no visible token is decoded: `forward` returns no visible predictions.

It takes the same call as `MAEDecoder` (`latent, num_prefix, keep, query, grid, coords`), so
`DropMode` drives it unchanged (`core.skeleton.modes`); any modality whose tokenizer has a
position module at decoder width can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from anymae.core.cross_attention import CrossBlock
from anymae.core.masking import gather_tokens
from anymae.core.transformer import layer_norm


@dataclass
class QueryDecoderConfig:
    """Sizes of the cross-attention-only decoder (SelectiveMAE ViT-B: 512 wide, 8 blocks, 16 heads)."""

    dim: int = 512
    depth: int = 8
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    separate_kv_norm: bool = False  # CrossBlock option; SelectiveMAE feeds the normed latent to k / v


class QueryDecoder(nn.Module):
    """Mask tokens at the queried positions read the encoder output through cross-attention only.

    Args:
        cfg: sizes.
        in_dim: encoder width (the keys' and values' width).
        pos_embed: position module at decoder width, `pos_embed(grid, coords) -> (1|B)×N×dim`.
        head: modality head, dim -> P values per token.
    """

    decodes_queries = True  # DropMode drives it: MAEDecoder's call, queried tokens only (no visible ones)

    def __init__(self, cfg: QueryDecoderConfig, in_dim: int, pos_embed: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_dim = in_dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.pos_embed = pos_embed
        self.blocks = nn.ModuleList(
            CrossBlock(
                cfg.dim, cfg.num_heads, in_dim, self_attention=False, separate_kv_norm=cfg.separate_kv_norm,
                mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, norm_eps=cfg.norm_eps,
            )
            for _ in range(cfg.depth)
        )
        self.norm = layer_norm(cfg.dim, cfg.norm_eps)
        self.head = head

    def forward(
        self,
        latent: Tensor,
        *,
        num_prefix: int,
        keep: Tensor,
        query: Tensor,
        grid: tuple[int, ...],
        coords: Tensor | None = None,
        return_hidden: bool = False,
    ) -> tuple[Tensor | None, ...]:
        """Predict the queried tokens.

        Args:
            latent: B×(P+Nv)×D_enc encoder output (prefix first): every row is a key / value.
            num_prefix: P (the prefix is attended like any encoder token).
            keep: B×Nv visible token indices (unused: the latent carries them; the signature is
                `MAEDecoder`'s).
            query: B×Nq indices of the tokens to predict.
            grid, coords: the token layout, for decoder positions.
            return_hidden: also return the last block's outputs at the queries (before the final
                norm), B×Nq×dim — None here, as `Decoded.hidden` holds [visible, queried] rows
                and this decoder has no visible rows.

        Returns:
            (None, B×Nq×P predictions at the queries[, None])
        """
        pos = gather_tokens(self.pos_embed(grid, coords), query)  # B×Nq×dim
        x = self.mask_token.to(pos.dtype) + pos  # B×Nq×dim, one mask token per query
        for block in self.blocks:
            x = block(x, latent)
        pred = self.head(self.norm(x))  # B×Nq×P
        return (None, pred, None) if return_hidden else (None, pred)
