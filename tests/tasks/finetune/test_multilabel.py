"""Multi-label fine-tuning: BCE objective, macro mAP over classes with positives."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score
from torch import nn
from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset
from anymae.tasks.finetune.run import ClassificationObjective, FinetuneConfig
from anymae.tasks.finetune.scoring import evaluate_multilabel, mean_average_precision, predict_scores


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


class _TwoViews(Dataset, SampleDataset):
    """Two items of V=2 one-logit views: A (4, -2) is a negative, B (0.5, 0.5) a positive."""

    num_views = 2

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        views = [[4.0], [-2.0]] if i == 0 else [[0.5], [0.5]]
        return torch.tensor(views), torch.tensor([float(i)])  # V×1, C=1 label vector


def test_multilabel_views_average_sigmoids_or_logits() -> None:
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    # mean sigmoid: A (0.982 + 0.119) / 2 = 0.55 < B 0.62, the positive ranks first; mean logit: A 1.0 > B 0.5
    assert evaluate_multilabel(model, _TwoViews(), batch_size=1) == pytest.approx(100.0)
    assert evaluate_multilabel(model, _TwoViews(), view_average="logit") == pytest.approx(50.0)
    scores, labels = predict_scores(model, _TwoViews(), multi_label=True)
    torch.testing.assert_close(scores, torch.tensor([[4.0], [-2.0], [0.5], [0.5]]).sigmoid().view(2, 2, 1).mean(1))
    assert labels.tolist() == [[0.0], [1.0]]
