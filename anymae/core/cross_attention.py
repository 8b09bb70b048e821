"""Cross-attention: queries from one token set read another (a view, an encoder layer, visible latents).

    CrossAttention(dim, num_heads, context_dim)      q from x (B×Lq×dim), k / v from context (B×Lk×context_dim)
    CrossBlock(dim, num_heads, context_dim, self_attention=True|False, separate_kv_norm=...)

`CrossBlock` is the one decoder block that reads a second token set; pre-norm, residual:

    x = x + self_attn(norm1(x))                          (self_attention=True: CroCo, Hi-End-MAE)
    x = x + cross_attn(norm_q(x), norm_k(ctx), norm_v(ctx))
    x = x + mlp(norm2(x))

`separate_kv_norm=False` uses one norm for keys and values (CroCo's `norm_y`); True gives keys and
values their own norms (CAE's regressor: `norm1_k`, `norm1_v`); `norm_context=False` none at all
(Hi-End-MAE: encoder layers enter the key / value projections as they are). Without self-attention it is a
cross-attention-only block (CAE's regressor, SelectiveMAE's decoder): the queries never see each
other, so only the queried tokens need to be materialized. `pos_q` / `pos_k` (optional) are added
to queries and keys before the norms (CAE adds positions to q and k, not to v).

Attention is `F.scaled_dot_product_attention` (fused kernels where the device has them).
"""

from __future__ import annotations

import torch.nn.functional as F
from einops import rearrange
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from anymae.core.transformer import layer_norm


class CrossAttention(nn.Module):
    """Multi-head attention with queries from `x` and keys / values from `context`.

    Args:
        dim: query width (and output width).
        num_heads: heads (dim must divide).
        context_dim: width of the context tokens (default `dim`); keys / values are projected to `dim`.
        qkv_bias: biases on the q, k, v projections.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, *, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        context_dim = dim if context_dim is None else context_dim
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(context_dim, dim, bias=qkv_bias)
        self.v = nn.Linear(context_dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, keys: Tensor, values: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        """x: B×Lq×dim, keys: B×Lk×context_dim, values: B×Lk×context_dim (default `keys`) -> B×Lq×dim.

        attn_mask: optional bool B×Lk (True = attend) or a float / bool mask broadcastable to
        B×heads×Lq×Lk.
        """
        values = keys if values is None else values
        h = self.num_heads
        q = rearrange(self.q(x), "b l (h d) -> b h l d", h=h)  # B×h×Lq×d
        k = rearrange(self.k(keys), "b l (h d) -> b h l d", h=h)  # B×h×Lk×d
        v = rearrange(self.v(values), "b l (h d) -> b h l d", h=h)
        if attn_mask is not None and attn_mask.ndim == 2:
            attn_mask = attn_mask[:, None, None, :]  # B×1×1×Lk
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # B×h×Lq×d
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))


class CrossBlock(nn.Module):
    """A pre-norm block: [self-attention], cross-attention to a context, MLP (module doc).

    Args:
        dim: token width.
        num_heads: heads of both attentions.
        context_dim: context width (default `dim`).
        self_attention: include the self-attention sub-layer.
        separate_kv_norm: keys and values get their own norms (CAE) instead of one (CroCo).
        norm_context: normalize the context at all (False: Hi-End-MAE).
        mlp_ratio, qkv_bias, drop_path, norm_eps: as timm's ViT block.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        context_dim: int | None = None,
        *,
        self_attention: bool = True,
        separate_kv_norm: bool = False,
        norm_context: bool = True,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        context_dim = dim if context_dim is None else context_dim
        self.self_attention = self_attention
        if self_attention:
            from timm.models.vision_transformer import Attention

            self.norm1 = layer_norm(dim, norm_eps)
            self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm_q = layer_norm(dim, norm_eps)
        self.norm_k: nn.Module = layer_norm(context_dim, norm_eps) if norm_context else nn.Identity()
        self.norm_v = layer_norm(context_dim, norm_eps) if separate_kv_norm and norm_context else None
        self.cross_attn = CrossAttention(dim, num_heads, context_dim, qkv_bias=qkv_bias)
        self.norm2 = layer_norm(dim, norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(
        self, x: Tensor, context: Tensor, *, pos_q: Tensor | None = None, pos_k: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """x: B×Lq×dim queries, context: B×Lk×context_dim -> B×Lq×dim.

        pos_q / pos_k: positions added to the queries / keys before their norms (values get none).
        context_mask: bool B×Lk, True where a context token may be attended (padding False).
        """
        if self.self_attention:
            x = x + self.drop_path(self.attn(self.norm1(x)))
        q = x if pos_q is None else x + pos_q
        k = context if pos_k is None else context + pos_k
        if self.norm_v is None:
            keys = values = self.norm_k(context) if pos_k is None else None
            if keys is None:  # one norm, but keys carry positions and values do not
                keys, values = self.norm_k(k), self.norm_k(context)
        else:
            keys, values = self.norm_k(k), self.norm_v(context)
        x = x + self.drop_path(self.cross_attn(self.norm_q(q), keys, values, attn_mask=context_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))
