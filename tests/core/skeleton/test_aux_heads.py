"""Auxiliary heads (core/skeleton/aux_heads.py): the decoder input, HPM's predictor losses, the
loss-prediction term and its teacher-side predictions."""

from __future__ import annotations

import math

import pytest
import torch

from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import create_model
from anymae.core.skeleton.aux_heads import (
    AuxDecoder, LossPrediction, decoder_input, relative_loss, standardized_mse,
)
from anymae.core.skeleton.steps import Branch, Pass
from anymae.core.transformer import run_blocks


def _tiny_mae(**kw):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return create_model("mae_vit_tiny_patch4", img_size=16, depth=1, decoder_depth=1, **kw)


def test_decoder_input_is_what_the_decoder_runs_on() -> None:
    """The decoder's own blocks / norm / head on `decoder_input` give the decoder's predictions."""
    model = _tiny_mae().eval()
    x = torch.randn(2, 3, 16, 16)
    tokens = model.tokenize(x)
    planned = model.plan_masks(tokens, seeds=torch.arange(2))[0]
    enc = model.encode(tokens, planned)
    keep, query = planned.plan.keep, planned.query
    dec = model.decoder
    pred_vis, pred = dec(enc.latent, num_prefix=enc.num_prefix, keep=keep, query=query, grid=tokens.grid)
    seq, pos = decoder_input(dec, enc.latent, num_prefix=enc.num_prefix, keep=keep, query=query, grid=tokens.grid)
    assert seq.shape == (2, 1 + 4 + 12, 64)  # cls, 4 visible, 12 hidden
    out, _ = run_blocks(dec.blocks, seq + pos)
    again = dec.head(dec.norm(out))[:, 1:]  # B×(Nv+Nq)×P
    assert torch.allclose(again[:, :4], pred_vis, atol=1e-6) and torch.allclose(again[:, 4:], pred, atol=1e-6)


def test_aux_decoder_averages_its_head_and_has_the_decoders_size() -> None:
    model = _tiny_mae()
    aux = AuxDecoder.like(model.decoder, 48)
    dec_block = sum(p.numel() for p in model.decoder.blocks.parameters())
    assert sum(p.numel() for p in aux.blocks.parameters()) == dec_block
    seq, pos = torch.randn(3, 7, 64), torch.randn(3, 7, 64)
    out = aux(seq, pos)
    full = AuxDecoder.like(model.decoder, 48, reduce=None)
    full.load_state_dict(aux.state_dict())
    assert out.shape == (3, 7) and torch.allclose(out, full(seq, pos).mean(-1))


def _relative_brute(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """HPM's relative loss written as a loop over samples and ordered pairs."""
    total, valid = 0.0, 0
    for b in range(pred.shape[0]):
        for i in range(pred.shape[1]):
            for j in range(pred.shape[1]):
                s = 1 / (1 + math.exp(-(pred[b, j] - pred[b, i]).item()))
                if target[b, j] > target[b, i]:
                    total, valid = total - math.log(s + 1e-6), valid + 1
                elif target[b, j] < target[b, i]:
                    total, valid = total - math.log(1 - s + 1e-6), valid + 1
    return torch.tensor(total / valid, dtype=torch.float64)


def test_relative_loss_matches_a_pairwise_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 4, (3, 6), generator=gen).double()  # ties: pairs left out
    assert torch.allclose(relative_loss(pred, target), _relative_brute(pred, target), atol=1e-12)
    # a zero-weight token leaves every pair it is in
    weight = torch.ones(3, 6, dtype=torch.float64)
    weight[:, 5] = 0
    assert torch.allclose(relative_loss(pred, target, weight), _relative_brute(pred[:, :5], target[:, :5]), atol=1e-12)
    # a perfect ranking with large margins costs (almost) nothing; the reversed one a lot
    t = torch.arange(5.0).unsqueeze(0)
    assert relative_loss(10 * t, t) < 1e-4 < 5 < relative_loss(-10 * t, t)
    flat = relative_loss(torch.randn(1, 4, requires_grad=True), torch.ones(1, 4))  # no valid pair
    assert flat.item() == 0.0 and flat.requires_grad


def test_standardized_mse_by_hand() -> None:
    target = torch.tensor([[1.0, 2.0, 3.0]])  # mean 2, unbiased var 1
    pred = torch.tensor([[0.0, 0.0, 0.0]])
    z = torch.tensor([-1.0, 0.0, 1.0]) / math.sqrt(1 + 1e-6)
    assert torch.allclose(standardized_mse(pred, target), (z**2).mean())


def test_loss_prediction_learns_detached_reconstruction_losses() -> None:
    """The predictor's loss reaches the predictor (and, through the decoder input, the encoder),
    never the reconstructor's head (the reconstruction loss is its detached target)."""
    base = _tiny_mae()
    term = LossPrediction(base.decoder, 48)
    model = MaskedAutoencoder(base.tokenizer, base.encoder, base.decoder, base.masking, terms=[term])
    x = torch.randn(2, 3, 16, 16)
    out = model(x, seeds=torch.arange(2))
    assert set(out.parts) == {"rec", "loss_pred"}
    model.zero_grad()
    tokens = model.tokenize(x)
    planned = model.plan_masks(tokens, seeds=torch.arange(2))
    enc = model.encode(tokens, planned[0])
    state = Pass(tokens, model.targets(tokens), [Branch(planned[0], enc, model.decode(tokens, planned[0], enc))],
                 inputs=x, model=model)
    term(state).backward()
    assert model.decoder.head.weight.grad is None  # the reconstruction is only the target
    assert term.predictor.head.weight.grad.abs().sum() > 0
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0  # as HPM's `x.clone()` input
    assert term.teacher_parts(model) == ("tokenizer", "encoder", "decoder", "terms.1.predictor")


def test_loss_prediction_refuses_a_windowed_decoder_and_an_unknown_loss() -> None:
    audio = create_model("audiomae_tiny_patch16", target_length=64, num_mel_bins=32, depth=1, local_decoder_depth=2,
                         window=(2, 2), window_shift=(1, 0))
    with pytest.raises(TypeError, match="global-attention MAEDecoder"):
        LossPrediction(audio.decoder, 256)
    base = _tiny_mae(loss="mse")
    term = LossPrediction(base.decoder, 48)
    model = MaskedAutoencoder(base.tokenizer, base.encoder, base.decoder, base.masking, terms=[term], loss="sce")
    with pytest.raises(ValueError, match=r"predicts per-token losses of \['l1', 'mse'\], the model's loss is 'sce'"):
        model(torch.randn(2, 3, 16, 16), seeds=torch.arange(2))
