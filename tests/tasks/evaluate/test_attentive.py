"""EP attentive probe: module shapes, slice maths against a loop, and a task mean pooling fails."""

from __future__ import annotations

import math

import pytest
import torch

from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.attentive import EfficientProbe, attentive_head, attentive_probe
from anymae.tasks.evaluate.linear import linear_probe


def test_shapes_and_attention_rows() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 7, 32)  # B×T×D
    ep = EfficientProbe(32, num_queries=8)
    assert ep(x).shape == (3, 32)
    assert EfficientProbe(32, num_queries=8, d_out=2)(x).shape == (3, 16)
    attn = ep.attention(x)
    assert attn.shape == (3, 8, 7)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 8))
    # only the queries and one value projection (no bias) are learned
    assert sorted(n for n, _ in ep.named_parameters()) == ["queries", "value.weight"]
    head = attentive_head(32, 5, num_queries=8, d_out=2)
    assert head(x).shape == (3, 5)
    assert isinstance(head[1], torch.nn.BatchNorm1d) and not head[1].affine and head[1].eps == 1e-6


def test_slice_aggregation_matches_explicit_loop() -> None:
    torch.manual_seed(1)
    dim, num_queries, d_out = 24, 3, 2
    ep = EfficientProbe(dim, num_queries=num_queries, d_out=d_out)
    with torch.no_grad():
        ep.queries.normal_()  # make the attention far from uniform
    x = torch.randn(2, 5, dim)  # B×T×D
    width = dim // d_out // num_queries  # c = D_out / Q = 4
    expected = torch.zeros(2, dim // d_out)
    for b in range(2):
        for q in range(num_queries):
            logits = torch.stack([ep.queries[q] @ x[b, t] / math.sqrt(dim) for t in range(5)])
            weights = logits.softmax(0)
            for t in range(5):
                value = ep.value.weight @ x[b, t]  # D_out
                expected[b, q * width : (q + 1) * width] += weights[t] * value[q * width : (q + 1) * width]
    torch.testing.assert_close(ep(x), expected)


def test_pooling_ignores_token_order() -> None:
    torch.manual_seed(2)
    ep = EfficientProbe(16, num_queries=4)
    x = torch.randn(2, 9, 16)
    torch.testing.assert_close(ep(x), ep(x[:, torch.randperm(9)]))


def test_invalid_configuration_raises() -> None:
    with pytest.raises(ValueError, match="d_out=3 must divide"):
        EfficientProbe(16, num_queries=4, d_out=3)
    with pytest.raises(ValueError, match="num_queries=5 must divide"):
        EfficientProbe(16, num_queries=5)
    with pytest.raises(ValueError, match="B×T×16"):
        EfficientProbe(16, num_queries=4)(torch.zeros(2, 16))
    pooled = FeatureSet(torch.zeros(8, 16), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="per-token"):
        attentive_probe(pooled, pooled)


def _one_signal_token(n: int, seed: int, t: int = 16, d: int = 16, c: int = 4) -> FeatureSet:
    """N sets of T tokens: T-1 noise tokens and, at a random position, one token carrying the
    class (a marker in dim 0 plus a class direction); mean pooling dilutes it by 1/T."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, t, d, generator=gen)  # N×T×D noise
    x[:, :, 0] = 0.0
    y = torch.randint(0, c, (n,), generator=gen)
    position = torch.randint(0, t, (n,), generator=gen)
    signal = 0.1 * torch.randn(n, d, generator=gen)  # N×D
    signal[:, 0] = 8.0
    signal[torch.arange(n), 1 + y] += 3.0
    x[torch.arange(n), position] = signal
    return FeatureSet(x, y)


def test_attentive_probe_finds_the_one_token_mean_pooling_dilutes() -> None:
    train, test = _one_signal_token(256, 0), _one_signal_token(128, 1)
    # EP's protocol (LARS), with a large blr because the run is only 96 steps long.
    result = attentive_probe(
        train, test, num_queries=4, epochs=12, batch_size=32, warmup_epochs=1,
        optimizer="lars", blr=100.0, seed=0,
    )
    mean_train = FeatureSet(train.features.mean(1), train.labels)  # N×D
    mean_test = FeatureSet(test.features.mean(1), test.labels)
    linear = linear_probe(
        mean_train, mean_test, epochs=12, batch_size=32, warmup_epochs=1, optimizer="adamw", blr=0.05
    )
    assert result.top1 >= 95.0
    assert linear.top1 <= 70.0  # about 48% here: the class token is 1 of 16 in the mean
    assert "attentive probe (EP)" in result.protocol


def test_attentive_probe_is_deterministic_from_seed() -> None:
    train, test = _one_signal_token(64, 0), _one_signal_token(32, 1)
    kwargs = dict(num_queries=4, epochs=2, batch_size=16, warmup_epochs=1, optimizer="adamw", blr=0.05)
    a = attentive_probe(train, test, seed=5, **kwargs)  # type: ignore[arg-type]
    b = attentive_probe(train, test, seed=5, **kwargs)  # type: ignore[arg-type]
    c = attentive_probe(train, test, seed=6, **kwargs)  # type: ignore[arg-type]
    assert a.history == b.history and a.top1 == b.top1
    assert a.history != c.history
