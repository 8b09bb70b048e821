"""CAV-MAE: parameter count at paper size, every loss part, the contrastive term and the modality
passes against hand computations, CAV-MAE's stripes, options."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import yaml

import anymae

_SMALL = {"target_length": 32, "num_mel_bins": 16, "audio_patch_size": 8, "img_size": 16, "patch_size": 4,
          "embed_dim": 32, "depth": 2, "modality_depth": 1, "num_heads": 4, "decoder_embed_dim": 32,
          "decoder_depth": 1, "decoder_num_heads": 4}


def _model(**overrides):
    torch.manual_seed(0)
    return anymae.create_model("cavmae_tiny", **{**_SMALL, **overrides})


def _batch(b: int = 4) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {"audio": torch.randn(b, 1, 32, 16), "video": torch.randn(b, 3, 16, 16)}


def test_parameter_count_at_paper_size() -> None:
    with torch.device("meta"):
        model = anymae.create_model("cavmae_base")
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert count == 189_961_984
    # the reference's 22 modality-specific and 8 decoder blocks also carry 4 LayerNorms they never use
    unused = 22 * 4 * 2 * 768 + 8 * 4 * 2 * 512
    assert round((count + unused) / 1e6, 2) == 190.13  # crossmodal_and_zoo.md A4 (computed)
    enc = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("decoder."))
    assert round((enc + 22 * 4 * 2 * 768) / 1e6, 2) == 163.96
    assert model.tokenizer.tokenizers["audio"].grid == (64, 8) and model.tokenizer.tokenizers["video"].grid == (14, 14)


def test_forward_logs_every_part_and_sums_them() -> None:
    model = _model()
    out = model(_batch(), seeds=torch.arange(4))
    assert set(out.parts) == {"rec_audio", "rec_video", "contrastive"}
    p = out.parts
    assert torch.allclose(out.loss, p["rec_audio"] + p["rec_video"] + 0.01 * p["contrastive"], atol=1e-6)
    assert torch.equal(out.mask[:, :8].sum(1), torch.full((4,), 6.0))  # audio: 8 tokens, int(8·0.25) = 2 visible
    assert torch.equal(out.mask[:, 8:].sum(1), torch.full((4,), 12.0))  # video: 16 tokens, 4 visible
    out.loss.backward()
    assert all(q.grad is not None for q in model.parameters() if q.requires_grad)


def _modality_only(model, x: torch.Tensor, name: str) -> torch.Tensor:
    """Hand-written CAV-MAE modality pass on given tokens (with positions): blocks_<m>, the joint
    block with norm1_<m> / norm2_<m>, norm_<m>."""
    enc = model.encoder
    h = enc.modality_blocks[name][0](x)
    block, norms = enc.blocks[0], enc.stream_norms[name][0]
    h = h + block.attn(norms["norm1"](h))
    h = h + block.mlp(norms["norm2"](h))
    return enc.modality_norms[name](h)


def test_contrastive_term_matches_a_hand_computation() -> None:
    model = _model().eval()
    batch = _batch()
    out = model(batch, seeds=torch.arange(4))
    tokens = model.tokenizer(batch)
    h = tokens.x + model.tokenizer.positions(tokens)  # B×24×D with modality embeddings and positions
    pooled = {}
    for name, lo, hi in (("audio", 0, 8), ("video", 8, 24)):
        rows = []
        for b in range(4):
            idx = [int(i) for i in out.plan.keep[b] if lo <= int(i) < hi]  # this sample's visible tokens
            rows.append(_modality_only(model, h[b, idx][None], name)[0].mean(0))
        pooled[name] = torch.stack(rows)
    a, v = F.normalize(pooled["audio"], dim=-1), F.normalize(pooled["video"], dim=-1)
    sim = a @ v.T / 0.05
    hand = -sum(float((sim[j, j] - torch.logsumexp(sim[:, j], 0)).detach()) for j in range(4)) / 4
    assert math.isclose(float(out.parts["contrastive"]), hand, rel_tol=1e-4)


def test_feature_modes_are_the_references_passes() -> None:
    model = _model().eval()
    batch = _batch()
    tokens = model.tokenizer(batch)
    h = tokens.x + model.tokenizer.positions(tokens)
    audio = model.features(batch, modality="audio")
    assert torch.allclose(audio.tokens, _modality_only(model, h[:, :8], "audio"), atol=1e-5)
    assert torch.allclose(audio.pooled("mean"), _modality_only(model, h[:, :8], "audio").mean(1), atol=1e-5)
    video = model.features(batch["video"], modality="video")  # the modality's tensor alone works too
    assert torch.allclose(video.tokens, _modality_only(model, h[:, 8:], "video"), atol=1e-5)
    enc = model.encoder
    joint = torch.cat([enc.modality_blocks["audio"][0](h[:, :8]), enc.modality_blocks["video"][0](h[:, 8:])], 1)
    joint = enc.norm(enc.blocks[0](joint))
    assert torch.allclose(model.features(batch).tokens, joint, atol=1e-5)


def test_time_stripes_hide_whole_audio_time_rows() -> None:
    model = _model(mask_mode="time")
    out = model(_batch(), seeds=torch.arange(4))
    rows = out.mask[:, :8].view(4, 4, 2).sum(2)  # audio grid 4 (time) × 2 (frequency)
    assert torch.equal((rows == 2).sum(1), torch.full((4,), 3))  # int(4·0.75) = 3 whole time rows


def test_whole_modality_masking_option() -> None:
    model = _model(modality_drop={"video": 0.5})
    out = model(_batch(8), seeds=torch.arange(8))
    gone = out.mask[:, 8:].sum(1) == 16
    assert 0 < int(gone.sum()) < 8
    assert torch.equal((1 - out.mask).sum(1), torch.full((8,), 6.0))  # 2 + 4 visible in every sample
    assert torch.isfinite(out.loss)


def test_bad_options_name_themselves() -> None:
    with pytest.raises(ValueError, match="mode='diag'"):
        _model(mask_mode="diag")
    with pytest.raises(TypeError, match="unknown option"):
        _model(mask_rato=0.5)
    with pytest.raises(ValueError, match="unknown modality key"):
        _model()({"audio": torch.randn(2, 1, 32, 16), "image": torch.randn(2, 3, 16, 16)})


def test_cpu_config_builds_its_model() -> None:
    cfg = yaml.safe_load(open("configs/cavmae_tiny_cpu.yaml"))
    model_cfg = dict(cfg["model"])
    model = anymae.create_model(model_cfg.pop("name"), **model_cfg)
    assert model.config["name"] == "cavmae_tiny" and model.config["audio_mask_ratio"] == 0.75
