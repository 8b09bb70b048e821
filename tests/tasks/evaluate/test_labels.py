"""Every probe refuses a single-class training split (which scored 100%) through one shared check,
and warns when a test class never occurs in training."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from anymae.modalities.graph_data import Graphs
from anymae.tasks.evaluate.attentive import attentive_probe
from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.fewshot import make_folds
from anymae.tasks.evaluate.knn import knn_probe
from anymae.tasks.evaluate.labels import ProbeLabelWarning, check_probe_labels
from anymae.tasks.evaluate.linear import linear_probe
from anymae.tasks.evaluate.nodes import probe_nodes
from anymae.tasks.evaluate.prototypical import prototypical_probe
from anymae.tasks.evaluate.svm import svm_cross_validate, svm_probe

GEN = torch.Generator().manual_seed(0)
POOLED = torch.randn(12, 4, generator=GEN)  # 12×4
TOKENS = torch.randn(12, 3, 4, generator=GEN)  # 12×3×4


def _sets(train_labels: list[int], test_labels: list[int], tokens: bool = False) -> tuple[FeatureSet, FeatureSet]:
    feats = TOKENS if tokens else POOLED
    n = len(train_labels)
    return (FeatureSet(feats[:n], torch.tensor(train_labels)),
            FeatureSet(feats[n : n + len(test_labels)], torch.tensor(test_labels)))


def _node_probe(train: FeatureSet, test: FeatureSet) -> object:
    n, m = len(train), len(test)
    mask = torch.arange(n + m) < n
    graph = Graphs(x=torch.cat([train.features, test.features]), edge_index=torch.zeros(2, 0, dtype=torch.long),
                   y=torch.cat([train.labels, test.labels]), train_mask=mask, test_mask=~mask)
    return probe_nodes(graph.x, graph, seeds=range(1), epochs=2)


PROBES: dict[str, tuple[Callable[[FeatureSet, FeatureSet], object], bool]] = {
    "knn_probe": (lambda tr, te: knn_probe(tr, te, k=2), False),
    "linear_probe": (lambda tr, te: linear_probe(tr, te, epochs=1, warmup_epochs=0), False),
    "attentive_probe": (lambda tr, te: attentive_probe(tr, te, num_queries=2, epochs=1, warmup_epochs=0), True),
    "SVM probe": (lambda tr, te: svm_probe(tr, te), False),
    "prototypical_probe": (lambda tr, te: prototypical_probe(tr, te, per_class=2, epochs=1), True),
    "node probe": (_node_probe, False),
}


@pytest.mark.parametrize("where", sorted(PROBES))
def test_a_single_class_training_split_is_refused_by_every_probe(where: str) -> None:
    probe, tokens = PROBES[where]
    train, test = _sets([1] * 6, [1] * 6, tokens)  # would score 100%: every prediction is class 1
    with pytest.raises(ValueError, match=rf"^{where}: the training split holds a single class \(1, all 6 labelled "
                                         r"samples\); a probe needs at least two classes"):
        probe(train, test)


@pytest.mark.parametrize("where", sorted(PROBES))
def test_a_test_class_missing_from_training_is_warned_about(where: str) -> None:
    probe, tokens = PROBES[where]
    train, test = _sets([0, 1, 0, 1, 0, 1], [0, 1, 2, 2, 0, 2], tokens)
    with pytest.warns(ProbeLabelWarning, match=rf"^{where}: test class\(es\) 2 \(3 of 6 test samples\) never occur "
                                               r"in the training split \(2 classes\)"):
        probe(train, test)


def test_fewshot_folds_and_cross_validation_share_the_check() -> None:
    with pytest.raises(ValueError, match=r"^few-shot fold 0: the training split holds a single class \(3, all 2 "):
        make_folds([3, 3, 3, 4, 4, 4], [3, 3, 4, 4], way=1, shot=2, query=2, folds=2)
    with pytest.raises(ValueError, match=r"^SVM cross-validation: the training split holds a single class"):
        svm_cross_validate(FeatureSet(POOLED, torch.zeros(12, dtype=torch.long)), folds=2)


def test_unlabelled_samples_do_not_count_as_a_class() -> None:
    with pytest.raises(ValueError, match=r"^p: the training split holds no labelled samples;"):
        check_probe_labels(torch.tensor([-1, -1]), where="p")
    with pytest.raises(ValueError, match=r"single class \(0, all 2 labelled samples\)"):
        check_probe_labels(torch.tensor([0, -1, 0]), torch.tensor([0, -1]), where="p")
