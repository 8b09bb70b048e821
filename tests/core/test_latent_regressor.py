"""CAE's latent regressor decoder: shapes, projection, queries read only the visible latents and
themselves (a query's prediction follows it when the queries are reordered)."""

from __future__ import annotations

import torch
from torch import nn

from anymae.core.decoders.latent_regressor import LatentRegressorDecoder
from anymae.core.pos_embed import FixedSinCos


def _decoder(in_dim: int = 24, dim: int = 16) -> LatentRegressorDecoder:
    torch.manual_seed(0)
    return LatentRegressorDecoder(in_dim, dim, regressor_depth=2, decoder_depth=1, num_heads=2,
                                  pos_embed=FixedSinCos((4, 4), dim), head=nn.Linear(dim, 5)).eval()


def test_shapes_and_projection() -> None:
    dec = _decoder()
    latent = torch.randn(2, 1 + 6, 24)
    perm = torch.stack([torch.randperm(16) for _ in range(2)])
    keep, query = perm[:, :6], perm[:, 6:]
    vis, pred, hidden = dec(latent, num_prefix=1, keep=keep, query=query, grid=(4, 4), return_hidden=True)
    assert vis is None and pred.shape == (2, 10, 5) and hidden.shape == (2, 16, 16)
    assert torch.allclose(hidden[:, :6], dec.project_latent(latent[:, 1:]))  # Linear + LayerNorm at 24 -> 16
    assert isinstance(dec.embed, nn.Sequential) and isinstance(_decoder(16, 16).embed, nn.Identity)
    assert len(dec.regressor) == 2 and all(not b.self_attention and b.norm_v is not None for b in dec.regressor)


def test_queries_are_permutation_equivariant_and_ignore_the_prefix() -> None:
    dec = _decoder()
    latent = torch.randn(1, 1 + 6, 24)
    keep, query = torch.arange(6)[None], torch.arange(6, 16)[None]
    _, pred = dec(latent, num_prefix=1, keep=keep, query=query, grid=(4, 4))
    order = torch.randperm(10)
    _, pred2 = dec(latent, num_prefix=1, keep=keep, query=query[:, order], grid=(4, 4))
    assert torch.allclose(pred2, pred[:, order], atol=1e-5)
    other_cls = latent.clone()
    other_cls[:, 0] = 7.0
    _, pred3 = dec(other_cls, num_prefix=1, keep=keep, query=query, grid=(4, 4))
    assert torch.equal(pred3, pred)
