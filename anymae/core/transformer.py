"""Transformer blocks (timm's ViT `Block`, fused scaled-dot-product attention) and their inits (MAE, trunc-normal)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from timm.models.vision_transformer import Block
from torch import Tensor, nn


def layer_norm(dim: int, eps: float = 1e-6) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=eps)


def make_blocks(
    dim: int,
    depth: int,
    num_heads: int,
    *,
    mlp_ratio: float = 4.0,
    qkv_bias: bool = True,
    drop_path: float = 0.0,
    layer_scale: float | None = None,
    norm_eps: float = 1e-6,
) -> nn.ModuleList:
    """`depth` pre-norm blocks; stochastic depth rises linearly from 0 to `drop_path` (timm rule)."""
    if dim % num_heads:
        raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
    rates = [drop_path * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]  # torch.linspace
    norm = partial(nn.LayerNorm, eps=norm_eps)
    return nn.ModuleList(
        Block(
            dim,
            num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            init_values=layer_scale,
            drop_path=rate,
            norm_layer=norm,
        )
        for rate in rates
    )


def run_blocks(
    blocks: nn.ModuleList,
    x: Tensor,
    pos: Tensor | None = None,
    attn_mask: Tensor | None = None,
    return_layers: tuple[int, ...] = (),
) -> tuple[Tensor, list[Tensor]]:
    """x: B×L×D -> (B×L×D, outputs of the blocks listed in `return_layers`).

    With `pos` (B×L×D) positions are re-added at every block input (Point-MAE).
    """
    inter: list[Tensor] = []
    for i, block in enumerate(blocks):
        x = block(x + pos if pos is not None else x, attn_mask=attn_mask)
        if i in return_layers:
            inter.append(x)
    return x, inter


def _init_layers_(
    module: nn.Module, weight_init: Callable[[Tensor], Any], layers: tuple[type[nn.Module], ...]
) -> None:
    """`weight_init` on the weight of a module of type `layers`, zero bias; LayerNorm weight 1, bias 0."""
    if isinstance(module, layers):
        weight_init(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def init_mae_(module: nn.Module) -> None:
    """MAE's initialization: Linear xavier-uniform with zero bias, LayerNorm (1, 0).

    Apply with `model.apply(init_mae_)`; tokens and patch projections are initialized by their owners.
    """
    _init_layers_(module, nn.init.xavier_uniform_, (nn.Linear,))


def init_trunc_normal_(module: nn.Module) -> None:
    """timm ViT's `_init_weights` as Point-MAE and ChA-MAEViT use it: Linear and Conv1d weights
    trunc-normal(std 0.02) with zero bias, LayerNorm (1, 0). Apply with `module.apply(init_trunc_normal_)`."""
    _init_layers_(module, partial(nn.init.trunc_normal_, std=0.02), (nn.Linear, nn.Conv1d))
