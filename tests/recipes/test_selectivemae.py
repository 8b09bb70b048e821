"""SelectiveMAE recipe: the preset's loss on its loss set, its lr factor, and option errors
(mechanisms: tests/core/test_masking_selective.py, tests/core/test_query_decoder.py)."""

from __future__ import annotations

import pytest
import torch

from anymae import create_model


def test_model_scores_the_loss_set_with_norm_pix_mse() -> None:
    torch.manual_seed(0)
    model = create_model("selectivemae_vit_tiny_patch4", depth=1, decoder_depth=1).eval()
    assert model.lr_scale == pytest.approx(0.25 / 0.85) and "schedule_step" in model.state_dict()
    out = model(torch.randn(2, 3, 32, 32), seeds=torch.tensor([4, 5]))
    assert out.plan.keep.shape == (2, 9) and out.loss_weight.sum(1).tolist() == [16.0, 16.0]
    w = out.loss_weight.bool()
    assert (out.pred[~w] == 0).all()  # nothing but the loss set is predicted
    hand = ((out.pred - out.target) ** 2).mean(-1)[w].mean()
    torch.testing.assert_close(out.loss, hand)


def test_vit_b_preset_shows_29_tokens_and_reconstructs_49() -> None:
    torch.manual_seed(0)
    model = create_model("selectivemae_vit_base_patch16", depth=1, decoder_depth=1).eval()
    out = model(torch.randn(1, 3, 224, 224), seeds=torch.tensor([0]))
    assert out.plan.keep.shape == (1, 29) and out.plan.loss is not None and out.plan.loss.shape == (1, 49)
    assert len(model.decoder.blocks) == 1 and not model.decoder.blocks[0].self_attention


def test_vit_b_parameter_count() -> None:
    """The reference's mae_vit_base_patch16 (decoder_depth 8) has 120,990,466 trainable parameters, of which
    7,631,362 are never used in its forward (`decoder_embed1`, `pos_embed_probs`, `get_token_probs*`):
    113,359,104 used. Ours adds CrossBlock's key/value LayerNorm per decoder block (8 · 2 · 768)."""
    with torch.device("meta"):
        model = create_model("selectivemae_vit_base_patch16")
    assert sum(p.numel() for p in model.parameters()) == 113_359_104 + 8 * 2 * 768


def test_bad_options_name_themselves() -> None:
    with pytest.raises(TypeError, match="kept_ratio"):
        create_model("selectivemae_vit_tiny_patch4", kept_ratio=0.2)
    with pytest.raises(ValueError, match="expansion_epochs"):
        create_model("selectivemae_vit_tiny_patch4", expansion_epochs=[0, 10, 11, 20, 30])
    with pytest.raises(ValueError, match="kept_mask_ratio=0.9"):
        create_model("selectivemae_vit_tiny_patch4", kept_mask_ratio=0.9)
