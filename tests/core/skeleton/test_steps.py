"""The skeleton's steps by hand: drop vs replace mode on the same tokens, positions, branches and their seeds."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from anymae.core.decoders.mae import DecoderConfig, MAEDecoder
from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.masking import RandomMasking, gather_tokens, make_plan
from anymae.core.model import MaskedAutoencoder
from anymae.core.seeds import DECODER_MASK_OFFSET, SECOND_STREAM_OFFSET
from anymae.core.skeleton import DropMode, ReplaceMode
from anymae.core.tokens import Tokens

N, D = 6, 8


class Table(nn.Module):
    """Fixed positions 1×N×dim."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("table", torch.randn(1, N, dim, generator=torch.Generator().manual_seed(dim)))

    def forward(self, grid: tuple[int, ...], coords: Tensor | None = None) -> Tensor:
        return self.table


class RowTokenizer(nn.Module):
    """B×N×D tensors are their own tokens; targets are twice the inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.dim, self.pos_embed = D, Table(D)

    def forward(self, x: Tensor) -> Tokens:
        return Tokens(x=x, target=2 * x, grid=(N,))

    def untokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        return values


class Linear(nn.Module):
    """A per-token backbone (x, tokens) -> B×N×out remembering its input."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.lin = in_dim, out_dim, nn.Linear(in_dim, out_dim)
        self.seen: Tensor | None = None

    def forward(self, x: Tensor, tokens: Tokens) -> Tensor:
        self.seen = x.detach().clone()
        return self.lin(x)


def _encoder(every_block: bool = False) -> TransformerEncoder:
    return TransformerEncoder(EncoderConfig(dim=D, depth=2, num_heads=2, pos_every_block=every_block))


def _drop(every_block: bool = False, extra: int = 0) -> MaskedAutoencoder:
    torch.manual_seed(0)
    dec = lambda: MAEDecoder(DecoderConfig(dim=D, depth=1, num_heads=2), D, Table(D), nn.Linear(D, D))  # noqa: E731
    return MaskedAutoencoder(
        RowTokenizer(), _encoder(every_block), dec(), RandomMasking(0.5), extra_decoders=[dec() for _ in range(extra)]
    ).eval()


def _by_hand(encoder: TransformerEncoder, x: Tensor, pos: Tensor) -> Tensor:
    """cls + tokens through the blocks, positions added once or before every block; final norm."""
    b = x.shape[0]
    cls = encoder.cls_token.expand(b, -1, -1)
    if encoder.cfg.pos_every_block:
        seq, seq_pos = torch.cat([cls, x], 1), torch.cat([torch.zeros_like(cls), pos], 1)
        for block in encoder.blocks:
            seq = block(seq + seq_pos)
    else:
        seq = torch.cat([cls, x + pos], 1)
        for block in encoder.blocks:
            seq = block(seq)
    return encoder.norm(seq)


X = torch.randn(2, N, D, generator=torch.Generator().manual_seed(1))
NOISE = torch.tensor([[0.1, 0.9, 0.2, 0.8, 0.3, 0.7], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]])  # keeps {0,2,4}, {5,4,3}


@pytest.mark.parametrize("every_block", [False, True])
def test_drop_mode_encodes_the_visible_tokens_with_their_positions(every_block: bool) -> None:
    model = _drop(every_block)
    tokens = model.tokenize(X)
    (planned,) = model.plan_masks(tokens, noise=NOISE)
    assert planned.plan.keep.sort(1).values.tolist() == [[0, 2, 4], [3, 4, 5]]
    assert torch.equal(planned.query, planned.plan.hide) and torch.equal(planned.weight, torch.ones(2, 3))
    encoded = model.encode(tokens, planned)
    keep = planned.plan.keep
    pos = model.tokenizer.pos_embed((N,))  # 1×N×D
    expected = _by_hand(model.encoder, gather_tokens(X, keep), gather_tokens(pos, keep))
    assert encoded.num_prefix == 1 and encoded.latent.shape == (2, 4, D)
    assert torch.allclose(encoded.latent, expected, atol=1e-6)
    # features(): every token, the same single decision about positions
    assert torch.allclose(model.features(X).tokens, _by_hand(model.encoder, X, pos.expand(2, -1, -1))[:, 1:], atol=1e-6)
    decoded = model.decode(tokens, planned, encoded)
    assert decoded.pred.shape == (2, 3, D) and decoded.pred_visible.shape == (2, 3, D)
    assert decoded.hidden.shape == (2, 3 + 3, D)  # [visible, queried]; the decoder's prefix token is left out


def test_replace_mode_encodes_every_token_with_hidden_ones_replaced() -> None:
    torch.manual_seed(0)
    model = MaskedAutoencoder(
        RowTokenizer(), _encoder(), Linear(5, D), RandomMasking(0.5), mode=ReplaceMode(0.0), loss="mse"
    ).eval()
    with torch.no_grad():
        model.mask_token.fill_(0.5)
    tokens = model.tokenize(X)
    (planned,) = model.plan_masks(tokens, noise=NOISE)
    hidden = planned.plan.mask.bool()  # B×N, the same tokens the drop model hides
    assert planned.query is None and torch.equal(planned.weight, planned.plan.mask)
    replaced = torch.where(hidden.unsqueeze(-1), torch.full_like(X, 0.5), X)
    encoded = model.encode(tokens, planned)
    pos = model.tokenizer.pos_embed((N,))
    assert encoded.latent.shape == (2, 1 + N, D)
    assert torch.allclose(encoded.latent, _by_hand(model.encoder, replaced, pos), atol=1e-6)
    decoded = model.decode(tokens, planned, encoded)
    rep = model.encoder_to_decoder(encoded.latent[:, 1:]).masked_fill(hidden.unsqueeze(-1), 0.0)  # re-masked
    assert torch.equal(model.decoder.seen, rep) and decoded.pred.shape == (2, N, D) and decoded.hidden is None
    out = model(X, noise=NOISE)
    by_hand = (((out.pred - 2 * X) ** 2).mean(-1) * planned.plan.mask).sum() / planned.plan.mask.sum()
    assert torch.allclose(out.loss, by_hand, atol=1e-6) and torch.equal(out.loss_weight, planned.plan.mask)
    feats = model.features(X)
    assert feats.prefix.shape == (2, 1, D) and torch.allclose(feats.tokens, _by_hand(model.encoder, X, pos)[:, 1:],
                                                              atol=1e-6)


def test_branches_draw_from_offset_seeds_and_take_injected_scores_per_branch() -> None:
    model = _drop(extra=1)
    assert len(model.decoders) == 2 and model.decoders[1] is model.decoder2
    tokens = model.tokenize(X)
    seeds = torch.tensor([5, 6])
    first, second = model.plan_masks(tokens, seeds=seeds)
    ref = lambda s: make_plan(RandomMasking(0.5), (N,), 2, device="cpu", seeds=s)  # noqa: E731
    assert torch.equal(first.plan.hide, ref(seeds).hide)
    assert torch.equal(second.plan.hide, ref(seeds + SECOND_STREAM_OFFSET).hide)
    only_first = model.plan_masks(tokens, noise=NOISE, generator=torch.Generator().manual_seed(0))
    assert torch.equal(only_first[0].plan.keep.sort(1).values, torch.tensor([[0, 2, 4], [3, 4, 5]]))
    both = model.plan_masks(tokens, noise=[None, NOISE], seeds=seeds)
    assert torch.equal(both[0].plan.hide, first.plan.hide) and torch.equal(both[1].plan.hide, NOISE.argsort(1)[:, 3:])
    out = model(X, seeds=seeds)
    assert [p.hide.tolist() for p in out.plans] == [first.plan.hide.tolist(), second.plan.hide.tolist()]
    assert out.plans[0] is out.plan and set(out.parts) == {"rec1", "rec2"}


def test_decoder_masking_draws_from_decoder_offset_seeds() -> None:
    model = _drop()
    model.decoder_masking = RandomMasking(0.5)
    tokens = model.tokenize(X)
    seeds = torch.tensor([5, 6])
    (planned,) = model.plan_masks(tokens, seeds=seeds)
    dec = make_plan(RandomMasking(0.5), (N,), 2, device="cpu", seeds=seeds + DECODER_MASK_OFFSET)
    assert torch.equal(planned.query, dec.keep)
    assert torch.equal(planned.weight, torch.gather(planned.plan.mask, 1, dec.keep))


def test_compositions_a_mode_cannot_run_are_refused() -> None:
    table_dec = MAEDecoder(DecoderConfig(dim=D, depth=1, num_heads=2), D, Table(D), nn.Linear(D, D))
    with pytest.raises(TypeError, match="TransformerEncoder"):
        MaskedAutoencoder(RowTokenizer(), Linear(D, D), table_dec, RandomMasking(0.5), mode=DropMode())
    with pytest.raises(TypeError, match="backbone"):
        MaskedAutoencoder(RowTokenizer(), _encoder(), table_dec, RandomMasking(0.5), mode=ReplaceMode())
    with pytest.raises(ValueError, match="replace_rate"):
        ReplaceMode(1.0)
    model = MaskedAutoencoder(RowTokenizer(), _encoder(), Linear(D, D), RandomMasking(0.5), mode=ReplaceMode(),
                              decoder_masking=RandomMasking(0.5))
    with pytest.raises(ValueError, match="decoder-side"):
        model(X)
    backbone = MaskedAutoencoder(RowTokenizer(), Linear(D, D), Linear(D, D), RandomMasking(0.5), mode=ReplaceMode())
    with pytest.raises(ValueError, match="return_layers"):
        backbone.features(X, return_layers=(0,))
