from __future__ import annotations

import pytest
import torch

import anymae
from anymae.modalities.image import patchify, unpatchify


def _trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_patchify_layout_is_mae_pqc_and_inverts() -> None:
    imgs = torch.randn(2, 3, 8, 12)
    tokens = patchify(imgs, 4)
    assert tokens.shape == (2, 6, 48)
    # token 4 = row 1, col 1; value index (p, q, c) = (2, 3, 1)
    assert tokens[1, 4, (2 * 4 + 3) * 3 + 1] == imgs[1, 1, 4 + 2, 4 + 3]
    assert torch.equal(unpatchify(tokens, 4, (2, 3), 3), imgs)


def test_mae_vit_base_matches_reference_parameter_counts() -> None:
    model = anymae.create_model("mae_vit_base_patch16")
    encoder = _trainable(model.tokenizer) + _trainable(model.encoder)
    assert encoder == 85_647_360  # 85.65M, facebookresearch/mae ViT-B/16
    assert _trainable(model.decoder) == 26_008_320  # the 512-wide, 8-block decoder
    assert model.tokenizer.grid == (14, 14)


@pytest.mark.parametrize(
    "name, encoder_m, total_m",
    [("mae_vit_large_patch16", 303.1, 329.2), ("mae_vit_huge_patch14", 630.4, 656.6)],
)
def test_large_presets_match_reference_counts(name: str, encoder_m: float, total_m: float) -> None:
    with torch.device("meta"):  # count shapes without allocating the weights
        model = anymae.create_model(name)
    encoder = _trainable(model.tokenizer) + _trainable(model.encoder)
    assert encoder / 1e6 == pytest.approx(encoder_m, abs=0.05)
    assert _trainable(model) / 1e6 == pytest.approx(total_m, abs=0.05)


def test_non_square_images_and_other_channel_counts() -> None:
    model = anymae.create_model("mae_vit_tiny_patch4", img_size=(16, 24), in_chans=5, depth=1, decoder_depth=1)
    out = model(torch.randn(2, 5, 16, 24), seeds=torch.arange(2))
    assert out.pred.shape == (2, 24, 4 * 4 * 5)
    recon = model.reconstruct(out)
    assert recon.shape == (2, 5, 16, 24)


def test_wrong_channel_count_is_named() -> None:
    model = anymae.create_model("mae_vit_tiny_patch4", depth=1, decoder_depth=1)
    with pytest.raises(ValueError, match=r"3×H×W.*in_chans=3.*\(2, 1, 32, 32\)"):
        model(torch.randn(2, 1, 32, 32))


def test_size_not_divisible_by_patch_is_named() -> None:
    with pytest.raises(ValueError, match="30×30 is not divisible by the patch size 4"):
        anymae.create_model("mae_vit_tiny_patch4", img_size=30)
    model = anymae.create_model("mae_vit_tiny_patch4", depth=1, decoder_depth=1)
    with pytest.raises(ValueError, match="34×32"):
        model(torch.randn(1, 3, 34, 32))


def test_unknown_override_lists_valid_options() -> None:
    with pytest.raises(TypeError, match="unknown option.*'mask_ration'.*mask_ratio"):
        anymae.create_model("mae_vit_tiny_patch4", mask_ration=0.5)


def test_unknown_model_name_is_helpful() -> None:
    with pytest.raises(KeyError, match="unknown model 'mae_vit_gigantic'"):
        anymae.create_model("mae_vit_gigantic")


def test_config_rebuilds_the_same_architecture() -> None:
    model = anymae.create_model("mae_vit_tiny_patch4", img_size=16, norm_pix_loss=True)
    cfg = dict(model.config)
    again = anymae.create_model(cfg.pop("name"), **cfg)
    assert again.config == model.config
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in again.state_dict().items()}


def test_block_masking_preset_option() -> None:
    model = anymae.create_model("mae_vit_tiny_patch4", masking="block", mask_ratio=0.4, depth=1, decoder_depth=1)
    out = model(torch.randn(2, 3, 32, 32), seeds=torch.arange(2))
    assert torch.equal(out.mask.sum(1), torch.full((2,), float(int(64 * 0.4))))


def test_pictures_draw_nan_and_inf_in_magenta(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    tok = anymae.create_model("mae_vit_tiny_patch4", img_size=32, depth=1, decoder_depth=1).tokenizer
    x = torch.zeros(1, 3, 32, 32)  # the mean colour after un-normalizing
    x[0, 1, 7, 9] = float("-inf")  # would clamp to 0
    x[0, 2, 0, 0] = float("nan")
    with caplog.at_level(logging.WARNING, logger="anymae.modalities.image"):
        pic = tok.to_pictures(x, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    magenta = (pic[0] == (255, 0, 255)).all(-1)
    assert magenta.sum() == 2 and magenta[7, 9] and magenta[0, 0]
    assert (pic[0][~magenta] == 128).all()  # 0.5 -> 127.5 rounds to 128
    assert "2 pixel(s) came from NaN or Inf values" in caplog.records[0].getMessage()
