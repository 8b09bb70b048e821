from __future__ import annotations

import pytest
import torch

import anymae
from anymae.core.masking import RandomMasking


@pytest.fixture()
def model() -> anymae.MaskedAutoencoder:
    torch.manual_seed(0)
    return anymae.create_model("mae_vit_tiny_patch4", depth=2, decoder_depth=1).eval()


def test_output_shapes_and_mask_accounting(model: anymae.MaskedAutoencoder) -> None:
    x = torch.randn(3, 3, 32, 32)
    out = model(x, seeds=torch.arange(3))
    assert out.pred.shape == out.target.shape == (3, 64, 48)
    assert torch.equal(out.mask.sum(1), torch.full((3,), 48.0))
    assert torch.equal(out.loss_weight, out.mask)  # plain MAE: every hidden token is scored


def test_loss_only_sees_hidden_tokens(model: anymae.MaskedAutoencoder) -> None:
    """Changing the pixels of visible patches changes the encoder input but not the targets scored."""
    x = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 64)
    out = model(x, noise=noise)
    ref = (((out.pred - out.target) ** 2).mean(-1) * out.mask).sum() / out.mask.sum()
    assert torch.allclose(out.loss, ref, atol=1e-6)


def test_same_seed_same_mask_regardless_of_batch(model: anymae.MaskedAutoencoder) -> None:
    x = torch.randn(4, 3, 32, 32)
    seeds = torch.tensor([5, 6, 7, 8])
    full = model(x, seeds=seeds)
    part = model(x[2:], seeds=seeds[2:])
    assert torch.equal(full.mask[2:], part.mask)
    assert torch.allclose(full.pred[2:], part.pred, atol=1e-5)


def test_decoder_masking_scores_hidden_and_decoded_tokens_only(model: anymae.MaskedAutoencoder) -> None:
    model.decoder_masking = RandomMasking(0.5)  # decoder keeps half the tokens
    out = model(torch.randn(2, 3, 32, 32), seeds=torch.arange(2))
    assert torch.all(out.loss_weight <= out.mask)
    assert 0 < out.loss_weight.sum() < out.mask.sum()
    ref = (((out.pred - out.target) ** 2).mean(-1) * out.loss_weight).sum() / out.loss_weight.sum()
    assert torch.allclose(out.loss, ref, atol=1e-6)


def test_features_interface(model: anymae.MaskedAutoencoder) -> None:
    x = torch.randn(2, 3, 32, 32)
    feats = model.features(x, return_layers=(0, 1))
    assert feats.tokens.shape == (2, 64, 128) and feats.prefix.shape == (2, 1, 128)
    assert torch.equal(feats.pooled("cls"), feats.prefix[:, 0])
    assert torch.allclose(feats.pooled("mean"), feats.tokens.mean(1))
    assert len(feats.intermediates) == 2 and feats.intermediates[1].shape == (2, 65, 128)
    # the final norm applied to the last intermediate gives the output
    assert torch.allclose(model.encoder.norm(feats.intermediates[1])[:, 1:], feats.tokens, atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        feats.pooled("median")  # type: ignore[arg-type]  # not a pooling of the vocabulary


def test_reconstruction_pastes_visible_pixels_back() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("mae_vit_tiny_patch4", depth=1, decoder_depth=1, norm_pix_loss=True).eval()
    x = torch.randn(2, 3, 32, 32)
    out = model(x, seeds=torch.arange(2))
    recon = model.reconstruct(out)
    assert recon.shape == x.shape
    visible = (1 - out.mask).view(2, 8, 8).repeat_interleave(4, 1).repeat_interleave(4, 2).bool()
    assert torch.allclose(recon.permute(1, 0, 2, 3)[:, visible], x.permute(1, 0, 2, 3)[:, visible])
    # hidden patches carry the prediction mapped back with that patch's own mean and variance
    hidden = out.mask.bool()
    mean, scale = model.target_norm.stats(out.tokens.target)
    recon_tokens = model.tokenizer(recon).target
    assert torch.allclose(((recon_tokens - mean) / scale)[hidden], out.pred[hidden], atol=1e-4)
    # with stats="visible", hidden patches use the visible patches' average mean and scale
    no_leak = model.tokenizer(model.reconstruct(out, stats="visible")).target
    vis = (1 - out.mask).unsqueeze(-1)
    vis_mean = (mean * vis).sum(1, keepdim=True) / vis.sum(1, keepdim=True)
    vis_scale = (scale * vis).sum(1, keepdim=True) / vis.sum(1, keepdim=True)
    expected = (out.pred * vis_scale + vis_mean).expand_as(no_leak)
    assert torch.allclose(no_leak[hidden], expected[hidden], atol=1e-4)
    assert torch.allclose(no_leak[~hidden], out.tokens.target[~hidden])
    with pytest.raises(ValueError, match="stats"):
        model.reconstruct(out, stats="mine")  # type: ignore[arg-type]


def test_no_weight_decay_names_tokens(model: anymae.MaskedAutoencoder) -> None:
    assert model.no_weight_decay() == {"encoder.cls_token", "decoder.mask_token"}


def test_backward_reaches_every_trainable_parameter(model: anymae.MaskedAutoencoder) -> None:
    model.train()
    model(torch.randn(2, 3, 32, 32), seeds=torch.arange(2)).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
