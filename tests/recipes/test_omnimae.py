"""OmniMAE: images as 2-frame clips through the shared video tokenizer, per-modality ratios, size."""

from __future__ import annotations

import pytest
import torch

import anymae

_SMALL = {"embed_dim": 32, "depth": 2, "num_heads": 4, "decoder_embed_dim": 32, "decoder_depth": 1,
          "decoder_num_heads": 4}


def _model(**overrides):
    torch.manual_seed(0)
    return anymae.create_model("omnimae_vit_tiny_patch4", **{**_SMALL, **overrides})


def test_parameter_count_at_paper_size() -> None:
    with torch.device("meta"):
        model = anymae.create_model("omnimae_vit_base_patch16")
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    enc = sum(p.numel() for p in model.encoder.parameters()) + sum(
        p.numel() for p in model.tokenizer.tokenizers["video"].parameters())
    assert round(enc / 1e6, 2) == 86.24  # crossmodal_and_zoo.md A2 (computed), Conv3d 1.18M included
    assert round(count / 1e6, 2) == 94.22 and count == 94_222_464 - 384  # the mask token at decoder width


def test_an_image_is_a_two_frame_clip_with_the_first_slot_positions() -> None:
    model = _model()
    imgs = torch.randn(2, 3, 32, 32)
    video_tok = model.tokenizer.tokenizers["video"]
    as_image = model.tokenizer({"image": imgs})
    as_clip = video_tok(imgs.unsqueeze(2).repeat(1, 1, 2, 1, 1))
    assert as_image.spans[0].grid == (1, 8, 8)
    assert torch.equal(as_image.x, as_clip.x) and torch.equal(as_image.target, as_clip.target)
    assert torch.equal(model.tokenizer.positions(as_image), video_tok.pos_embed((2, 8, 8))[:, :64])
    bare = model.tokenizer(imgs)  # a bare 4-D tensor is an image batch
    assert [s.modality for s in bare.spans] == ["image"]


@pytest.mark.parametrize(("ratios", "hidden"), [("released", (48, 115)), ("paper", (57, 121))])
def test_per_modality_ratios_hide_int_ratio_n(ratios: str, hidden: tuple[int, int]) -> None:
    model = _model(ratios=ratios)
    out_i = model(torch.randn(2, 3, 32, 32), seeds=torch.arange(2))  # 64 tokens: int(0.75·64), int(0.9·64)
    out_v = model(torch.randn(2, 3, 4, 32, 32), seeds=torch.arange(2))  # 128 tokens: int(0.9·128), int(0.95·128)
    assert torch.equal(out_i.mask.sum(1), torch.full((2,), float(hidden[0])))
    assert torch.equal(out_v.mask.sum(1), torch.full((2,), float(hidden[1])))
    assert float(out_i.parts["rec_video"]) == 0.0 and float(out_v.parts["rec_image"]) == 0.0
    assert torch.allclose(out_v.loss, out_v.parts["rec_video"])


def test_video_target_is_normalized_per_tubelet_and_channel() -> None:
    model = _model()
    clips = torch.randn(2, 3, 4, 32, 32)
    out = model({"video": clips}, seeds=torch.arange(2))
    tokens = out.tokens
    raw = tokens.target.view(2, 128, 2 * 4 * 4, 3)  # (t, p, q, c) values: channel last
    norm = (raw - raw.mean(2, keepdim=True)) / (raw.var(2, keepdim=True).sqrt() + 1e-6)
    pred = out.pred.view(2, 128, 32, 3)
    w = out.loss_weight  # B×N
    hand = (((pred - norm) ** 2).mean((2, 3)) * w).sum() / w.sum()
    assert torch.allclose(out.parts["rec_video"], hand, atol=1e-5)
