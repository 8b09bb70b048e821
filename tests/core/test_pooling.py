"""The one pooling vocabulary: every kind against hand computations (plain and packed rows), the
learned-pool slot, and the default pool that follows the model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import anymae
from anymae.core.features import Features, PackedFeatures
from anymae.core.pooling import (
    LEARNED_POOLS,
    POOL_NAMES,
    POOLS,
    EfficientProbe,
    HybridTokenFusion,
    default_pool,
    learned_pool,
    pool,
    pool_dim,
)

# B=2 samples, P=1 prefix (cls) token, N=3 tokens, D=2
CLS = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
TOKENS = torch.tensor([
    [[1.0, -2.0], [3.0, 4.0], [-5.0, 0.0]],
    [[0.0, 1.0], [2.0, -3.0], [4.0, 8.0]],
])  # fmt: skip
BY_HAND = {  # per sample, worked out on paper
    "cls": [[10.0, 20.0], [30.0, 40.0]],
    "mean": [[-1 / 3, 2 / 3], [2.0, 2.0]],
    "max": [[3.0, 4.0], [4.0, 8.0]],
    "sum": [[-1.0, 2.0], [6.0, 6.0]],
    "cls_max": [[10.0, 20.0, 3.0, 4.0], [30.0, 40.0, 4.0, 8.0]],
    "mean_max": [[-1 / 3, 2 / 3, 3.0, 4.0], [2.0, 2.0, 4.0, 8.0]],
}


def _features() -> Features:
    return Features(tokens=TOKENS.clone(), prefix=CLS.unsqueeze(1).clone())


def test_vocabulary_is_what_the_users_need() -> None:
    assert set(POOLS) == set(BY_HAND)
    assert set(LEARNED_POOLS) == {"cls_attn", "cls_attn_sigmoid", "attentive"}
    assert POOL_NAMES == POOLS + LEARNED_POOLS


@pytest.mark.parametrize("kind", sorted(BY_HAND))
def test_every_pool_matches_the_hand_computation(kind: str) -> None:
    feats = _features()
    expected = torch.tensor(BY_HAND[kind])
    torch.testing.assert_close(pool(feats, kind), expected)  # type: ignore[arg-type]
    torch.testing.assert_close(feats.pooled(kind), expected)  # type: ignore[arg-type]  # the thin method
    assert pool_dim(kind, 2) == expected.shape[1]


@pytest.mark.parametrize("kind", ["mean", "max", "sum", "mean_max"])
def test_a_bare_token_tensor_pools_like_features_without_prefix(kind: str) -> None:
    torch.testing.assert_close(pool(TOKENS, kind), torch.tensor(BY_HAND[kind]))  # type: ignore[arg-type]


def test_packed_rows_pool_per_sample() -> None:
    # one row packing 3 samples: tokens 0-1 -> sample 0, tokens 2-4 -> sample 1, sample 2 empty
    x = torch.tensor([[1.0, 0.0], [3.0, -2.0], [5.0, -1.0], [0.0, 4.0], [-2.0, 3.0]])
    feats = PackedFeatures(tokens=x.unsqueeze(0), prefix=x.new_zeros(1, 0, 2),
                           segments=torch.tensor([0, 0, 1, 1, 1]), num_segments=3)  # fmt: skip
    by_hand = {
        "mean": [[2.0, -1.0], [1.0, 2.0], [0.0, 0.0]],
        "sum": [[4.0, -2.0], [3.0, 6.0], [0.0, 0.0]],
        "max": [[3.0, 0.0], [5.0, 4.0], [0.0, 0.0]],  # an empty sample pools to 0
        "mean_max": [[2.0, -1.0, 3.0, 0.0], [1.0, 2.0, 5.0, 4.0], [0.0, 0.0, 0.0, 0.0]],
    }
    for kind, expected in by_hand.items():
        torch.testing.assert_close(pool(feats, kind), torch.tensor(expected))  # type: ignore[arg-type]
        torch.testing.assert_close(feats.pooled(kind), torch.tensor(expected))  # type: ignore[arg-type]
    for kind in ("cls", "cls_max"):
        with pytest.raises(ValueError, match=f"pooling '{kind}' needs a cls token.*packed row"):
            pool(feats, kind)  # type: ignore[arg-type]
    unpacked = PackedFeatures(tokens=TOKENS, prefix=TOKENS[:, :0])  # segments None: one sample per row
    torch.testing.assert_close(unpacked.pooled("sum"), torch.tensor(BY_HAND["sum"]))


def test_errors_name_the_value_and_what_was_expected() -> None:
    no_cls = Features(tokens=TOKENS, prefix=TOKENS[:, :0])
    with pytest.raises(ValueError, match=r"pooling 'cls_max' needs a cls token.*no prefix tokens \(P=0\)"):
        pool(no_cls, "cls_max")
    with pytest.raises(ValueError, match=r"pool='median' is not a known pooling; expected one of cls, mean"):
        pool(_features(), "median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'cls_attn' is learned: build it with learned_pool"):
        pool(_features(), "cls_attn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="learned_pool: pool='mean'"):
        learned_pool("mean", 8)  # type: ignore[arg-type]


def test_learned_pools_fill_one_slot_read_through_pool_features() -> None:
    torch.manual_seed(0)
    feats = Features(tokens=torch.randn(2, 5, 12), prefix=torch.randn(2, 1, 12))
    for kind in ("cls_attn", "cls_attn_sigmoid"):
        fusion = learned_pool(kind, 12, num_heads=3)  # type: ignore[arg-type]
        assert isinstance(fusion, HybridTokenFusion) and fusion.gate == (kind == "cls_attn_sigmoid")
        torch.testing.assert_close(fusion.pool_features(feats), fusion(feats.prefix[:, 0], feats.tokens))
        assert fusion.out_dim == 12
    ep = learned_pool("attentive", 12, num_queries=3, d_out=2)
    assert isinstance(ep, EfficientProbe) and (ep.num_queries, ep.out_dim) == (3, 6)
    out = ep.pool_features(feats)  # the tokens only: the prefix is not read
    torch.testing.assert_close(out, ep(feats.tokens))
    assert out.shape == (2, 6)
    with pytest.raises(ValueError, match="needs a cls token"):
        learned_pool("cls_attn", 12, num_heads=3).pool_features(Features(feats.tokens, feats.tokens[:, :0]))


class _Encoder(nn.Module):
    def __init__(self, cls: bool) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4)) if cls else None


class _Model(nn.Module):
    def __init__(self, cls: bool, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.encoder = _Encoder(cls)
        self.config = config or {}


def test_default_pool_follows_the_model() -> None:
    assert default_pool(_Model(cls=True)) == "cls"
    assert default_pool(_Model(cls=False)) == "mean"  # e.g. registers only: never a register as "cls"
    assert default_pool(_Model(cls=False, config={"pooling": "sum"})) == "sum"  # a configured readout wins
    assert default_pool(nn.Linear(2, 2)) == "mean"  # nothing to go by
    with pytest.raises(ValueError, match=r"_Model.config\['pooling'\]: pool='median'"):
        default_pool(_Model(cls=False, config={"pooling": "median"}))


def test_default_pool_of_real_presets() -> None:
    with torch.device("meta"):
        image = anymae.create_model("mae_vit_tiny_patch4", depth=1, decoder_depth=1)
        video = anymae.create_model("videomae_vit_tiny_patch8", depth=1, decoder_depth=1)
    assert image.encoder.cls_token is not None and default_pool(image) == "cls"
    assert video.encoder.num_prefix == 0 and default_pool(video) == "mean"


def test_padding_is_left_out_of_every_pool() -> None:
    """Features of variable-length sequences (LV-MAE): pooling reads the real tokens only."""
    from anymae.core.features import Features

    tokens = torch.tensor([[[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]],
                           [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])  # B=2, N=3, D=2; sample 0 padded at 2
    valid = torch.tensor([[True, True, False], [True, True, True]])
    feats = Features(tokens=tokens, prefix=tokens[:, :1] * 0, valid=valid)
    torch.testing.assert_close(feats.pooled("mean"), torch.tensor([[2.0, -1.0], [7.0, 8.0]]))
    torch.testing.assert_close(feats.pooled("max"), torch.tensor([[3.0, 2.0], [9.0, 10.0]]))
    torch.testing.assert_close(feats.pooled("sum"), torch.tensor([[4.0, -2.0], [21.0, 24.0]]))
    torch.testing.assert_close(feats.pooled("mean_max")[:, :2], feats.pooled("mean"))
    unpadded = Features(tokens=tokens[1:], prefix=tokens[1:, :1] * 0, valid=valid[1:])
    torch.testing.assert_close(unpadded.pooled("mean"), tokens[1:].mean(1))
