"""SVM probes: the train/test protocol (fixed C or C chosen on train) and cross-validation (graphs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.svm import LinearSVC

from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.svm import pool_tokens, svm_cross_validate, svm_probe


def _blobs(n: int, seed: int, shift: float = 3.0) -> FeatureSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    feats = torch.randn(n, 6, generator=g) + shift * torch.nn.functional.one_hot(labels, 6).float()
    return FeatureSet(features=feats, labels=labels)


def test_svm_probe_equals_sklearn_linear_svc() -> None:
    train, test = _blobs(60, 0, shift=1.0), _blobs(30, 1, shift=1.0)
    result = svm_probe(train, test, C=0.5)
    clf = LinearSVC(C=0.5, random_state=0).fit(train.features.double().numpy(), train.labels.numpy())
    expected = 100 * float((clf.predict(test.features.double().numpy()) == test.labels.numpy()).mean())
    assert result.top1 == pytest.approx(expected) and result.C == 0.5
    assert "no selection on test" in result.protocol


def test_svm_probe_chooses_c_on_train_only() -> None:
    from sklearn.model_selection import StratifiedKFold

    train, test = _blobs(60, 0, shift=0.8), _blobs(30, 1, shift=0.8)
    grid = [1e-4, 1e-2, 1.0]
    x, y = train.features.double().numpy(), train.labels.numpy()
    scores = []
    for c in grid:  # brute-force 3-fold CV on train
        cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
        scores.append(np.mean([(LinearSVC(C=c, random_state=0).fit(x[a], y[a]).predict(x[b]) == y[b]).mean()
                               for a, b in cv.split(x, y)]))
    best = grid[int(np.argmax(scores))]
    result = svm_probe(train, test, c_grid=grid, cv_folds=3)
    assert result.C == best
    flipped = FeatureSet(features=test.features, labels=(test.labels + 1) % 3)
    assert svm_probe(train, flipped, c_grid=grid, cv_folds=3).C == best  # test labels play no part


def test_svm_cross_validate_reports_mean_and_std_over_folds() -> None:
    data = _blobs(60, 2)
    result = svm_cross_validate(data, folds=5, c_grid=[0.1, 1.0])
    assert len(result.fold_top1) == 5 and len(result.C) == 5
    assert result.top1 == pytest.approx(np.mean(result.fold_top1)) and result.std == pytest.approx(np.std(result.fold_top1))
    assert result.top1 > 90


def test_pool_tokens_and_errors() -> None:
    f = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    fs = FeatureSet(features=f, labels=torch.tensor([0, 1]))
    assert torch.equal(pool_tokens(fs, "mean_max").features, torch.cat([f.mean(1), f.max(1).values], 1))
    with pytest.raises(ValueError, match="N×D pooled"):
        svm_probe(fs, fs)
    single = FeatureSet(features=torch.randn(4, 2), labels=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="single class"):
        svm_probe(single, single)
