"""MultiMAE: sizes at paper scale, the Dirichlet budget in the model, per-sample averaged losses."""

from __future__ import annotations

import pytest
import torch

import anymae

_SMALL = {"embed_dim": 32, "depth": 2, "num_heads": 4, "decoder_embed_dim": 32, "decoder_depth": 1,
          "decoder_num_heads": 4, "img_size": 16, "num_encoded_tokens": 8}


def _model(**overrides):
    torch.manual_seed(0)
    return anymae.create_model("multimae_vit_tiny_patch4", **{**_SMALL, **overrides})


def test_sizes_at_paper_scale() -> None:
    with torch.device("meta"):  # three input modalities, as the reference's RGB + depth + semseg
        model = anymae.create_model("multimae_vit_base_patch16", modalities={"rgb": 3, "depth": 1, "semseg": 1})
    assert round(sum(p.numel() for p in model.encoder.parameters()) / 1e6, 2) == 85.06  # A1 (computed)
    assert round(sum(p.numel() for p in model.decoder.adapters["rgb"].parameters()) / 1e6, 2) == 2.77
    assert isinstance(model.encoder.norm, torch.nn.Identity)


def test_budget_and_per_sample_losses() -> None:
    model = _model()
    batch = {"rgb": torch.randn(4, 3, 16, 16), "depth": torch.randn(4, 1, 16, 16)}
    out = model(batch, seeds=torch.arange(4))
    assert torch.equal((1 - out.mask).sum(1), torch.full((4,), 8.0))  # exactly 8 of 32 visible per sample
    target, pred, w = out.target, out.pred, out.loss_weight
    per = []
    for b in range(4):  # depth: L1 over its 16 values per token, mean over the sample's hidden depth tokens
        rows = w[b, 16:].bool()
        per.append((pred[b, 16:][rows][:, :16] - target[b, 16:][rows][:, :16]).abs().mean())
    assert torch.allclose(out.parts["rec_depth"], torch.stack(per).mean(), atol=1e-6)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_any_subset_of_modalities_and_bad_names() -> None:
    model = _model()
    out = model({"depth": torch.randn(2, 1, 16, 16)}, seeds=torch.arange(2))
    assert set(out.parts) == {"rec_rgb", "rec_depth"} and float(out.parts["rec_rgb"]) == 0.0
    with pytest.raises(ValueError, match="unknown modality"):
        _model(losses={"nir": "l1"})
    three = _model(modalities={"rgb": 3, "depth": 1, "nir": 1})
    out = three({"rgb": torch.randn(2, 3, 16, 16), "depth": torch.randn(2, 1, 16, 16),
                 "nir": torch.randn(2, 1, 16, 16)}, seeds=torch.arange(2))
    assert set(out.parts) == {"rec_rgb", "rec_depth", "rec_nir"}
