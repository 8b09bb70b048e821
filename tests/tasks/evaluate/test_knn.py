"""Weighted k-NN against a brute-force numpy computation, and on separated clusters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.knn import knn_predict, knn_probe


def _numpy_knn(bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray, k: int, t: float) -> np.ndarray:
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sim = queries @ bank.T  # M×N
    idx = np.argsort(-sim, axis=1)[:, :k]  # M×k
    weights = np.exp(np.take_along_axis(sim, idx, axis=1) / t)  # M×k
    votes = np.zeros((len(queries), bank_labels.max() + 1))
    for row in range(len(queries)):
        np.add.at(votes[row], bank_labels[idx[row]], weights[row])
    return votes.argmax(1)


def _random_sets(seed: int = 0) -> tuple[FeatureSet, FeatureSet]:
    gen = torch.Generator().manual_seed(seed)
    train = FeatureSet(torch.randn(300, 16, generator=gen), torch.randint(0, 5, (300,), generator=gen))
    test = FeatureSet(torch.randn(50, 16, generator=gen), torch.randint(0, 5, (50,), generator=gen))
    return train, test


@pytest.mark.parametrize(("k", "batch_size", "bank_chunk"), [(20, 256, 65536), (20, 7, 64), (1, 16, 33), (5, 50, 5)])
def test_matches_brute_force(k: int, batch_size: int, bank_chunk: int) -> None:
    train, test = _random_sets()
    got = knn_predict(train, test, k=k, temperature=0.07, batch_size=batch_size, bank_chunk=bank_chunk)
    expected = _numpy_knn(
        train.features.double().numpy(), train.labels.numpy(), test.features.double().numpy(), k, 0.07
    )
    np.testing.assert_array_equal(got.numpy(), expected)
    accuracy = knn_probe(train, test, k=k, batch_size=batch_size, bank_chunk=bank_chunk)
    assert accuracy == pytest.approx(100.0 * float(np.mean(expected == test.labels.numpy())))


def test_separated_clusters_give_100_percent() -> None:
    gen = torch.Generator().manual_seed(1)
    centers = torch.eye(8)[:4] * 10  # 4 classes, orthogonal directions
    y_train, y_test = torch.arange(200) % 4, torch.arange(80) % 4
    train = FeatureSet(centers[y_train] + torch.randn(200, 8, generator=gen), y_train)
    test = FeatureSet(centers[y_test] + torch.randn(80, 8, generator=gen), y_test)
    assert knn_probe(train, test, k=20, batch_size=16, bank_chunk=50) == 100.0


def test_features_are_l2_normalised_so_scale_does_not_matter() -> None:
    train, test = _random_sets(2)
    scaled = FeatureSet(train.features * torch.rand(300, 1) * 100 + 0.0, train.labels)
    torch.testing.assert_close(knn_predict(train, test), knn_predict(scaled, test))


def test_errors() -> None:
    train, test = _random_sets()
    with pytest.raises(ValueError, match="k must be"):
        knn_probe(train, test, k=301)
    with pytest.raises(ValueError, match="pooled"):
        knn_probe(FeatureSet(torch.zeros(4, 2, 3), torch.zeros(4, dtype=torch.long)), test)
    with pytest.raises(ValueError, match="width"):
        knn_probe(train, FeatureSet(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)))
