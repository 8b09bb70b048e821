"""Branches over views (core/skeleton/views.py, BranchSpec, Views): which view a branch encodes, shared
decoders, encode-only branches, whole views, cross-view memory, and what loss terms see."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from anymae.core.decoders.mae import DecoderConfig, MAEDecoder
from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.masking import ConsecutiveKeepMasking, RandomMasking, gather_tokens
from anymae.core.model import MaskedAutoencoder
from anymae.core.skeleton import BranchSpec, LossTerm, Pass, Views
from anymae.core.skeleton.views import resolve_branches
from anymae.core.tokens import Tokens

N, D = 8, 8


class RowTokenizer(nn.Module):
    """B×N×D tensors are their own tokens (targets = 2x); fixed random positions."""

    def __init__(self) -> None:
        super().__init__()
        self.dim = D
        self.register_buffer("table", torch.randn(1, N, D, generator=torch.Generator().manual_seed(0)))

    def pos_embed(self, grid: tuple[int, ...], coords: Tensor | None = None) -> Tensor:
        return self.table

    def forward(self, x: Tensor) -> Tokens:
        return Tokens(x=x, target=2 * x, grid=(N,))

    def untokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        return values


class Table(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.zeros(1, N, D))

    def forward(self, grid: tuple[int, ...], coords: Tensor | None = None) -> Tensor:
        return self.table


class MemoryDecoder(MAEDecoder):
    """An MAEDecoder that records the `memory` it is handed (CroCo's decoder reads it)."""

    def forward(self, latent: Tensor, *, memory: Any = None, **kw: Any) -> tuple[Tensor, ...]:
        self.memory = memory
        return super().forward(latent, **kw)


class Recorder(LossTerm):
    """Keeps the pass it sees; adds 0."""

    def __init__(self) -> None:
        super().__init__("recorder", 1.0)
        self.state: Pass | None = None

    def forward(self, state: Pass) -> Tensor:
        self.state = state
        return state.branches[0].encoded.latent.sum() * 0.0


def _decoder(cls: type[MAEDecoder] = MAEDecoder) -> MAEDecoder:
    return cls(DecoderConfig(dim=D, depth=1, num_heads=2), D, Table(), nn.Linear(D, D))


def _model(branches: list[BranchSpec], masking: Any = None, decoder: type[MAEDecoder] = MAEDecoder,
           extra: int = 0) -> tuple[MaskedAutoencoder, Recorder]:
    torch.manual_seed(0)
    rec = Recorder()
    model = MaskedAutoencoder(
        RowTokenizer(), TransformerEncoder(EncoderConfig(dim=D, depth=1, num_heads=2)), _decoder(decoder),
        masking or RandomMasking(0.5), extra_decoders=[_decoder() for _ in range(extra)], terms=[rec],
        branches=branches,
    ).eval()
    return model, rec


X0 = torch.randn(2, N, D, generator=torch.Generator().manual_seed(1))
X1 = torch.randn(2, N, D, generator=torch.Generator().manual_seed(2))


def test_each_branch_encodes_the_view_it_reads_and_terms_see_every_view() -> None:
    model, rec = _model([BranchSpec(view=0), BranchSpec(view=1, decoder=None, reconstruct=False)],
                        ConsecutiveKeepMasking(0.5))
    out = model(Views((X0, X1)), seeds=torch.arange(2))
    state = rec.state
    assert state is not None and [t.name for t in model.terms] == ["rec", "recorder"]
    assert state.branches[1].decoded is None and [b.view for b in state.branches] == [0, 1]
    assert torch.equal(state.view_tokens[1].x, X1) and state.view_inputs[1] is X1
    assert state.view_targets[1] is None and torch.equal(state.target, 2 * X0)  # view 1 is not reconstructed
    keep1 = out.plans[1].keep
    expected = model.run_encoder(gather_tokens(X1, keep1), state.view_tokens[1], keep1).latent
    assert torch.allclose(state.branches[1].encoded.latent, expected, atol=1e-6)
    assert not set(out.plans[0].keep[0].tolist()) & set(keep1[0].tolist())  # one noise, disjoint keep sets
    same = model(Views((X0, X1 + 1.0)), seeds=torch.arange(2))  # view 1 never reaches the reconstruction
    assert torch.equal(same.parts["rec"], out.parts["rec"])


def test_two_branches_share_one_decoder_and_reconstruct_the_same_view() -> None:
    model, rec = _model([BranchSpec(view=0, decoder=0), BranchSpec(view=0, decoder=0)])
    assert len(model.decoders) == 1 and model.num_branches == 2
    out = model(X0, seeds=torch.arange(2))
    assert list(out.parts) == ["rec1", "rec2", "recorder"]
    state = rec.state
    assert state is not None
    for k in (0, 1):  # each branch's reconstruction is the shared decoder's prediction on its own plan
        p = state.branches[k].planned
        pred = model.decoder(state.branches[k].encoded.latent, num_prefix=1, keep=p.plan.keep, query=p.query,
                             grid=(N,))[1]
        by_hand = ((pred - gather_tokens(2 * X0, p.query)) ** 2).mean(-1).mean()
        assert torch.allclose(out.parts[f"rec{k + 1}"], by_hand, atol=1e-6)


def test_a_whole_branch_keeps_every_token_and_its_encoding_is_the_other_decoders_memory() -> None:
    model, rec = _model(
        [BranchSpec(view=0, memory=1), BranchSpec(view=1, decoder=None, reconstruct=False, whole=True)],
        decoder=MemoryDecoder,
    )
    out = model(Views((X0, X1)), seeds=torch.arange(2))
    whole = out.plans[1]
    assert torch.equal(whole.keep, torch.arange(N).expand(2, N)) and whole.hide.shape == (2, 0)
    state = rec.state
    assert state is not None and model.decoder.memory is state.branches[1].encoded
    assert torch.allclose(state.branches[1].encoded.latent[:, 1:], model.features(X1).tokens, atol=1e-6)


def test_a_plain_batch_feeds_every_view_with_a_warning_and_too_few_views_fail() -> None:
    model, _ = _model([BranchSpec(view=0), BranchSpec(view=1, decoder=None, reconstruct=False)])
    with pytest.warns(UserWarning, match="reads 2 views but got a plain batch"):
        plain = model(X0, seeds=torch.arange(2))
    assert torch.equal(plain.loss, model(Views((X0, X0)), seeds=torch.arange(2)).loss)
    with pytest.raises(ValueError, match=r"reads view 1 but the batch has 1 view\(s\).*data.views=2"):
        model(Views((X0,)), seeds=torch.arange(2))


def test_branch_specs_are_checked() -> None:
    with pytest.raises(ValueError, match="decoder=None cannot reconstruct"):
        BranchSpec(view=1, decoder=None)
    with pytest.raises(ValueError, match="decoder=1: the model has decoders 0..0"):
        resolve_branches([BranchSpec(decoder=1)], 1)
    with pytest.raises(ValueError, match=r"decoder\(s\) \[1\] are read by no branch"):
        resolve_branches([BranchSpec()], 2)
    with pytest.raises(ValueError, match="memory=0: expected the index of another branch"):
        resolve_branches([BranchSpec(memory=0)], 1)
    with pytest.raises(ValueError, match="branches\\[0\\] needs a decoder"):
        resolve_branches([BranchSpec(decoder=None, reconstruct=False), BranchSpec()], 1)
    assert resolve_branches(None, 2) == (BranchSpec(view=0, decoder=0), BranchSpec(view=0, decoder=1))


def test_views_move_every_view() -> None:
    views = Views((X0, X1)).to("cpu")
    assert len(views) == 2 and views[1] is X1 and Views.of(views) is views and len(Views.of(X0)) == 1
    with pytest.raises(ValueError, match="at least one view"):
        Views(())
