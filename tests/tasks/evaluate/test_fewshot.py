"""Few-shot folds (N-way K-shot), per-fold protocols and mean ± std."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.fewshot import FoldSubset, fewshot_finetune, fewshot_svm, make_folds


def test_folds_draw_way_classes_shot_support_and_query_from_their_splits() -> None:
    train_labels = [c for c in range(6) for _ in range(12)]
    test_labels = [c for c in range(6) for _ in range(25)]
    folds = make_folds(train_labels, test_labels, way=5, shot=10, query=20, folds=4, seed=1)
    assert len(folds) == 4
    for fold in folds:
        assert len(set(fold.classes)) == 5 and len(fold.support) == 50 and len(fold.query) == 100
        assert [train_labels[i] for i in fold.support] == [c for c in fold.classes for _ in range(10)]
        assert [test_labels[i] for i in fold.query] == [c for c in fold.classes for _ in range(20)]
        assert len(set(fold.support)) == 50
    assert folds[0].support != folds[1].support
    again = make_folds(train_labels, test_labels, way=5, shot=10, query=20, folds=4, seed=1)
    assert [f.support for f in again] == [f.support for f in folds]
    with pytest.raises(ValueError, match="only 0 classes"):
        make_folds(train_labels, test_labels, way=5, shot=12, folds=1)


def test_fold_subset_renumbers_labels() -> None:
    data = [(torch.tensor([float(i)]), i % 4) for i in range(8)]
    sub = FoldSubset(data, [1, 3, 6], classes=[3, 1, 2])
    assert [sub[i][1] for i in range(3)] == [1, 0, 2] and len(sub) == 3


def test_fewshot_svm_mean_and_std() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(6).repeat_interleave(30)
    feats = torch.randn(180, 8, generator=g) + 4 * torch.nn.functional.one_hot(labels, 8).float()
    fs = FeatureSet(features=feats, labels=labels)
    folds = make_folds(labels, labels, way=3, shot=5, query=10, folds=3)
    result = fewshot_svm(fs, fs, folds)
    assert len(result.fold_top1) == 3 and result.mean == pytest.approx(np.mean(result.fold_top1))
    assert result.mean > 90 and "3-way 5-shot" in result.protocol


def test_fewshot_finetune_calls_each_fold() -> None:
    labels = [c for c in range(4) for _ in range(5)]
    data = [(torch.zeros(1), label) for label in labels]
    folds = make_folds(labels, labels, way=2, shot=2, query=3, folds=3)
    seen = []

    def run(i: int, support: FoldSubset, query: FoldSubset) -> float:
        seen.append((i, len(support), sorted({support[j][1] for j in range(len(support))})))
        return 50.0 + 10 * i

    result = fewshot_finetune(folds, data, data, run)
    assert seen == [(0, 4, [0, 1]), (1, 4, [0, 1]), (2, 4, [0, 1])]
    assert result.mean == pytest.approx(60.0) and result.std == pytest.approx(np.std([50, 60, 70]))
    assert "FINAL-epoch" in result.protocol
