"""The cross-attention-only decoder (core.decoders.queries): it computes the queried tokens only."""

from __future__ import annotations

import torch

from anymae.core.pos_embed import FixedSinCos
from anymae.core.decoders.queries import QueryDecoder, QueryDecoderConfig


def test_query_decoder_materializes_only_the_queried_tokens() -> None:
    torch.manual_seed(0)
    cfg = QueryDecoderConfig(dim=32, depth=2, num_heads=4)
    dec = QueryDecoder(cfg, 48, FixedSinCos((4, 4), 32), torch.nn.Linear(32, 5))
    seen: list[int] = []
    for block in dec.blocks:
        block.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
    latent = torch.randn(2, 1 + 6, 48)
    query = torch.tensor([[3, 9, 12], [0, 1, 15]])
    vis, pred = dec(latent, num_prefix=1, keep=torch.zeros(2, 6, dtype=torch.long), query=query, grid=(4, 4))
    assert vis is None and pred.shape == (2, 3, 5) and seen == [3, 3]
    _, alone = dec(latent, num_prefix=1, keep=torch.zeros(2, 6, dtype=torch.long), query=query[:, 1:2], grid=(4, 4))
    torch.testing.assert_close(alone[:, 0], pred[:, 1])  # a query's prediction ignores the other queries
