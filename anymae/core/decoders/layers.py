"""A decoder whose last blocks cross-attend to encoder layers (Hi-End-MAE, HiCMAE's skip decoder).

    seq = [prefix?, embed(latent_vis) + pos[keep], mask_token + pos[query]]     as `MAEDecoder`
    seq = self-attention blocks (cfg.depth of them)
    for j, k in enumerate(cross_layers):                   deep -> shallow, e.g. (9, 6, 3)
        ctx = context_embed[j](taps[k])                     encoder block k's output (before the
                                                            final norm): prefix + visible tokens
        seq = cross_blocks[j](seq, ctx)                     CrossBlock: self-attn, cross-attn, MLP
    pred = head(norm(seq))

Hi-End-MAE (FengheTan9/Hi-End-MAE `hi_end_mae.py`, `networks/vit.py`): 2 self blocks, then 3 self +
cross blocks reading `hidden_states_out[9], [6], [3]` (the outputs of encoder blocks 10, 7, 4 of 12,
cls token included) each through its own Linear(encoder -> decoder width, bias, xavier init), with
no position added to the context and no norm on it (`CrossAttention.kv(y)` reads y as it is).
HiCMAE's variant adds the decoder positions to the context (`context_pos`, prefix tokens zero).

The decoder declares the encoder layers it reads (`taps`); the skeleton encodes with those taps and
hands them to the decoder (`MaskedAutoencoder.decode`). Any modality whose tokens go through the
`TransformerEncoder` works: the context is token-order free (attention), positions come from the
modality's decoder position module, as in `MAEDecoder`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from anymae.core.cross_attention import CrossBlock
from anymae.core.decoders.mae import DecoderConfig, MAEDecoder
from anymae.core.transformer import run_blocks


class LayerDecoder(MAEDecoder):
    """`MAEDecoder` plus cross blocks that read encoder layers (module doc).

    Args:
        cfg: sizes; `cfg.depth` is the number of self-attention blocks before the cross blocks.
            Windowed attention and positions at every block are not supported here.
        in_dim: encoder width.
        pos_embed: position module at decoder width, `pos_embed(grid, coords) -> (1|B)×N×dim`.
        head: modality head, dim -> P values per token.
        cross_layers: encoder block index read by each cross block, in block order (Hi-End-MAE:
            (9, 6, 3), deep -> shallow); repeats are allowed.
        cross_self_attention: each cross block starts with self-attention (Hi-End-MAE, HiCMAE).
        context_norm: a LayerNorm on the projected context inside each cross block (`CrossBlock`'s
            `norm_k`); False = none (Hi-End-MAE).
        context_pos: add the decoder positions of the context's tokens to it (HiCMAE; prefix zero).
        context_prefix: the context keeps the encoder's prefix tokens (cls; Hi-End-MAE: yes).
    """

    def __init__(
        self,
        cfg: DecoderConfig,
        in_dim: int,
        pos_embed: nn.Module,
        head: nn.Module,
        *,
        cross_layers: Sequence[int],
        cross_self_attention: bool = True,
        context_norm: bool = False,
        context_pos: bool = False,
        context_prefix: bool = True,
    ) -> None:
        if cfg.window is not None or cfg.pos_every_block:
            raise ValueError("a LayerDecoder runs global attention with positions added once: "
                             "window and pos_every_block must be unset")
        layers = tuple(int(k) for k in cross_layers)
        if not layers or min(layers) < 0:
            raise ValueError(f"cross_layers must name at least one encoder block index >= 0, got {tuple(cross_layers)}")
        super().__init__(cfg, in_dim, pos_embed, head)
        self.cross_layers = layers
        self.context_pos, self.context_prefix = context_pos, context_prefix
        self.context_embed = nn.ModuleList(nn.Linear(in_dim, cfg.dim) for _ in layers)  # one per cross block
        self.cross_blocks = nn.ModuleList(
            CrossBlock(
                cfg.dim, cfg.num_heads, self_attention=cross_self_attention, mlp_ratio=cfg.mlp_ratio,
                qkv_bias=cfg.qkv_bias, norm_eps=cfg.norm_eps, norm_context=context_norm,
            )  # context_norm=False: encoder layers enter key / value projections as they are (Hi-End-MAE)
            for _ in layers
        )

    @property
    def taps(self) -> tuple[int, ...]:
        """The encoder block indices this decoder reads, sorted (the skeleton encodes with them)."""
        return tuple(sorted(set(self.cross_layers)))

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
        taps: dict[int, Tensor] | None = None,
    ) -> tuple[Tensor, ...]:
        """Predict values for visible and query tokens, reading encoder layers.

        Args:
            latent: B×(P+Nv)×D_enc encoder output (prefix first, after the final norm).
            num_prefix: P.
            keep: B×Nv indices of the visible tokens (the order of `latent`).
            query: B×Nq indices of the tokens to predict from mask tokens.
            grid, coords: the token layout, for decoder positions.
            return_hidden: also return the last block's outputs (before the final norm).
            taps: encoder block outputs by index, each B×(P+Nv)×D_enc (`Encoded.taps`); must hold
                every index of `self.taps`.

        Returns:
            (B×Nv×P at visible positions, B×Nq×P at query positions [, B×(Nv+Nq)×dim hidden states])
        """
        missing = [k for k in self.taps if taps is None or k not in taps]
        if missing:
            got = sorted(taps) if taps is not None else "none"
            raise ValueError(f"LayerDecoder reads encoder layers {list(self.taps)} but got taps {got} "
                             f"(missing {missing}); the encoder must be run with taps={self.taps}")
        assert taps is not None
        seq, seq_pos = self.sequence(latent, num_prefix=num_prefix, keep=keep, query=query, grid=grid, coords=coords)
        pos_vis = seq_pos[:, seq.shape[1] - keep.shape[1] - query.shape[1] :][:, : keep.shape[1]]  # B×Nv×dim
        seq, _ = run_blocks(self.blocks, seq + seq_pos)  # B×L×dim
        for embed, block, k in zip(self.context_embed, self.cross_blocks, self.cross_layers):
            seq = block(seq, self._context(embed(taps[k]), num_prefix, pos_vis))
        return self.predict(seq, keep.shape[1], query.shape[1], return_hidden)

    def _context(self, ctx: Tensor, num_prefix: int, pos_vis: Tensor) -> Tensor:
        """B×(P+Nv)×dim projected layer -> the cross block's context (prefix kept or not, positions or not)."""
        if self.context_pos:
            zeros = pos_vis.new_zeros(pos_vis.shape[0], num_prefix, pos_vis.shape[2])
            ctx = ctx + torch.cat([zeros, pos_vis], dim=1)  # B×(P+Nv)×dim
        return ctx if self.context_prefix else ctx[:, num_prefix:]
