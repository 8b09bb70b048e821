"""Loss terms: every named part in `MAEOutput.parts`, `loss` = their weighted sum, and the recipes'
numbers equal the previous implementations' (TwoMaskAutoencoder, ReplaceMaskedAutoencoder)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import anymae
from anymae.core.masking import gather_tokens
from anymae.core.model import MaskedAutoencoder
from anymae.core.skeleton import LossTerm, Pass, Reconstruction
from anymae.modalities.graph_data import collate_graphs, stochastic_block_graph


class TapEnergy(LossTerm):
    """Mean square of encoder block 0's output over the first branch's sequence (reads a tap)."""

    def __init__(self, weight: float) -> None:
        super().__init__("tap_energy", weight, taps=(0,))

    def forward(self, state: Pass) -> Tensor:
        return state.branches[0].encoded.taps[0].pow(2).mean()


def _image(**kw: object) -> MaskedAutoencoder:
    torch.manual_seed(0)
    return anymae.create_model("mae_vit_tiny_patch4", depth=2, decoder_depth=1, **kw).eval()


def test_a_plain_mae_reports_its_reconstruction_as_rec() -> None:
    model = _image()
    out = model(torch.randn(2, 3, 32, 32), seeds=torch.arange(2))
    assert list(out.parts) == ["rec"] and torch.equal(out.loss, out.parts["rec"])
    assert not out.parts["rec"].requires_grad and out.loss.requires_grad
    assert [type(t) for t in model.terms] == [Reconstruction]


def test_an_extra_term_reads_encoder_taps_and_adds_with_its_weight() -> None:
    model = _image()
    plain = MaskedAutoencoder(model.tokenizer, model.encoder, model.decoder, model.masking,
                              target_norm=model.target_norm)
    tapped = MaskedAutoencoder(model.tokenizer, model.encoder, model.decoder, model.masking,
                               target_norm=model.target_norm, terms=[TapEnergy(0.5)])
    x, seeds = torch.randn(2, 3, 32, 32), torch.arange(2)
    out = tapped(x, seeds=seeds)
    assert list(out.parts) == ["rec", "tap_energy"]
    assert torch.equal(out.parts["rec"], plain(x, seeds=seeds).parts["rec"])  # the tap changes nothing else
    assert out.loss.item() == pytest.approx((out.parts["rec"] + 0.5 * out.parts["tap_energy"]).item(), rel=1e-6)
    # by hand: block 0 over [cls, visible tokens + their positions]
    tokens = model.tokenizer(x)
    keep = out.plan.keep
    pos = gather_tokens(model.tokenizer.pos_embed(tokens.grid, tokens.coords), keep)
    seq = model.encoder.prepend_prefix(gather_tokens(tokens.x, keep) + pos)
    assert out.parts["tap_energy"].item() == pytest.approx(model.encoder.blocks[0](seq).pow(2).mean().item(), rel=1e-5)


def test_term_names_must_be_unique_and_non_empty() -> None:
    model = _image()
    with pytest.raises(ValueError, match="unique"):
        MaskedAutoencoder(model.tokenizer, model.encoder, model.decoder, model.masking,
                          terms=[Reconstruction(model.loss_fn, name="rec")])
    with pytest.raises(ValueError, match="name"):
        LossTerm("")


_SMALL_POINTS = {"num_points": 64, "num_group": 8, "group_size": 8, "depth": 1, "decoder_depth": 1, "embed_dim": 48,
                 "decoder_embed_dim": 48, "num_heads": 2, "decoder_num_heads": 2}


def test_point_cmae_equals_the_previous_two_mask_model() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("point_cmae", **_SMALL_POINTS).eval()
    torch.manual_seed(2)
    out = model(model.tokenizer.example(2), seeds=torch.tensor([3, 4]))
    p = out.parts
    assert list(p) == ["rec1", "rec2", "consistency"]
    # recorded with core/twomask.py's TwoMaskAutoencoder on the same model and batch
    assert p["rec1"].item() == pytest.approx(0.6336634159088135, rel=1e-5)
    assert p["rec2"].item() == pytest.approx(0.8181615471839905, rel=1e-5)
    assert p["consistency"].item() == pytest.approx(0.810219407081604, rel=1e-5)
    assert out.loss.item() == pytest.approx(1452.6351318359375, rel=1e-5)
    assert torch.equal(out.loss, 1000.0 * (p["rec1"] + p["rec2"]) + p["consistency"])  # grouped by weight
    # the first branch's reconstruction is Point-MAE's on the same encoder, decoder and mask
    torch.manual_seed(0)
    single = anymae.create_model("point_mae_tiny", **_SMALL_POINTS).eval()
    single.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("decoder2.")})
    torch.manual_seed(2)
    assert torch.equal(single(single.tokenizer.example(2), seeds=torch.tensor([3, 4])).loss, p["rec1"])


@pytest.mark.parametrize("name, expected", [
    ("graphmae_gat_tiny", 0.8366838097572327),
    ("graphmae_transformer_tiny", 1.6130894422531128),
    ("graphmae_gin_mutag", 0.514293909072876),
])
def test_graphmae_equals_the_previous_replacement_model(name: str, expected: float) -> None:
    pytest.importorskip("torch_geometric")
    torch.manual_seed(0)
    model = anymae.create_model(name, in_dim=8, num_hidden=8, num_layers=2, num_heads=2).eval()
    gs = [stochastic_block_graph((5, 6), 0.5, 0.2, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    out = model(collate_graphs(gs), seeds=torch.tensor([11, 12, 13]))
    # recorded with core/replace_model.py's ReplaceMaskedAutoencoder on the same model and graphs
    assert list(out.parts) == ["rec"] and out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert out.mask.shape == (1, 33)  # three graphs of 11 nodes packed in one row
    assert torch.equal(out.loss_weight, out.mask) and out.mask.sum().item() == int(model.config["mask_ratio"] * 33)
