"""ChA-MAEViT: tokenizer, channel-aware decoder, presets' sizes, pooling, pictures."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

import anymae
from anymae.core.losses import TokenNorm
from anymae.core.pooling import HybridTokenFusion
from anymae.modalities.multichannel import (
    CHANNEL_PRESETS,
    ChannelStack,
    channel_ids,
    collate_stacks,
)

TINY = {"embed_dim": 32, "depth": 1, "num_heads": 2, "decoder_num_heads": 2, "num_registers": 2}


def _reference_count(d: int, depth: int, c_max: int, p: int, hw: int, m: int, dec_depth: int) -> int:
    """Trainable parameters of the reference ChAMAEViT (MAE part) from its layer shapes.

    PatchEmbedPerChannel (Conv3d 1->D, (1,p,p), channel tokens D×C_max), cls, M memory tokens, pos
    (1+M+hw)×D, `depth` Blocks (qkv bias, LayerScale ls1/ls2), norm; encoder_decoder_proj, mask
    token, `dec_depth` decoder Blocks (qkv_bias false, no LayerScale), norm, decoder_pred D->p².
    """
    h = 4 * d
    enc_block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + d + 2 * d + (d * h + h) + (h * d + d) + d
    dec_block = 2 * d + 3 * d * d + (d * d + d) + 2 * d + (d * h + h) + (h * d + d)
    return (
        (d * p * p + d) + d * c_max + d + m * d + (1 + m + hw) * d + depth * enc_block + 2 * d
        + (d * d + d) + d + dec_depth * dec_block + 2 * d + (d * p * p + p * p)
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "c_max", "p", "hw", "m"),
    [
        ("chamaevit_small_patch16_chammi", 12, 16, 196, 4),
        ("chamaevit_small_patch16_jumpcp", 8, 16, 196, 4),
        ("chamaevit_small_patch8_so2sat", 18, 8, 16, 8),
    ],
)
def test_preset_parameter_counts_match_the_reference_shapes(name: str, c_max: int, p: int, hw: int, m: int) -> None:
    model = anymae.create_model(name)
    ours = sum(t.numel() for t in model.parameters() if t.requires_grad)
    # documented deviation: no position slots for the 1 + M prefix tokens
    assert ours == _reference_count(384, 11, c_max, p, hw, m, 1) - (1 + m) * 384
    cfg = CHANNEL_PRESETS[name]
    assert (cfg.depth, cfg.num_heads, cfg.layer_scale, cfg.decoder_depth, cfg.decoder_num_heads) == (11, 6, 1.0, 1, 16)
    blk = model.encoder.blocks[0]
    assert torch.equal(blk.ls1.gamma, torch.ones(384)) and model.decoder.blocks[0].attn.qkv.bias is None


def test_presets_dcp_settings() -> None:
    chammi = anymae.create_model("chamaevit_small_patch16_chammi", img_size=32, depth=1)
    so2sat = anymae.create_model("chamaevit_small_patch8_so2sat", depth=1)
    assert (chammi.masking.p_patch, chammi.masking.p_channel, chammi.masking.ratio) == (0.5, 0.5, 0.75)
    assert (so2sat.masking.p_patch, so2sat.masking.p_channel, so2sat.masking.ratio) == (0.0, 0.0, 0.25)
    assert chammi.loss_name == "mse_fourier" and chammi.loss_params == {"fourier_weight": 0.01}
    assert chammi.target_norm == TokenNorm() and chammi.encoder.num_prefix == 1 + 4
    assert so2sat.encoder.num_prefix == 1 + 8


def test_tokens_are_a_shared_per_channel_conv_plus_channel_embedding() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("chamaevit_tiny_patch8", **TINY)
    tok = model.tokenizer
    x = ChannelStack(torch.randn(2, 3, 32, 32), torch.tensor([4, 0, 2]))
    tokens = tok(x)
    assert tokens.grid == (3, 4, 4) and tokens.x.shape == (2, 48, 32)
    w, b = tok.proj.weight[:, :, 0], tok.proj.bias  # Conv3d (1,p,p) == one Conv2d per channel
    for pos, cid in enumerate([4, 0, 2]):
        conv = F.conv2d(x.pixels[:, pos : pos + 1], w, b, stride=8)  # B×D×4×4
        expected = rearrange(conv, "b d h w -> b (h w) d") + tok.channel_embed[:, cid]
        assert torch.allclose(tokens.x[:, pos * 16 : (pos + 1) * 16], expected, atol=1e-5)
    assert torch.equal(tokens.coords[0, :, 0], torch.tensor([4] * 16 + [0] * 16 + [2] * 16))
    # target: the p² pixels of each (channel, patch), channel-major; untokenize inverts it
    assert torch.equal(tokens.target[1, 16 + 5], x.pixels[1, 1, 8:16, 8:16].flatten())
    back = tok.untokenize(tokens.target, tokens)
    assert torch.equal(back.pixels, x.pixels) and torch.equal(back.channels, x.channels)
    # channel table: D × C_max with orthonormal columns (orthogonal init)
    e = tok.channel_embed
    assert e.shape == (32, 5) and torch.allclose(e.t() @ e, torch.eye(5), atol=1e-5)


def test_positions_are_shared_across_channels_and_tied_in_the_decoder() -> None:
    model = anymae.create_model("chamaevit_tiny_patch8", **TINY)
    tok = model.tokenizer
    pos = tok.pos_embed((3, 4, 4))
    assert pos.shape == (1, 48, 32) and torch.equal(pos[0, :16], pos[0, 16:32])
    assert abs(float(tok.pos_embed.spatial.table.detach().std()) - 0.02) < 0.01
    ids = torch.tensor([[1, 3]]).repeat_interleave(16, dim=1).unsqueeze(-1)  # 1×32×1
    dec = model.decoder.pos_embed((2, 4, 4), ids)
    assert torch.allclose(dec[0, 20], tok.pos_embed.spatial.table[0, 4] + tok.channel_embed[:, 3])
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("decoder.pos_embed") for n in names)  # tied, owned by the tokenizer
    assert model.decoder.cfg.dim == 32 and model.decoder.cfg.keep_prefix


def test_norm_pix_target_per_channel_patch_as_the_reference() -> None:
    torch.manual_seed(0)
    target = torch.randn(2, 6, 64)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    assert torch.allclose(TokenNorm().normalize(target), (target - mean) / (var + 1e-6) ** 0.5, atol=1e-6)


def test_any_channel_subset_trains_and_a_sample_does_not_see_its_batchmates_channels() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("chamaevit_tiny_patch8", **TINY, masking="random", mask_ratio=0.5)
    model.eval()
    pixels = torch.randn(2, 2, 32, 32)
    mixed = ChannelStack(pixels, torch.tensor([[0, 1], [3, 4]]))  # per-sample channel ids
    one = ChannelStack(pixels[1:], torch.tensor([3, 4]))
    noise = torch.rand(2, 32)
    with torch.no_grad():
        a = model(mixed, noise=noise)
        b = model(one, noise=noise[1:])
    assert torch.allclose(a.pred[1], b.pred[0], atol=1e-5)
    model.train()
    out = model(ChannelStack(torch.randn(3, 3, 32, 32), torch.tensor([2, 0, 4])), seeds=torch.arange(3))
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.tokenizer.channel_embed.grad[:, 1].abs().sum() == 0


def test_hybrid_token_fusion_equals_the_reference_mab() -> None:
    torch.manual_seed(0)
    fusion = HybridTokenFusion(12, 3)
    cls, tokens = torch.randn(2, 12), torch.randn(2, 7, 12)
    # reference MAB(ln=False) with Q = pooling_query (1×D), X = patch tokens, transcribed
    q = fusion.fc_q(fusion.query).expand(2, -1, -1)
    k, v = fusion.fc_k(tokens), fusion.fc_v(tokens)
    q_, k_, v_ = (torch.cat(t.split(4, 2), 1) for t in (q, k, v))
    a = torch.softmax(q_.bmm(k_.transpose(1, 2)) / math.sqrt(12), 2)
    o = torch.cat((q_ + a.bmm(v_)).split(1, 1), 2)
    o = (o + F.relu(fusion.fc_o(o))).squeeze(1)
    assert torch.allclose(fusion(cls, tokens), cls + o, atol=1e-6)
    gated = HybridTokenFusion(12, 3, gate=True)
    gated.load_state_dict(fusion.state_dict())
    assert torch.allclose(gated(cls, tokens), cls * torch.sigmoid(o), atol=1e-6)


def test_pictures_put_channels_side_by_side_in_gray() -> None:
    model = anymae.create_model("chamaevit_tiny_patch8", **TINY)
    tok = model.tokenizer
    x = ChannelStack(torch.zeros(1, 3, 32, 32), torch.tensor([0, 1, 2]))
    x.pixels[0, 1] = 2.5  # renders white
    x.pixels[0, 2] = -2.5  # renders black
    pic = tok.to_pictures(x)
    assert pic.shape == (1, 32, 3 * 32 + 2 * 2, 3)
    assert (pic[0, :, :32] == 128).all() and (pic[0, :, 34:66] == 255).all() and (pic[0, :, 68:] == 0).all()
    fill = tok.picture_fill(tok(x))
    assert fill.shape == (1, 1, 64)
    gray = tok.to_pictures(ChannelStack(torch.full((1, 3, 32, 32), float(fill[0, 0, 0])), x.channels))
    assert (gray[0, :, :32] == 128).all() and (gray[0, :, 32:34] == 255).all()  # fill -> mid-gray; white gaps


def test_errors_name_the_problem() -> None:
    model = anymae.create_model("chamaevit_tiny_patch8", **TINY)
    with pytest.raises(ValueError, match="out of range"):
        model.tokenizer(ChannelStack(torch.zeros(1, 1, 32, 32), torch.tensor([7])))
    with pytest.raises(ValueError, match="expected \\(32, 32\\)"):
        model.tokenizer(ChannelStack(torch.zeros(1, 1, 16, 16), torch.tensor([0])))
    with pytest.raises(ValueError, match="decoder_embed_dim"):
        anymae.create_model("chamaevit_tiny_patch8", decoder_embed_dim=64)
    with pytest.raises(ValueError, match="unknown channel name"):
        channel_ids(["ch0", "dna"], ["ch0", "ch1"])
    with pytest.raises(ValueError, match="one channel count"):
        collate_stacks([ChannelStack(torch.zeros(2, 4, 4), [0, 1]), ChannelStack(torch.zeros(3, 4, 4), [0, 1, 2])])
    batch = collate_stacks([ChannelStack(torch.zeros(2, 4, 4), [0, 1]), ChannelStack(torch.zeros(2, 4, 4), [1, 0])])
    assert batch.channels.shape == (2, 2) and batch.shape == (2, 2, 4, 4)


def test_pictures_draw_nan_and_inf_in_magenta_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    tok = anymae.create_model("chamaevit_tiny_patch8", **TINY).tokenizer
    x = ChannelStack(torch.zeros(1, 3, 32, 32), torch.tensor([0, 1, 2]))
    x.pixels[0, 0, 3, 4] = float("nan")
    x.pixels[0, 2, 5, 6] = float("inf")  # would clamp to white
    with caplog.at_level(logging.WARNING, logger="anymae.modalities.image"):
        pic = tok.to_pictures(x)
    magenta = (pic[0] == (255, 0, 255)).all(-1)  # H×W'
    assert magenta.sum() == 2 and magenta[3, 4] and magenta[5, 68 + 6]
    assert (pic[0, :, :32][~magenta[:, :32]] == 128).all()  # the other pixels as before
    assert [r.getMessage() for r in caplog.records] == [
        "multi-channel pictures: 2 pixel(s) came from NaN or Inf values, drawn in magenta (255, 0, 255)"
    ]
