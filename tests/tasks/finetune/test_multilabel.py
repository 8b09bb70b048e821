"""Multi-label fine-tuning: BCE objective, macro mAP over classes with positives."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score
from torch import nn

from anymae.tasks.finetune.run import ClassificationObjective, FinetuneConfig, evaluate_multilabel, mean_average_precision


def test_map_averages_sklearn_ap_over_classes_with_positives() -> None:
    torch.manual_seed(0)
    scores = torch.randn(20, 4)
    targets = (torch.rand(20, 4) > 0.6).float()
    targets[:, 2] = 0  # no positive: left out
    expected = sum(average_precision_score(targets[:, k], scores[:, k]) for k in (0, 1, 3)) / 3
    assert mean_average_precision(scores, targets) == pytest.approx(100 * expected)
    perfect = targets * 10 - 5
    assert mean_average_precision(perfect, targets) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="no class has a positive"):
        mean_average_precision(scores, torch.zeros(20, 4))


def test_multilabel_objective_is_bce_on_soft_targets() -> None:
    cfg = FinetuneConfig(num_classes=3, task="multi_label", mixup=0, cutmix=0)
    objective = ClassificationObjective(cfg)
    model = nn.Linear(5, 3)
    x, y = torch.randn(4, 5), torch.tensor([[1, 0, 1], [0.3, 0.7, 0], [0, 0, 0], [1, 1, 1.0]])
    loss, _ = objective(model, (x, y, torch.arange(4)))
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(model(x), y))
    with pytest.raises(ValueError, match="expected B×3 label vectors"):
        objective(model, (x, torch.tensor([0, 1, 2, 0]), torch.arange(4)))


def test_soft_single_label_targets_use_soft_cross_entropy() -> None:
    objective = ClassificationObjective(FinetuneConfig(num_classes=2, mixup=0, cutmix=0))
    model = nn.Linear(3, 2)
    x, y = torch.randn(2, 3), torch.tensor([[0.4, 0.6], [1.0, 0.0]])
    loss, _ = objective(model, (x, y, torch.arange(2)))
    assert torch.allclose(loss, -(y * model(x).log_softmax(-1)).sum(-1).mean())


def test_multilabel_refuses_batch_mixup() -> None:
    with pytest.raises(ValueError, match="task"):
        FinetuneConfig(num_classes=3, task="multi_label")


def test_evaluate_multilabel_scores_a_dataset() -> None:
    x = torch.eye(3).repeat(2, 1)
    data = [(x[i], x[i]) for i in range(6)]
    model = nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
        model.bias.zero_()
    assert evaluate_multilabel(model, data, batch_size=4) == pytest.approx(100.0)
