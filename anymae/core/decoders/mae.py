"""The MAE decoder: project the latent, add mask tokens at the positions to predict, decode.

The decoder sequence is `[prefix?, visible + pos[keep], mask_token + pos[query]]`. With
`query = hidden tokens` this is MAE's decoder (which inserts mask tokens and un-shuffles before
adding positions: with explicit positions attention does not depend on token order, so only the
order of the outputs differs, and the model restores it). A decoder-side keep set (VideoMAE V2's
dual masking) is just another `query`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from anymae.core.encoder import key_padding_mask
from anymae.core.masking import gather_tokens
from anymae.core.transformer import layer_norm, make_blocks, run_blocks
from anymae.core.decoders.windowed import make_windowed_blocks


@dataclass
class DecoderConfig:
    """Sizes and wiring of the MAE decoder."""

    dim: int = 512
    depth: int = 8
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    project: bool = True  # Linear(encoder width -> dim); False requires equal widths (Point-MAE)
    project_bias: bool = True  # VideoMAE's encoder_to_decoder has no bias
    keep_prefix: bool = True  # MAE keeps the cls token in the decoder; VideoMAE/Audio-MAE do not
    pos_every_block: bool = False
    norm_eps: float = 1e-6
    drop_path: float = 0.0  # stochastic depth rising to this rate over the blocks (Point-MAE: 0.1)
    # Windowed (Swin-v2-cr) attention on a fixed 2-D grid instead of global attention (Audio-MAE's
    # local decoder: window (4, 4), shift (2, 0) on odd blocks, grid (64, 8)); see core/decoders/windowed.py.
    window: tuple[int, int] | None = None
    window_shift: tuple[int, int] = (0, 0)
    window_grid: tuple[int, int] | None = None


class MAEDecoder(nn.Module):
    """Decoder with a modality-chosen position module and prediction head.

    Args:
        cfg: sizes.
        in_dim: encoder width.
        pos_embed: position module at decoder width, `pos_embed(grid, coords) -> (1|B)×N×dim`.
        head: modality head, dim -> P values per token.
    """

    def __init__(self, cfg: DecoderConfig, in_dim: int, pos_embed: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.project:
            self.embed: nn.Module = nn.Linear(in_dim, cfg.dim, bias=cfg.project_bias)
        elif in_dim != cfg.dim:
            raise ValueError(f"decoder without projection needs equal widths, got {in_dim} -> {cfg.dim}")
        else:
            self.embed = nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.pos_embed = pos_embed
        if cfg.window is None:
            self.blocks = make_blocks(
                cfg.dim, cfg.depth, cfg.num_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias, norm_eps=cfg.norm_eps,
                drop_path=cfg.drop_path,
            )
        else:
            if cfg.window_grid is None or cfg.keep_prefix or cfg.pos_every_block:
                raise ValueError("a windowed decoder needs window_grid, keep_prefix=False and pos_every_block=False")
            self.blocks = make_windowed_blocks(
                cfg.dim, cfg.depth, cfg.num_heads, grid=cfg.window_grid, window=cfg.window, shift=cfg.window_shift,
                mlp_ratio=cfg.mlp_ratio, norm_eps=cfg.norm_eps,
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
        valid: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        """Predict values for visible and query tokens.

        Args:
            latent: B×(P+Nv)×D_enc encoder output (prefix first).
            num_prefix: P.
            keep: B×Nv indices of the visible tokens (the order of `latent`).
            query: B×Nq indices of the tokens to predict from mask tokens.
            grid, coords: the token layout, for decoder positions.
            valid: optional B×N bool in token order, False at padding (`Tokens.valid`): no token
                attends to a padded one.
            return_hidden: also return the last block's outputs (before the final norm) at the
                visible and query positions, B×(Nv+Nq)×dim (Point-CMAE compares them).

        Returns:
            (B×Nv×P predictions at visible positions, B×Nq×P predictions at query positions
            [, B×(Nv+Nq)×dim hidden states])
        """
        seq, seq_pos = self.sequence(latent, num_prefix=num_prefix, keep=keep, query=query, grid=grid, coords=coords)
        attn = None
        if valid is not None:  # key-padding mask over [prefix (always valid)?, visible, queried]
            if self.cfg.window is not None:
                raise ValueError("a windowed decoder does not take padded sequences (Tokens.valid)")
            keys = torch.cat([torch.gather(valid, 1, keep), torch.gather(valid, 1, query)], dim=1)  # B×(Nv+Nq)
            attn = key_padding_mask(keys, seq.shape[1] - keys.shape[1])  # B×1×1×L
        if self.cfg.window is not None:
            seq = self._run_windowed(seq + seq_pos, torch.cat([keep, query], dim=1), grid)
        elif self.cfg.pos_every_block:
            seq, _ = run_blocks(self.blocks, seq, seq_pos, attn)
        else:
            seq, _ = run_blocks(self.blocks, seq + seq_pos, None, attn)
        return self.predict(seq, keep.shape[1], query.shape[1], return_hidden)

    def sequence(
        self, latent: Tensor, *, num_prefix: int, keep: Tensor, query: Tensor, grid: tuple[int, ...],
        coords: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The decoder's input sequence and its positions, before the blocks.

        Args:
            latent: B×(P+Nv)×D_enc encoder output (prefix first).
            num_prefix: P.
            keep: B×Nv indices of the visible tokens (the order of `latent`).
            query: B×Nq indices of the tokens given mask tokens (may be empty: B×0).
            grid, coords: the token layout.

        Returns:
            (B×L×dim sequence, B×L×dim positions), L = [P if `keep_prefix`] + Nv + Nq, in the order
            [prefix, visible, queried]; prefix positions are zero (MAE).
        """
        x = self.embed(latent)  # B×(P+Nv)×dim
        prefix, visible = x[:, :num_prefix], x[:, num_prefix:]
        pos = self.pos_embed(grid, coords)  # (1|B)×N×dim
        pos_vis, pos_query = gather_tokens(pos, keep), gather_tokens(pos, query)  # B×Nv×dim, B×Nq×dim
        masked = self.mask_token.expand(query.shape[0], query.shape[1], -1)  # B×Nq×dim
        parts, pos_parts = [visible, masked], [pos_vis, pos_query]
        if self.cfg.keep_prefix and num_prefix:
            parts.insert(0, prefix)
            pos_parts.insert(0, pos_vis.new_zeros(prefix.shape))
        return torch.cat(parts, dim=1), torch.cat(pos_parts, dim=1)  # B×L×dim each

    def predict(self, seq: Tensor, nv: int, nq: int, return_hidden: bool = False) -> tuple[Tensor, ...]:
        """The blocks' output B×L×dim -> (B×Nv×P at the visible tokens, B×Nq×P at the queried ones
        [, B×(Nv+Nq)×dim hidden states before the final norm]); the prefix is dropped."""
        hidden = seq[:, seq.shape[1] - nv - nq :]  # B×(Nv+Nq)×dim
        out = self.head(self.norm(hidden))  # B×(Nv+Nq)×P
        return (out[:, :nv], out[:, nv:], hidden) if return_hidden else (out[:, :nv], out[:, nv:])

    def _run_windowed(self, seq: Tensor, order: Tensor, grid: tuple[int, ...]) -> Tensor:
        """Windowed blocks: seq B×N×dim holds token `order[b, i]` at i; blocks run in grid order."""
        if tuple(grid) != tuple(self.cfg.window_grid or ()) or order.shape[1] != grid[0] * grid[1]:
            raise ValueError(
                f"windowed decoder built for grid {self.cfg.window_grid} got {seq.shape[1]} tokens on grid "
                f"{tuple(grid)}; it needs every token of its grid (visible + predicted)"
            )
        index = order.unsqueeze(-1).expand_as(seq)  # B×N×dim
        x = torch.empty_like(seq).scatter(1, index, seq)  # B×N×dim, token i at position i
        for block in self.blocks:
            x = block(x)
        return torch.gather(x, 1, index)  # back to the order of `seq`
