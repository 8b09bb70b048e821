"""extract_features on a tiny stand-in that follows the core `features(x)` contract."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from anymae.tasks.evaluate.features import FeatureSet, extract_feature_sets, extract_features, resolve_pool


@dataclass
class _Features:
    tokens: Tensor  # B×N×D
    prefix: Tensor  # B×P×D

    def pooled(self, kind: str) -> Tensor:
        return self.prefix[:, 0] if kind == "cls" else self.tokens.mean(1)


class _StandIn(nn.Module):
    """x: B×N×3 -> tokens B×N×8; one prefix token (the sum of tokens); dropout shows eval mode."""

    def __init__(self, num_prefix: int = 1) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 8)
        self.drop = nn.Dropout(0.9)
        self.num_prefix = num_prefix

    def features(self, x: Tensor) -> _Features:
        tokens = self.drop(self.proj(x))  # B×N×8
        prefix = tokens.sum(1, keepdim=True)[:, : self.num_prefix]  # B×P×8
        return _Features(tokens=tokens, prefix=prefix)


def _loader(with_seed: bool) -> list[tuple]:
    gen = torch.Generator().manual_seed(0)
    batches = []
    for i in range(3):
        x = torch.randn(4, 5, 3, generator=gen)  # B×N×3
        y = torch.arange(4) + i
        batches.append((x, y, torch.arange(4)) if with_seed else (x, y))
    return batches


@pytest.mark.parametrize("with_seed", [False, True])
def test_pooled_features_match_direct_computation(with_seed: bool) -> None:
    torch.manual_seed(0)
    model = _StandIn().train()
    loader = _loader(with_seed)
    fs = extract_features(model, loader, pooling="mean", progress=False)
    assert model.training  # mode restored
    x = torch.cat([b[0] for b in loader])  # 12×5×3
    with torch.no_grad():
        expected = model.proj(x).mean(1)  # dropout off: eval mode was used
    torch.testing.assert_close(fs.features, expected)
    torch.testing.assert_close(fs.labels, torch.cat([b[1] for b in loader]))
    assert fs.labels.dtype == torch.long and not fs.features.requires_grad

    cls = extract_features(model, loader, pooling="cls", progress=False)
    torch.testing.assert_close(cls.features, expected * 5)  # the stand-in's cls = sum of tokens


def test_token_poolings_keep_per_token_features() -> None:
    model = _StandIn()
    tokens = extract_features(model, _loader(False), pooling="tokens", progress=False)
    both = extract_features(model, _loader(False), pooling="all", progress=False)
    assert tokens.features.shape == (12, 5, 8) and both.features.shape == (12, 6, 8)
    torch.testing.assert_close(both.features[:, 1:], tokens.features)
    torch.testing.assert_close(both.features[:, 0], tokens.features.sum(1))
    assert tokens.dim == 8 and tokens.num_classes == 6 and len(tokens) == 12


def test_clear_errors() -> None:
    with pytest.raises(ValueError, match="no prefix"):
        extract_features(_StandIn(num_prefix=0), _loader(False), pooling="cls", progress=False)
    with pytest.raises(ValueError, match="pooling"):
        extract_features(_StandIn(), _loader(False), pooling="median", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch 0"):
        extract_features(_StandIn(), [torch.zeros(2, 5, 3)], progress=False)
    with pytest.raises(ValueError, match="features\\(x\\)"):
        extract_features(nn.Linear(2, 2), _loader(False), progress=False)
    with pytest.raises(ValueError, match="labels"):
        FeatureSet(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))


def test_real_tiny_model_if_available() -> None:
    anymae = pytest.importorskip("anymae")
    if not hasattr(anymae, "create_model"):
        pytest.skip("anymae.create_model is not there yet")
    torch.manual_seed(0)
    model = anymae.create_model("mae_vit_tiny_patch4", img_size=32)
    x = torch.randn(3, 3, 32, 32)
    fs = extract_features(model, [(x, torch.tensor([0, 1, 2]))], pooling="tokens", progress=False)
    with torch.no_grad():
        expected = model.eval().features(x).tokens
    torch.testing.assert_close(fs.features, expected)


def test_every_pool_of_the_vocabulary_is_extracted() -> None:
    torch.manual_seed(0)
    model = _StandIn()
    loader = _loader(False)
    sets = extract_feature_sets(model, loader, poolings=("max", "sum", "mean_max", "cls_max"), progress=False)
    with torch.no_grad():
        tokens = model.proj(torch.cat([b[0] for b in loader]))  # 12×5×8 (eval: no dropout)
    peak = tokens.max(1).values
    torch.testing.assert_close(sets["max"].features, peak)
    torch.testing.assert_close(sets["sum"].features, tokens.sum(1))
    torch.testing.assert_close(sets["mean_max"].features, torch.cat([tokens.mean(1), peak], 1))  # 12×16
    torch.testing.assert_close(sets["cls_max"].features, torch.cat([tokens.sum(1), peak], 1))  # stand-in cls = sum


class _WithCls(_StandIn):
    """The stand-in with an encoder that holds a cls token: its default pool is cls."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.cls_token = nn.Parameter(torch.zeros(1, 1, 8))


def test_no_pooling_named_takes_the_models_default(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    loader = _loader(False)
    plain, with_cls = _StandIn(), _WithCls()
    torch.testing.assert_close(extract_features(plain, loader, progress=False).features,
                               extract_features(plain, loader, pooling="mean", progress=False).features)
    torch.testing.assert_close(extract_features(with_cls, loader, progress=False).features,
                               extract_features(with_cls, loader, pooling="cls", progress=False).features)
    assert resolve_pool(None, plain, where="probe") == "mean"
    assert resolve_pool(None, with_cls, where="probe") == "cls"
    assert resolve_pool("max", with_cls, where="probe") == "max"  # a named pool is kept, silently
    assert capsys.readouterr().out.splitlines() == [
        "probe: pooling 'mean' (the model's default: the encoder has no cls token)",
        "probe: pooling 'cls' (the model's default: the encoder has a cls token)",
    ]
    with pytest.raises(ValueError, match="fewshot.svm_pool: pool='median'"):
        resolve_pool("median", plain, where="fewshot.svm_pool")  # type: ignore[arg-type]


def test_a_register_is_never_read_as_the_cls_token() -> None:
    model = _StandIn(num_prefix=1)  # one prefix token ...
    model.encoder = nn.Module()
    model.encoder.cls_token = None  # ... that is a register: the encoder has no cls token
    with pytest.raises(ValueError, match="pooling 'cls_max' needs a cls token, but the model's encoder has none"):
        extract_feature_sets(model, _loader(False), poolings=("mean", "cls_max"), progress=False)
    assert extract_features(model, _loader(False), progress=False).features.shape == (12, 8)  # default: mean
