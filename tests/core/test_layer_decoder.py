"""`core.decoders.layers.LayerDecoder`: which encoder layer each cross block reads, and what it computes.

Checked against a brute-force re-computation of Hi-End-MAE's decoder (`networks/vit.py`
`MAEViTDecoder.forward_features`: self blocks, then self + cross blocks whose keys / values are the
projected encoder layer as it is, no norm, no position), on volumes and on images.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anymae.core.build import MAEConfig, decoder_config, encoder_config
from anymae.core.decoders.mae import DecoderConfig
from anymae.core.encoder import TransformerEncoder
from anymae.core.decoders.layers import LayerDecoder
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import FixedSinCos
from anymae.modalities.image import ImageTokenizer
from anymae.recipes.decoders.hiendmae import build_hiendmae

pytestmark = pytest.mark.usefixtures("one_thread")


def _decoder(layers: tuple[int, ...], **options: bool) -> LayerDecoder:
    torch.manual_seed(0)
    cfg = DecoderConfig(dim=24, depth=1, num_heads=4)
    return LayerDecoder(cfg, 12, FixedSinCos((4, 4), 24), nn.Linear(24, 5), cross_layers=layers, **options).eval()


def _inputs(b: int = 2, nv: int = 6, nq: int = 10, p: int = 1) -> dict:
    g = torch.Generator().manual_seed(1)
    perm = torch.stack([torch.randperm(16, generator=g) for _ in range(b)])
    return {"latent": torch.randn(b, p + nv, 12, generator=g), "num_prefix": p, "keep": perm[:, :nv],
            "query": perm[:, nv:nv + nq], "grid": (4, 4)}


def _taps(layers: range, b: int = 2, n: int = 7) -> dict[int, Tensor]:
    g = torch.Generator().manual_seed(2)
    return {k: torch.randn(b, n, 12, generator=g) for k in layers}


def _attention(q_in: Tensor, kv_in: Tensor, attn: nn.Module, heads: int) -> Tensor:
    """softmax(q kᵀ / √d) v over heads, then the output projection (the reference's CrossAttention)."""
    q, k, v = attn.q(q_in), attn.k(kv_in), attn.v(kv_in)  # B×L×D each
    split = lambda t: t.unflatten(-1, (heads, -1)).transpose(1, 2)  # noqa: E731  B×h×L×d
    w = (split(q) @ split(k).transpose(-1, -2) / split(q).shape[-1] ** 0.5).softmax(-1)
    return attn.proj((w @ split(v)).transpose(1, 2).flatten(2))


def _brute_force(dec: LayerDecoder, inputs: dict, taps: dict[int, Tensor]) -> Tensor:
    """Hi-End-MAE's decoder written out: [cls, vis, mask] + pos -> self blocks -> cross blocks -> head."""
    x = dec.embed(inputs["latent"])
    pos = dec.pos_embed((4, 4))[0]  # N×D
    keep, query = inputs["keep"], inputs["query"]
    vis = x[:, 1:] + pos[keep]
    masked = dec.mask_token + pos[query]
    seq = torch.cat([x[:, :1], vis, masked], dim=1)
    for block in dec.blocks:
        seq = block(seq)
    for j, k in enumerate(dec.cross_layers):
        blk, y = dec.cross_blocks[j], dec.context_embed[j](taps[k])  # the projected layer, no norm
        seq = seq + blk.attn(blk.norm1(seq))
        seq = seq + _attention(blk.norm_q(seq), y, blk.cross_attn, 4)
        seq = seq + blk.mlp(blk.norm2(seq))
    return dec.head(dec.norm(seq))[:, 1:]


def test_the_decoder_equals_the_reference_computation() -> None:
    dec, inputs, taps = _decoder((2, 1, 0)), _inputs(), _taps(range(3))
    vis, pred = dec(**inputs, taps=taps)
    ref = _brute_force(dec, inputs, taps)
    assert torch.allclose(torch.cat([vis, pred], dim=1), ref, atol=1e-5)


def test_each_cross_block_reads_its_layer_and_a_change_reaches_only_later_blocks() -> None:
    dec, inputs, taps = _decoder((2, 1, 0)), _inputs(), _taps(range(4))
    seen: list[Tensor] = []
    outs: list[Tensor] = []

    def record(module: nn.Module, args: tuple, out: Tensor) -> None:
        seen.append(args[1])
        outs.append(out)

    for block in dec.cross_blocks:
        block.register_forward_hook(record)
    dec(**inputs, taps=taps)
    for j, k in enumerate((2, 1, 0)):  # deep -> shallow
        assert torch.equal(seen[j], dec.context_embed[j](taps[k]))
    base = [o.clone() for o in outs]
    for k, first_changed in ((2, 0), (1, 1), (0, 2), (3, None)):  # layer 3 is not read
        seen.clear()
        outs.clear()
        dec(**inputs, taps={**taps, k: taps[k] + 1.0})
        for j in range(3):
            same = torch.equal(outs[j], base[j])
            assert same == (first_changed is None or j < first_changed), (k, j)


def test_options_context_positions_and_prefix() -> None:
    inputs, taps = _inputs(), _taps(range(1))
    seen: list[Tensor] = []
    dec = _decoder((0,), context_pos=True, context_prefix=False, context_norm=True)
    dec.cross_blocks[0].register_forward_hook(lambda m, args, out: seen.append(args[1]))
    dec(**inputs, taps=taps)
    pos = dec.pos_embed((4, 4))[0][inputs["keep"]]  # B×Nv×D
    assert torch.allclose(seen[0], dec.context_embed[0](taps[0])[:, 1:] + pos)
    assert isinstance(dec.cross_blocks[0].norm_k, nn.LayerNorm)
    assert isinstance(_decoder((0,)).cross_blocks[0].norm_k, nn.Identity)


def test_missing_taps_and_bad_options_are_named_errors() -> None:
    with pytest.raises(ValueError, match=r"reads encoder layers \[0, 2\] but got taps \[0\] \(missing \[2\]\)"):
        _decoder((2, 0))(**_inputs(), taps=_taps(range(1)))
    with pytest.raises(ValueError, match="cross_layers must name at least one"):
        _decoder(())
    with pytest.raises(ValueError, match="window and pos_every_block"):
        LayerDecoder(DecoderConfig(dim=24, depth=1, num_heads=4, pos_every_block=True), 12, FixedSinCos((4, 4), 24),
                     nn.Linear(24, 5), cross_layers=(0,))


def test_the_skeleton_encodes_with_the_decoder_taps_on_images() -> None:
    torch.manual_seed(0)
    cfg = MAEConfig(embed_dim=24, depth=2, num_heads=4, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=4)
    tokenizer = ImageTokenizer(16, 4, 3, 24)
    decoder = LayerDecoder(decoder_config(cfg), 24, FixedSinCos((4, 4), 16), nn.Linear(16, 48), cross_layers=(1, 0))
    model = MaskedAutoencoder(tokenizer, TransformerEncoder(encoder_config(cfg)), decoder, make_masking("random", 0.75))
    got: list[tuple[int, ...]] = []
    decoder.register_forward_hook(lambda m, args, kwargs, out: got.append(tuple(sorted(kwargs["taps"]))),
                                  with_kwargs=True)
    out = model(torch.randn(2, 3, 16, 16), seeds=torch.arange(2))
    assert got == [(0, 1)]
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert out.pred.shape == (2, 16, 48)


def test_hiendmae_decoders_read_deep_to_shallow() -> None:
    tiny = build_hiendmae("hiendmae_vit_tiny_patch4", depth=4, cross_layers=[3, 2, 1])
    assert tiny.decoder.cross_layers == (3, 2, 1) and tiny.decoder.taps == (1, 2, 3)
    seen: list[Tensor] = []
    tapped: dict[int, Tensor] = {}
    for k in (1, 2, 3):
        tiny.encoder.blocks[k].register_forward_hook(lambda m, a, out, k=k: tapped.__setitem__(k, out))
    for block in tiny.decoder.cross_blocks:
        block.register_forward_hook(lambda m, args, out: seen.append(args[1]))
    tiny.eval()(tiny.tokenizer.example(2), seeds=torch.arange(2))
    for j, k in enumerate((3, 2, 1)):  # cls + visible tokens of encoder block k, projected by Linear j
        assert seen[j].shape == (2, 1 + 16, 48)
        assert torch.allclose(seen[j], F.linear(tapped[k], tiny.decoder.context_embed[j].weight,
                                                tiny.decoder.context_embed[j].bias), atol=1e-6)
