"""Parity with HF transformers' ViTMAE (random weights, no download), official MAE and timm formats."""

from __future__ import annotations

import pytest
import timm
import torch

import anymae
from anymae.tasks.interop.mae import (
    anymae_to_official_mae,
    export_timm_encoder,
    hf_vitmae_to_anymae,
    official_mae_to_anymae,
)

transformers = pytest.importorskip("transformers")


def _pair(size: int, patch: int, norm_pix: bool, mask_ratio: float):
    cfg = transformers.ViTMAEConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
        image_size=size, patch_size=patch, decoder_hidden_size=32, decoder_num_hidden_layers=2,
        decoder_num_attention_heads=4, decoder_intermediate_size=128, layer_norm_eps=1e-6,
        norm_pix_loss=norm_pix, mask_ratio=mask_ratio,
    )
    hf = transformers.ViTMAEForPreTraining(cfg).eval()
    ours = anymae.create_model(
        "mae_vit_tiny_patch4", img_size=size, patch_size=patch, embed_dim=64, depth=2, num_heads=4,
        decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4, norm_pix_loss=norm_pix, mask_ratio=mask_ratio,
    ).eval()
    ours.load_state_dict(hf_vitmae_to_anymae(hf.state_dict()), strict=True)
    return hf, ours


@pytest.mark.parametrize(
    "size, patch, norm_pix, mask_ratio",
    [(32, 4, False, 0.75), (48, 8, True, 0.75), (40, 4, True, 0.6)],
)
def test_loss_and_predictions_equal_hf_vitmae(size: int, patch: int, norm_pix: bool, mask_ratio: float) -> None:
    torch.manual_seed(0)
    hf, ours = _pair(size, patch, norm_pix, mask_ratio)
    x = torch.randn(3, 3, size, size)
    noise = torch.rand(3, (size // patch) ** 2)
    with torch.no_grad():
        ref = hf(pixel_values=x, noise=noise)
        out = ours(x, noise=noise)
    assert torch.equal(ref.mask, out.mask)
    assert torch.allclose(ref.logits, out.pred, atol=1e-5)
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-5)


def test_gradients_equal_hf_vitmae() -> None:
    torch.manual_seed(1)
    hf, ours = _pair(32, 4, True, 0.75)
    x, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 64)
    hf(pixel_values=x, noise=noise).loss.backward()
    ours(x, noise=noise).loss.backward()
    hf_grad = hf.vit.embeddings.patch_embeddings.projection.weight.grad
    assert torch.allclose(ours.tokenizer.patch_embed.proj.weight.grad, hf_grad, atol=1e-6)


def test_old_hf_key_names_are_accepted() -> None:
    torch.manual_seed(2)
    hf, ours = _pair(32, 4, False, 0.75)
    rename = {"q_proj": "attention.query", "k_proj": "attention.key", "v_proj": "attention.value",
              "o_proj": "output.dense"}
    old = {}
    for k, v in hf.state_dict().items():
        k = k.replace("vit.layers.", "vit.encoder.layer.")
        for new, legacy in rename.items():
            k = k.replace(f"attention.{new}", f"attention.{legacy}")
        k = k.replace("mlp.fc1", "intermediate.dense").replace("mlp.fc2", "output.dense")
        old[k] = v
    converted = hf_vitmae_to_anymae(old)
    assert all(torch.equal(converted[k], v) for k, v in ours.state_dict().items())


def test_unmapped_key_is_named() -> None:
    with pytest.raises(KeyError, match="vit.pooler.dense.weight"):
        hf_vitmae_to_anymae({"vit.pooler.dense.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="head.weight"):
        official_mae_to_anymae({"head.weight": torch.zeros(1)})


def test_official_format_round_trip() -> None:
    model = anymae.create_model("mae_vit_tiny_patch4", depth=1, decoder_depth=1)
    official = anymae_to_official_mae(model.state_dict())
    assert {"cls_token", "pos_embed", "decoder_pos_embed", "decoder_pred.weight", "blocks.0.attn.qkv.weight"} <= set(official)
    assert official["pos_embed"].shape == (1, 65, 128) and not official["pos_embed"][0, 0].any()
    back = official_mae_to_anymae(official)
    assert set(back) == set(model.state_dict())
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())


def test_timm_export_loads_strict_and_gives_equal_features() -> None:
    torch.manual_seed(3)
    model = anymae.create_model("mae_vit_tiny_patch4", img_size=(32, 48), depth=2).eval()
    vit = timm.create_model(
        "vit_base_patch16_224", pretrained=False, num_classes=0, img_size=(32, 48), patch_size=4,
        embed_dim=128, depth=2, num_heads=4,
    ).eval()
    vit.load_state_dict(export_timm_encoder(model), strict=True)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        theirs = vit.forward_features(x)
        feats = model.features(x)
    assert torch.allclose(theirs[:, 0], feats.prefix[:, 0], atol=1e-5)
    assert torch.allclose(theirs[:, 1:], feats.tokens, atol=1e-5)
