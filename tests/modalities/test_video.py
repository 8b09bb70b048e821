"""Video modality: tube / running-cell masks, positions, counts, and parity with HF VideoMAE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import anymae
from anymae.core.masking import RunningCellMasking, TubeMasking, make_plan
from anymae.modalities.video import VideoTokenizer, tubeletify, untubeletify
from anymae.tasks.finetune.classifier import Classifier
from anymae.tasks.interop.videomae import (
    anymae_to_videomae,
    hf_videomae_to_videomae,
    load_videomae_weights,
    videomae_to_anymae,
)

transformers = pytest.importorskip("transformers")


def test_tube_masking_hides_int_r_s_per_frame_same_over_time() -> None:
    grid = (8, 14, 14)
    strategy = TubeMasking(0.9)
    plan = make_plan(strategy, grid, 3, device="cpu", seeds=torch.tensor([1, 2, 3]))
    mask = plan.mask.view(3, 8, 196)
    assert strategy.num_keep(1568, grid) == 160  # VideoMAE: 176 hidden, 20 kept per slot
    assert (mask.sum(-1) == int(0.9 * 196)).all()
    assert (mask == mask[:, :1]).all()  # one spatial mask tiled over time
    assert not torch.equal(mask[0, 0], mask[1, 0])


def _reference_running_cell(t: int, h: int, w: int, ratio: float) -> np.ndarray:
    """VideoMAE V2's RunningCellMaskingGenerator.all_mask_maps, re-stated with its Cell queue."""
    m = int(4 * ratio)
    queue = np.hstack([np.ones(m), np.zeros(4 - m)])
    maps = []
    for ptr in range(4):
        frames = []
        for _ in range(t):
            ptr += 1  # run_cell, then get_cell
            cell = queue[(np.arange(4) + ptr) % 4].reshape(2, 2)
            frames.append(np.tile(cell, [h // 2, w // 2]).flatten())
        maps.append(np.stack(frames))
    return np.stack(maps).reshape(4, -1)


@pytest.mark.parametrize("ratio", [0.5, 0.25, 0.75])
def test_running_cell_matches_reference_maps(ratio: float) -> None:
    grid = (4, 6, 4)
    strategy = RunningCellMasking(ratio)
    ref = torch.from_numpy(_reference_running_cell(*grid, ratio)).float()
    assert torch.equal(strategy.maps(grid), ref)
    plan = make_plan(strategy, grid, 16, device="cpu", seeds=torch.arange(16))
    dropped = plan.mask  # 1 = not kept = dropped from the decoder
    assert all(any(torch.equal(row, r) for r in ref) for row in dropped)
    assert len({tuple(r.tolist()) for r in dropped}) > 1  # phases differ across samples
    assert (dropped.sum(1) == 96 * int(4 * ratio) / 4).all()


def test_flat_positions_equal_videomae_sinusoid_table() -> None:
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    tok = VideoTokenizer(32, 4, 8, 2, 3, 48)
    ours = tok.pos_embed(tok.grid)  # 1×N×D
    ref = get_sinusoid_encoding_table(math.prod(tok.grid), 48)
    assert torch.allclose(ours, ref.float(), atol=1e-6, rtol=0)
    assert (ours - ref).abs().max() < 1e-6
    sep = VideoTokenizer(32, 4, 8, 2, 3, 48, pos_embed="separable").pos_embed(tok.grid)
    assert sep.shape == ours.shape and not torch.allclose(sep, ours)


def test_tubeletify_layout_and_inverse() -> None:
    clips = torch.randn(2, 3, 4, 16, 24)
    values = tubeletify(clips, 2, 8)  # B×(2·2·3)×(2·8·8·3)
    assert values.shape == (2, 12, 384)
    # token (t=1, h=0, w=2), value (u=1, p=3, q=5, c=2)
    assert values[0, 1 * 6 + 0 * 3 + 2, ((1 * 8 + 3) * 8 + 5) * 3 + 2] == clips[0, 2, 3, 3, 21]
    assert torch.equal(untubeletify(values, 2, 8, (2, 2, 3), 3), clips)


def _count(name: str, **overrides: object) -> tuple[int, int]:
    """(encoder incl. tokenizer, decoder) trainable parameters, built on the meta device."""
    with torch.device("meta"):
        m = anymae.create_model(name, **overrides)
    params = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
    enc = sum(p.numel() for n, p in params if n.startswith(("tokenizer.", "encoder.")))
    return enc, sum(p.numel() for _, p in params) - enc


def _block(w: int, hidden: int) -> int:
    """VideoMAE block: qkv weight, q and v biases (no k bias), proj, 2 LayerNorms, MLP."""
    return 3 * w * w + 2 * w + w * w + w + 4 * w + 2 * w * hidden + hidden + w


def _closed_form(d: int, depth: int, mlp: float, dd: int, p: int) -> tuple[int, int]:
    out = 2 * p * p * 3
    enc = 3 * 2 * p * p * d + d + depth * _block(d, int(d * mlp)) + 2 * d
    dec = d * dd + dd + 4 * _block(dd, int(dd * mlp)) + 2 * dd + dd * out + out
    return enc, dec


# algorithms.md §2a (computed, rounded to 0.1M). The exact counts are those of HF's
# VideoMAEForPreTraining (checked below per block); the doc's S decoder (2.2M) and H encoder
# (631.7M) are 0.05M / 0.09M above the exact 2.149M / 631.607M.
@pytest.mark.parametrize(
    "name,sizes,enc_m,dec_m",
    [
        ("videomae_vit_small_patch16", (384, 12, 4.0, 192, 16), 21.9, 2.2),
        ("videomae_vit_base_patch16", (768, 12, 4.0, 384, 16), 86.2, 8.0),
        ("videomae_vit_large_patch16", (1024, 24, 4.0, 512, 16), 303.9, 13.9),
        ("videomae_vit_huge_patch16", (1280, 32, 4.0, 640, 16), 631.7, 21.5),
        ("videomae2_vit_base_patch16", (768, 12, 4.0, 384, 16), 86.2, 8.0),
        ("videomae2_vit_giant_patch14", (1408, 40, 48 / 11, 512, 14), 1011.6, 14.7),
    ],
)
def test_parameter_counts_match_reference(name: str, sizes: tuple, enc_m: float, dec_m: float) -> None:
    enc, dec = _count(name)
    assert (enc, dec) == _closed_form(*sizes)
    assert abs(enc / 1e6 - enc_m) < 0.1 and abs(dec / 1e6 - dec_m) < 0.06


@pytest.mark.parametrize("width,heads,dec,dec_heads", [(384, 6, 192, 3), (768, 12, 384, 6)])
def test_parameter_counts_equal_hf_videomae(width: int, heads: int, dec: int, dec_heads: int) -> None:
    cfg = transformers.VideoMAEConfig(
        hidden_size=width, num_hidden_layers=1, num_attention_heads=heads, intermediate_size=4 * width,
        decoder_hidden_size=dec, decoder_num_hidden_layers=4, decoder_num_attention_heads=dec_heads,
        decoder_intermediate_size=4 * dec, use_mean_pooling=False, image_size=32, num_frames=2,
    )  # fmt: skip  (a small input: HF builds its sinusoid table in Python loops; counts do not depend on it)
    with torch.device("meta"):
        hf = transformers.VideoMAEForPreTraining(cfg)
    hf_enc = sum(p.numel() for n, p in hf.named_parameters() if n.startswith("videomae."))
    hf_total = sum(p.numel() for p in hf.parameters())
    enc, dec_count = _count("videomae_vit_base_patch16", embed_dim=width, depth=1, num_heads=heads,
                            decoder_embed_dim=dec, decoder_num_heads=dec_heads)  # fmt: skip
    assert (enc, dec_count) == (hf_enc, hf_total - hf_enc)


def _tiny_pair(norm_pix: bool):
    torch.manual_seed(0)
    cfg = transformers.VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=128, decoder_hidden_size=16, decoder_num_hidden_layers=2,
        decoder_num_attention_heads=2, decoder_intermediate_size=64, use_mean_pooling=False,
        layer_norm_eps=1e-6, norm_pix_loss=norm_pix, qkv_bias=True,
    )  # fmt: skip
    hf = transformers.VideoMAEForPreTraining(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # non-trivial biases and norms
    ours = anymae.create_model(
        "videomae_vit_base_patch16", img_size=32, num_frames=4, patch_size=8, embed_dim=32, depth=2, num_heads=2,
        decoder_embed_dim=16, decoder_depth=2, decoder_num_heads=2, norm_pix_loss=norm_pix, mask_ratio=0.75,
    ).eval()  # fmt: skip
    untouched = load_videomae_weights(ours, hf.state_dict())
    assert untouched == ["decoder.pos_embed.table", "tokenizer.pos_embed.table"]
    return hf, ours


@pytest.mark.parametrize("norm_pix", [True, False])
def test_parity_with_hf_videomae_for_pretraining(norm_pix: bool) -> None:
    hf, ours = _tiny_pair(norm_pix)
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        out = ours(clips, seeds=torch.tensor([3, 4]))
        mask = out.mask.bool()  # B×N, hidden from the encoder
        ref = hf(clips.permute(0, 2, 1, 3, 4), bool_masked_pos=mask)  # HF: B×T×C×H×W
    assert mask.sum(1).tolist() == [24, 24]
    pred = out.pred[mask].view(2, -1, out.pred.shape[-1])  # masked tokens in token order, as HF
    assert torch.allclose(pred, ref.logits, atol=1e-5)
    assert torch.allclose(out.loss, ref.loss, atol=1e-6)


def test_dual_masking_matches_videomae_v2_wiring() -> None:
    """VideoMAE V2: mask tokens at every decoder-kept position; loss on encoder-hidden ∧ decoder-kept."""
    hf, _ = _tiny_pair(True)
    ours = anymae.create_model(
        "videomae2_vit_base_patch16", img_size=32, num_frames=4, patch_size=8, embed_dim=32, depth=2, num_heads=2,
        decoder_embed_dim=16, decoder_depth=2, decoder_num_heads=2, mask_ratio=0.75,
    ).eval()  # fmt: skip
    load_videomae_weights(ours, hf.state_dict())
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        out = ours(clips, seeds=torch.tensor([5, 6]))
        mask = out.mask.bool()
        dec_drop = make_plan(ours.decoder_masking, out.tokens.grid, 2, device="cpu",
                             seeds=torch.tensor([5, 6]) + 0x5DEECE66D).mask.bool()  # fmt: skip
        # the V2 forward, from HF's modules (official pretrain model = HF model + this decoder query set)
        vis = hf.encoder_to_decoder(hf.videomae(clips.permute(0, 2, 1, 3, 4), bool_masked_pos=mask).last_hidden_state)
        pos = hf.position_embeddings.expand(2, -1, -1)
        x_full = torch.cat([vis + pos[~mask].view(2, -1, 16), hf.mask_token + pos[~dec_drop].view(2, -1, 16)], 1)
        logits = hf.decoder(x_full, int((~dec_drop[0]).sum())).logits  # B×Nd×P
        target = ours.target_norm.normalize(out.tokens.target)[~dec_drop].view(2, -1, logits.shape[-1])
        weight = mask[~dec_drop].view(2, -1).float()
        loss = (((logits - target) ** 2).mean(-1) * weight).sum() / weight.sum()
    assert torch.allclose(out.loss, loss, atol=1e-6)
    assert torch.equal(out.loss_weight.bool(), mask & ~dec_drop)
    assert torch.allclose(out.pred[~dec_drop].view(2, -1, logits.shape[-1]), logits, atol=1e-5)


def test_official_format_round_trip_and_finetuned_import() -> None:
    model = anymae.create_model("videomae_vit_tiny_patch8", depth=1, decoder_depth=1)
    official = anymae_to_videomae(model.state_dict())
    assert "encoder.blocks.0.attn.q_bias" in official and "encoder_to_decoder.weight" in official
    assert "encoder.blocks.0.attn.qkv.bias" not in official and not any("pos_embed" in k for k in official)
    back = videomae_to_anymae(official)
    own = model.state_dict()
    assert set(back) | {k for k in own if k.endswith("pos_embed.table")} == set(own)
    assert all(torch.equal(back[k], own[k]) for k in back)

    # a fine-tuned release (HF classification names -> official fine-tuned names) into a Classifier
    hf_cfg = transformers.VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=8, hidden_size=96, num_hidden_layers=1, num_attention_heads=4,
        intermediate_size=384, num_labels=5, layer_norm_eps=1e-6,
    )  # fmt: skip
    hf = transformers.VideoMAEForVideoClassification(hf_cfg).eval()
    finetuned = hf_videomae_to_videomae(hf.state_dict())
    assert "blocks.0.attn.qkv.weight" in finetuned and "head.weight" in finetuned
    clf = Classifier(model, 5, pool="mean").eval()
    load_videomae_weights(clf, {"module": finetuned})
    clips = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        assert torch.allclose(clf(clips), hf(clips.permute(0, 2, 1, 3, 4)).logits, atol=1e-5)


def test_pictures_and_fill() -> None:
    model = anymae.create_model("videomae_vit_tiny_patch8", depth=1, decoder_depth=1)
    clips = torch.rand(2, 3, 8, 32, 32)
    normalized = (clips - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1, 1)
    pics = model.tokenizer.to_pictures(normalized)
    assert pics.shape == (2, 32, 8 * 32, 3) and pics.dtype == np.uint8
    expected = (clips[1, :, 5] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(pics[1, :, 5 * 32 : 6 * 32].astype(int) - expected.astype(int)).max() <= 1
    tokens = model.tokenizer(normalized)
    gray = model.tokenizer.untokenize(model.tokenizer.picture_fill(tokens).expand_as(tokens.target), tokens)
    assert (model.tokenizer.to_pictures(gray) == 128).all()
    with pytest.raises(ValueError, match="B×3×T×H×W"):
        model.tokenizer(torch.randn(2, 8, 3, 32, 32))
