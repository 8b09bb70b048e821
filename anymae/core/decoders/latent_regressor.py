"""CAE's decoder option: a latent regressor (cross-attention from mask queries to visible latents),
then a decoder on the predicted latents alone.

    z  = norm(Linear(latent))            visible latents, prefix dropped   B×Nv×dim (identity at equal widths)
    q  = mask_token                      one query per queried token       B×Nq×dim
    for block in regressor:              CrossBlock(self_attention=False, separate_kv_norm=True)
        q = block(q, cat[z, q], pos_q=pos[query], pos_k=cat[pos[keep], pos[query]])
    ẑ  = regressor_norm(q)               predicted latents of the queried tokens (CAE's alignment reads them)
    y  = head(norm(blocks(ẑ + pos[query])))   B×Nq×P

Keys / values are the visible latents *and* the current queries (CAE's `torch.cat([x_unmasked,
x_masked])`); positions go on queries and keys, not values. The decoder's blocks see only the
predicted latents (self-attention among the queried tokens, with their positions), so nothing is
predicted at the visible tokens. Works with any tokenizer whose position module gives
`pos_embed(grid, coords) -> (1|B)×N×dim` (images, video, audio, points).

Used with the plain `DropMode` (it admits any decoder declaring `decodes_queries = True`, not only an
`MAEDecoder`) and `core.skeleton.distill_terms.LatentAlignment`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from anymae.core.cross_attention import CrossBlock
from anymae.core.masking import gather_tokens
from anymae.core.transformer import layer_norm, make_blocks


class LatentRegressorDecoder(nn.Module):
    """CAE's regressor + decoder (module doc).

    Args:
        in_dim: encoder width.
        dim: regressor / decoder width (CAE ViT-B: 768 = the encoder's, no projection).
        regressor_depth: cross-attention blocks (CAE: 4).
        decoder_depth: self-attention blocks on the predicted latents (CAE: 4).
        num_heads: heads of both.
        pos_embed: position module at width `dim`.
        head: dim -> P values per token.
        mlp_ratio, qkv_bias, norm_eps: block sizes.
        layer_scale: the decoder blocks' layer-scale init (CAE: 0.1; None = off).
    """

    decodes_queries = True

    def __init__(
        self, in_dim: int, dim: int, *, regressor_depth: int, decoder_depth: int, num_heads: int,
        pos_embed: nn.Module, head: nn.Module, mlp_ratio: float = 4.0, qkv_bias: bool = True, norm_eps: float = 1e-6,
        layer_scale: float | None = 0.1,
    ) -> None:
        super().__init__()
        if regressor_depth < 1:
            raise ValueError(f"regressor_depth={regressor_depth}: the latent regressor needs at least one block")
        self.in_dim, self.dim = in_dim, dim
        if in_dim != dim:  # CAE's encoder_to_regresser + encoder_to_regresser_norm
            self.embed: nn.Module = nn.Sequential(nn.Linear(in_dim, dim), layer_norm(dim, norm_eps))
        else:
            self.embed = nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)  # CAE's trunc_normal_(std=init_std)
        self.pos_embed = pos_embed
        self.regressor = nn.ModuleList(
            CrossBlock(dim, num_heads, self_attention=False, separate_kv_norm=True, mlp_ratio=mlp_ratio,
                       qkv_bias=qkv_bias, norm_eps=norm_eps)
            for _ in range(regressor_depth)
        )
        self.regressor_norm = layer_norm(dim, norm_eps)
        self.blocks = make_blocks(dim, decoder_depth, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                                  layer_scale=layer_scale, norm_eps=norm_eps)
        self.norm = layer_norm(dim, norm_eps)
        self.head = head

    def project_latent(self, latent: Tensor) -> Tensor:
        """B×L×in_dim encoder latents -> B×L×dim, as the regressor sees them (also CAE's alignment target)."""
        return self.embed(latent)

    def regress(self, visible: Tensor, pos_visible: Tensor, pos_query: Tensor) -> Tensor:
        """Predicted latents of the queried tokens.

        Args:
            visible: B×Nv×dim projected visible latents.
            pos_visible: B×Nv×dim their positions.
            pos_query: B×Nq×dim the queried tokens' positions.

        Returns:
            B×Nq×dim, after the regressor's final norm.
        """
        q = self.mask_token.expand(pos_query.shape[0], pos_query.shape[1], -1)  # B×Nq×dim
        pos_k = torch.cat([pos_visible, pos_query], dim=1)  # B×(Nv+Nq)×dim
        for block in self.regressor:
            q = block(q, torch.cat([visible, q], dim=1), pos_q=pos_query, pos_k=pos_k)  # B×Nq×dim
        return self.regressor_norm(q)

    def forward(
        self, latent: Tensor, *, num_prefix: int, keep: Tensor, query: Tensor, grid: tuple[int, ...],
        coords: Tensor | None = None, return_hidden: bool = False,
    ) -> tuple[Tensor | None, ...]:
        """Predict the queried tokens' values (`MAEDecoder`'s call).

        Args:
            latent: B×(P+Nv)×in_dim encoder output (prefix first; the prefix is not used).
            num_prefix: P.
            keep: B×Nv visible token indices (the order of `latent`).
            query: B×Nq tokens to predict.
            grid, coords: the layout, for positions.
            return_hidden: also return B×(Nv+Nq)×dim `[visible latents, predicted latents]`.

        Returns:
            (None: no predictions at visible tokens, B×Nq×P predictions[, hidden])
        """
        visible = self.project_latent(latent[:, num_prefix:])  # B×Nv×dim
        pos = self.pos_embed(grid, coords)  # (1|B)×N×dim
        pos_vis, pos_query = gather_tokens(pos, keep), gather_tokens(pos, query)  # B×Nv×dim, B×Nq×dim
        predicted = self.regress(visible, pos_vis, pos_query)  # B×Nq×dim
        x = predicted + pos_query
        for block in self.blocks:
            x = block(x)
        pred = self.head(self.norm(x))  # B×Nq×P
        if return_hidden:
            return None, pred, torch.cat([visible, predicted], dim=1)
        return None, pred


__all__ = ["LatentRegressorDecoder"]
