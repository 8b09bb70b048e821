"""A decoder whose blocks also cross-attend to another view's encoding (CroCo's cross-view completion).

`CrossViewDecoder` is an `MAEDecoder` (so `DropMode` drives it unchanged) whose blocks are
`core.cross_attention.CrossBlock(self_attention=True)`: self-attention over the decoded view's
tokens, cross-attention to the memory, MLP. The memory is another branch's `Encoded` (a
`BranchSpec(memory=j)` hands it over as `memory=`): a whole view (`BranchSpec(whole=True)`, its
tokens in token order), projected by the same `embed` as the decoded view, with the same decoder
positions added (CroCo: `decoder_embed` and `dec_pos_embed` serve both images), and normalized
in every block by one LayerNorm for keys and values (CroCo's `norm_y`; `norm_memory=False` is its
`norm_im2_in_dec=False`, the memory as is).

    x   = [prefix?, embed(visible) + pos[keep], mask_token + pos[query]]     B×L×dim
    mem = embed(memory tokens) + pos[0..N)                                   B×N×dim
    x   = block(x, mem) for each block; predictions = head(norm(x))

Works for any modality whose two views share one token layout (image pairs, two clips, ...).
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from anymae.core.cross_attention import CrossBlock
from anymae.core.decoders.mae import DecoderConfig, MAEDecoder
from anymae.core.skeleton.steps import Encoded


class CrossViewDecoder(MAEDecoder):
    """`MAEDecoder` with self + cross-attention blocks reading another view's encoding (module doc).

    Args:
        cfg: sizes (`window` and `pos_every_block` are not supported).
        in_dim: encoder width.
        pos_embed: position module at decoder width, `pos_embed(grid, coords) -> (1|B)×N×dim`.
        head: modality head, dim -> P values per token.
        norm_memory: normalize the memory in every block (CroCo's `norm_im2_in_dec`, default True).
    """

    def __init__(
        self, cfg: DecoderConfig, in_dim: int, pos_embed: nn.Module, head: nn.Module, *, norm_memory: bool = True
    ) -> None:
        if cfg.window is not None or cfg.pos_every_block:
            raise ValueError("CrossViewDecoder: window and pos_every_block are not supported")
        super().__init__(dataclasses.replace(cfg, depth=0), in_dim, pos_embed, head)  # blocks made below
        self.cfg = cfg
        rates = [cfg.drop_path * i / (cfg.depth - 1) if cfg.depth > 1 else 0.0 for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            CrossBlock(cfg.dim, cfg.num_heads, self_attention=True, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                       drop_path=rate, norm_eps=cfg.norm_eps, norm_context=norm_memory)
            for rate in rates
        )
        self.norm_memory = norm_memory

    def forward(  # type: ignore[override]
        self,
        latent: Tensor,
        *,
        num_prefix: int,
        keep: Tensor,
        query: Tensor,
        grid: tuple[int, ...],
        coords: Tensor | None = None,
        return_hidden: bool = False,
        memory: Encoded | None = None,
    ) -> tuple[Tensor, ...]:
        """Predict values for visible and query tokens, reading `memory`.

        Args:
            latent: B×(P+Nv)×D_enc encoder output of the decoded view (prefix first).
            num_prefix: P.
            keep: B×Nv indices of its visible tokens; query: B×Nq indices of the tokens to predict.
            grid, coords: the token layout (shared by both views), for decoder positions.
            return_hidden: also return the last block's outputs at [visible, query], B×(Nv+Nq)×dim.
            memory: the other view's `Encoded`, B×(P'+N)×D_enc, every token in token order.

        Returns:
            (B×Nv×P, B×Nq×P [, B×(Nv+Nq)×dim]) as `MAEDecoder`.
        """
        if memory is None:
            raise ValueError("CrossViewDecoder reads another view's encoding: give the branch BranchSpec(memory=j) "
                             "pointing at a whole-view branch")
        pos = self.pos_embed(grid, coords)  # (1|B)×N×dim
        mem = memory.latent[:, memory.num_prefix :]  # B×N×D_enc
        if mem.shape[1] != pos.shape[1]:
            raise ValueError(f"the memory holds {mem.shape[1]} tokens, the view's grid {tuple(grid)} has "
                             f"{pos.shape[1]}: "
                             "the memory must be a whole view (BranchSpec(whole=True)) of the same layout")
        mem = self.embed(mem) + pos  # B×N×dim
        seq, seq_pos = self.sequence(latent, num_prefix=num_prefix, keep=keep, query=query, grid=grid, coords=coords)
        seq = seq + seq_pos  # B×L×dim
        for block in self.blocks:
            seq = block(seq, mem)
        return self.predict(seq, keep.shape[1], query.shape[1], return_hidden)
