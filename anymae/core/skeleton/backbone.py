"""The shared transformer as a backbone `(x: B×N×in_dim, tokens) -> B×N×out_dim` (replace mode)."""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.tokens import Tokens
from anymae.core.transformer import init_mae_


class TransformerBackbone(nn.Module):
    """The shared `TransformerEncoder` as a replace-mode backbone over all tokens.

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


class LinearHead(nn.Module):
    """A per-token linear map as a replace-mode decoder: `(x: B×N×in_dim, tokens) -> B×N×out_dim`.

    SimMIM's head (a 1×1 convolution to p²·C values, then PixelShuffle) is this Linear on each
    token, with the values in the tokenizer's target order."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor, tokens: Tokens) -> Tensor:
        """B×N×in_dim -> B×N×out_dim."""
        return self.proj(x)
