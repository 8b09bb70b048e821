"""The shared transformer encoder: prefix tokens (cls, registers/memory) + visible tokens -> latent."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from anymae.core.transformer import layer_norm, make_blocks, run_blocks


@dataclass
class EncoderConfig:
    """Sizes of the shared transformer encoder."""

    dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    cls_token: bool = True
    num_registers: int = 0
    drop_path: float = 0.0
    layer_scale: float | None = None
    norm_eps: float = 1e-6
    pos_every_block: bool = False


def key_padding_mask(valid: Tensor, num_prefix: int = 0) -> Tensor:
    """B×N bool validity (False = padding) -> B×1×1×(P+N) bool attention mask (True = may be
    attended; the P prefix tokens always may), broadcast over heads and queries."""
    if valid.dtype != torch.bool or valid.ndim != 2:
        raise ValueError(f"valid must be a B×N bool tensor, got {valid.dtype} of shape {tuple(valid.shape)}")
    keys = torch.cat([valid.new_ones(valid.shape[0], num_prefix), valid], dim=1)  # B×(P+N)
    return keys[:, None, None, :]  # B×1×1×(P+N)


class TransformerEncoder(nn.Module):
    """ViT encoder over embedded tokens and their positions.

    Whether positions are added once to the input (ViT, MAE) or re-added at every block input
    (Point-MAE, `cfg.pos_every_block`) is decided here and nowhere else: callers pass the tokens
    and their positions separately.

    Parameter names follow timm's VisionTransformer (`cls_token`, `reg_token`, `blocks.{i}`,
    `norm`), so an image encoder exports to timm by renaming only the tokenizer's parts.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dim, self.depth = cfg.dim, cfg.depth
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.cls_token else None
        self.reg_token = (
            nn.Parameter(torch.zeros(1, cfg.num_registers, cfg.dim)) if cfg.num_registers else None
        )
        self.blocks = make_blocks(
            cfg.dim,
            cfg.depth,
            cfg.num_heads,
            mlp_ratio=cfg.mlp_ratio,
            qkv_bias=cfg.qkv_bias,
            drop_path=cfg.drop_path,
            layer_scale=cfg.layer_scale,
            norm_eps=cfg.norm_eps,
        )
        self.norm = layer_norm(cfg.dim, cfg.norm_eps)
        for token in (self.cls_token, self.reg_token):
            if token is not None:
                nn.init.normal_(token, std=0.02)

    @property
    def num_prefix(self) -> int:
        return int(self.cls_token is not None) + self.cfg.num_registers

    def prepend_prefix(self, x: Tensor) -> Tensor:
        """B×N×D -> B×(P+N)×D with the cls token, then the register tokens, in front."""
        parts = [t.expand(x.shape[0], -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
        return torch.cat([*parts, x], dim=1) if parts else x

    def forward(
        self,
        x: Tensor,
        pos: Tensor | None = None,
        *,
        attn_mask: Tensor | None = None,
        valid: Tensor | None = None,
        return_layers: tuple[int, ...] = (),
        final_norm: bool = True,
    ) -> tuple[Tensor, list[Tensor]]:
        """Encode tokens.

        Args:
            x: B×N×D tokens without positions.
            pos: (1|B)×N×D positions of those tokens: added to `x` once, or at every block input
                when `cfg.pos_every_block` (prefix tokens get zero positions); None = none.
            attn_mask: optional mask broadcastable to B×heads×(P+N)×(P+N).
            valid: optional B×N bool, False at padding: no token attends to a padded one (prefix
                tokens are always valid); a padded token's own output is computed but meaningless.
                Not together with `attn_mask`.
            return_layers: block indices whose outputs to return as intermediates.
            final_norm: apply the final LayerNorm.

        Returns:
            (B×(P+N)×D latent, list of intermediate B×(P+N)×D outputs)
        """
        if pos is not None and not self.cfg.pos_every_block:
            x = x + pos  # B×N×D, once
        x = self.prepend_prefix(x)  # B×(P+N)×D
        block_pos = None
        if self.cfg.pos_every_block and pos is not None:
            zeros = pos.new_zeros(pos.shape[0], self.num_prefix, pos.shape[2])
            block_pos = torch.cat([zeros, pos], dim=1).expand(x.shape[0], -1, -1)  # B×(P+N)×D
        if valid is not None:
            if attn_mask is not None:
                raise ValueError("give the encoder a padding mask (valid) or an attn_mask, not both")
            attn_mask = key_padding_mask(valid, self.num_prefix)
        x, inter = run_blocks(self.blocks, x, block_pos, attn_mask, return_layers)
        return (self.norm(x) if final_norm else x), inter
