"""CAE presets: the reference's sizes (regressor 4 + decoder 4 at 768 wide, 12 heads), 98 of 196
patches hidden block-wise, the alignment weighted 2, norm_pix pixel targets instead of DALL-E ids."""

from __future__ import annotations

import torch

import anymae
from anymae.core.decoders.latent_regressor import LatentRegressorDecoder
from anymae.core.skeleton.distill_terms import LatentAlignment


def test_paper_preset_sizes() -> None:
    with torch.device("meta"):
        model = anymae.create_model("cae_vit_base_patch16")
    dec = model.decoder
    assert isinstance(dec, LatentRegressorDecoder)
    assert len(dec.regressor) == 4 and len(dec.blocks) == 4 and dec.dim == 768
    assert dec.regressor[0].cross_attn.num_heads == 12 and dec.head.out_features == 16 * 16 * 3
    assert isinstance(model.terms[1], LatentAlignment) and model.terms[1].weight == 2.0
    assert model.target_norm is not None and model.config["masking"] == "block"
    assert model.masking.num_keep(196) == 98  # 98 of 196 hidden
    assert model.encoder.blocks[0].ls1.gamma.shape == (768,)  # layer scale 0.1 (init values)


def test_tiny_preset_runs_and_scores_only_hidden_tokens() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("cae_vit_tiny_patch4")
    out = model(torch.randn(2, 3, 32, 32), seeds=torch.arange(2))
    assert out.plan.hide.shape == (2, 32)  # half of 64
    assert torch.equal(out.loss_weight, out.mask)
    assert set(out.parts) == {"rec", "align"}
    assert torch.allclose(model.encoder.blocks[0].ls1.gamma, torch.full((128,), 0.1))
