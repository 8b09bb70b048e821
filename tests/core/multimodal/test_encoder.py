"""MultiEncoder: modality blocks on padded rows equal running each sample's tokens alone."""

from __future__ import annotations

import torch

from anymae.core.encoder import EncoderConfig
from anymae.core.multimodal import MultiEncoder
from anymae.core.tokens import Span, Tokens


def _encoder() -> MultiEncoder:
    torch.manual_seed(0)
    enc = MultiEncoder(EncoderConfig(dim=32, depth=2, num_heads=4, cls_token=False), ("a", "v"), 1)
    return enc.eval()


def test_variable_visible_counts_match_per_sample_passes() -> None:
    enc = _encoder()
    spans = (Span("a", 0, 6, (6,), 1), Span("v", 6, 10, (4,), 1))
    tokens = Tokens(x=torch.zeros(2, 10, 32), target=None, grid=(10,), spans=spans)
    index = torch.tensor([[0, 7, 2, 3, 8], [6, 1, 7, 8, 9]])  # sample 0: 3 a + 2 v; sample 1: 1 a + 4 v
    x = torch.randn(2, 5, 32)
    latent, inter = enc(x, None, tokens=tokens, index=index, return_layers=(0, 1))
    for b in range(2):
        seq = x[b].clone()
        for name, lo, hi in (("a", 0, 6), ("v", 6, 10)):
            rows = ((index[b] >= lo) & (index[b] < hi)).nonzero().flatten()
            seq[rows] = enc.modality_blocks[name][0](x[b, rows][None])[0]  # the modality's tokens alone
        assert torch.allclose(inter[0][b], seq, atol=1e-5)
        joint = enc.blocks[0](seq[None])[0]
        assert torch.allclose(inter[1][b], joint, atol=1e-5)
        assert torch.allclose(latent[b], enc.norm(joint), atol=1e-5)


def test_modality_pass_uses_the_streams_norms() -> None:
    enc = _encoder()
    with torch.no_grad():
        enc.stream_norms["a"][0]["norm1"].weight.mul_(3.0)
    x = torch.randn(2, 6, 32)
    block = enc.blocks[0]
    h = enc.modality_blocks["a"][0](x)
    h = h + block.attn(enc.stream_norms["a"][0]["norm1"](h))
    h = h + block.mlp(enc.stream_norms["a"][0]["norm2"](h))
    assert torch.allclose(enc.modality_pass(x, "a"), enc.modality_norms["a"](h), atol=1e-5)
