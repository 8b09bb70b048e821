"""The replacement MAE (SimMIM / GraphMAE family), the SCE loss and GraphMAE's hide count."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from anymae.core.encoder import EncoderConfig
from anymae.core.losses import get_loss
from anymae.core.masking import RandomMasking, make_masking, make_plan
from anymae.core.features import PackedFeatures, segment_pool
from anymae.core.model import MaskedAutoencoder
from anymae.core.seeds import fold_seeds
from anymae.core.skeleton import ReplaceMode, TransformerBackbone
from anymae.core.tokens import Tokens


class RowTokenizer(nn.Module):
    """B×N×D tensors are their own tokens and targets; optional segments of one packed row."""

    def __init__(self, dim: int, segments: Tensor | None = None) -> None:
        super().__init__()
        self.dim, self.seg = dim, segments

    def forward(self, x: Tensor) -> Tokens:
        return Tokens(x=x, target=x, grid=(x.shape[1],))

    def untokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        return values

    def segments(self, tokens: Tokens) -> tuple[Tensor | None, int]:
        return (self.seg, int(self.seg.max()) + 1) if self.seg is not None else (None, 0)


class Spy(nn.Module):
    """A linear backbone remembering its last input."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.lin = nn.Linear(in_dim, out_dim)
        self.seen: Tensor | None = None

    def forward(self, x: Tensor, tokens: Tokens) -> Tensor:
        self.seen = x.detach().clone()
        return self.lin(x)


def _model(replace_rate: float = 0.0, ratio: float = 0.5, d: int = 4, remask: bool = True) -> MaskedAutoencoder:
    torch.manual_seed(0)
    return MaskedAutoencoder(
        RowTokenizer(d), Spy(d, 6), Spy(5, d), RandomMasking(ratio, count="hide"),
        mode=ReplaceMode(replace_rate, remask=remask), loss="sce", loss_params={"gamma": 2.0},
    )


def test_sce_matches_brute_force() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    weight = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1]], dtype=torch.float32)
    expected, count = 0.0, 0
    for b in range(2):
        for n in range(5):
            if weight[b, n]:
                p, t = pred[b, n], target[b, n]
                cos = float(p @ t) / (float(p.norm()) * float(t.norm()))
                expected += (1 - cos) ** 3
                count += 1
    assert get_loss("sce", gamma=3)(pred, target, weight).item() == pytest.approx(expected / count, rel=1e-5)
    assert get_loss("sce")(target, target, None).item() == pytest.approx(0.0, abs=1e-6)  # default gamma 3
    with pytest.raises(ValueError, match="alpha"):
        get_loss("sce", alpha=2)


@pytest.mark.parametrize("n, ratio, hidden", [(7, 0.5, 3), (2708, 0.5, 1354), (10, 0.75, 7), (188, 0.75, 141)])
def test_random_hide_counts_like_graphmae(n: int, ratio: float, hidden: int) -> None:
    m = make_masking("random_hide", ratio)
    assert n - m.num_keep(n) == hidden == int(ratio * n)
    plan = make_plan(m, (n,), 2, device="cpu", seeds=torch.tensor([1, 2]))
    assert plan.hide.shape == (2, hidden) and plan.mask.sum(1).tolist() == [hidden, hidden]


def test_replacement_counts_and_values() -> None:
    model = _model(replace_rate=0.25, ratio=0.5)
    with torch.no_grad():
        model.mask_token.copy_(torch.full((1, 1, 4), 7.0))
    x = torch.arange(1, 41, dtype=torch.float32).view(1, 10, 4) * 0.01  # distinct rows, none equal 7
    plan = make_plan(model.masking, (10,), 1, device="cpu", seeds=torch.tensor([3]))
    out = model.mode.replace_hidden(x, plan, model.mask_token, seeds=torch.tensor([3]))
    hide = plan.hide[0].tolist()  # 5 hidden: int(0.75*5)=3 [MASK], int(0.25*5)=1 replaced, 1 left as is
    visible = sorted(set(range(10)) - set(hide))
    assert torch.equal(out[0, visible], x[0, visible])
    assert torch.equal(out[0, hide[:3]], torch.full((3, 4), 7.0))
    assert torch.equal(out[0, hide[3]], x[0, hide[3]])  # the reference's leftover keeps its input
    replaced = out[0, hide[4]]
    assert any(torch.equal(replaced, x[0, j]) for j in range(10))  # another node's features


def test_no_replacement_all_hidden_get_mask_token() -> None:
    model = _model(replace_rate=0.0)
    x = torch.randn(1, 8, 4)
    plan = make_plan(model.masking, (8,), 1, device="cpu", seeds=torch.tensor([0]))
    out = model.mode.replace_hidden(x, plan, model.mask_token)
    assert torch.equal(out[0, plan.hide[0]], torch.zeros(4, 4))  # zero-init [MASK]


def test_forward_remasks_and_scores_hidden_only() -> None:
    model = _model(replace_rate=0.0)
    x = torch.randn(1, 8, 4)
    out = model(x, seeds=torch.tensor([5]))
    hidden = out.mask[0].bool()
    assert torch.equal(model.decoder.seen[0, hidden], torch.zeros(int(hidden.sum()), 5))  # re-masked: plain 0
    assert (model.decoder.seen[0, ~hidden] != 0).any()
    assert torch.equal(out.loss_weight, out.mask)
    expected = get_loss("sce", gamma=2.0)(out.pred[:, hidden], x[:, hidden], None)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    out.loss.backward()
    assert model.mask_token.grad is not None  # zero here: a per-token backbone + re-masking hides it
    same = model(x, seeds=torch.tensor([5]))
    assert torch.equal(same.mask, out.mask)
    recon = model.reconstruct(out)
    assert torch.equal(recon[0, ~hidden], x[0, ~hidden]) and torch.equal(recon[0, hidden], out.pred[0, hidden].detach())


def test_no_remask_keeps_decoder_input() -> None:
    model = _model(remask=False)
    out = model(torch.randn(1, 8, 4), seeds=torch.tensor([5]))
    assert (model.decoder.seen[0, out.mask[0].bool()] != 0).any()


def test_fold_seeds_packs_a_batch_into_one_row() -> None:
    seeds = torch.tensor([11, 12, 13])
    assert torch.equal(fold_seeds(seeds, 3), seeds)
    one = fold_seeds(seeds, 1)
    assert one.shape == (1,) and 0 <= int(one) < 2**63 and torch.equal(one, fold_seeds(seeds.clone(), 1))
    assert not torch.equal(one, fold_seeds(torch.tensor([11, 12, 14]), 1))
    with pytest.raises(ValueError, match="one row"):
        fold_seeds(seeds, 2)
    model = _model()
    out = model(torch.randn(1, 8, 4), seeds=seeds)  # 3 samples packed in one row
    again = model(torch.randn(1, 8, 4), seeds=seeds)
    assert torch.equal(out.plan.hide, again.plan.hide)


def test_packed_features_pool_per_segment() -> None:
    x = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, -1.0], [0.0, 4.0]])
    seg = torch.tensor([0, 0, 1, 1])
    assert torch.equal(segment_pool(x, seg, 2, "sum"), torch.tensor([[4.0, 2.0], [5.0, 3.0]]))
    assert torch.equal(segment_pool(x, seg, 2, "mean"), torch.tensor([[2.0, 1.0], [2.5, 1.5]]))
    assert torch.equal(segment_pool(x, seg, 2, "max"), torch.tensor([[3.0, 2.0], [5.0, 4.0]]))
    torch.manual_seed(0)
    model = MaskedAutoencoder(
        RowTokenizer(2, seg), Spy(2, 2), Spy(2, 2), RandomMasking(0.5, count="hide"), mode=ReplaceMode()
    )
    feats = model.features(x.unsqueeze(0))
    assert isinstance(feats, PackedFeatures) and feats.prefix.shape == (1, 0, 2)
    assert torch.allclose(feats.pooled("mean"), segment_pool(feats.tokens[0], seg, 2, "mean"))
    with pytest.raises(ValueError, match="cls"):
        feats.pooled("cls")


def test_transformer_backbone_follows_attention_mask() -> None:
    allowed = torch.eye(4, dtype=torch.bool)
    allowed[0, 1] = allowed[1, 0] = True  # nodes 0-1 see each other; 2 and 3 only themselves
    cfg = EncoderConfig(dim=8, depth=2, num_heads=2, cls_token=False)
    torch.manual_seed(0)
    net = TransformerBackbone(cfg, 3, 5, attn_mask=lambda t: allowed.view(1, 1, 4, 4)).eval()
    x = torch.randn(1, 4, 3)
    tok = Tokens(x=x, target=x, grid=(4,))
    y = net(x, tok)
    x2 = x.clone()
    x2[0, 2] += 1.0
    y2 = net(x2, tok)
    assert y.shape == (1, 4, 5)
    assert torch.allclose(y[0, [0, 1, 3]], y2[0, [0, 1, 3]], atol=1e-6) and not torch.allclose(y[0, 2], y2[0, 2])
    with pytest.raises(ValueError, match="cls_token"):
        TransformerBackbone(EncoderConfig(dim=8, depth=1, num_heads=2), 3, attn_mask=lambda t: None)
    assert math.isfinite(float(y.detach().sum()))
