"""Scoring a classifier on a labelled dataset: top-1 accuracy or macro mAP, with multi-view averaging.

One loop (`predict_scores`) gathers every item's class scores; `evaluate_classifier` and
`evaluate_multilabel` turn them into the reported number.

Skipped items (a dataset with `on_error="skip"`): the dataset hands back a substitute for an item
it cannot read, so that batches stay whole; scoring then drops every item the dataset reports as
skipped (the contract's `skipped_indices`), so that each readable item is scored once and an
unreadable one not at all. `scored_items` says how many were scored.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from anymae.datasets.contract import SampleDataset, as_samples
from anymae.tasks.train.steps import autocast_dtype, to_device


@torch.no_grad()
def predict_scores(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    precision: Literal["auto", "fp32", "bf16"] = "fp32",
    view_average: Literal["prob", "logit"] = "prob",
    multi_label: bool = False,
    caller: str = "predict_scores",
) -> tuple[Tensor, Tensor]:
    """Scores of ``model`` (in eval mode) for every item of a dataset of ``(x, label, ...)`` items.

    Multi-view testing: when the dataset's ``num_views`` is V > 1 (see the dataset contract), each
    item's x carries a leading views axis (V×...); the batch B×V×... is scored as B·V inputs and
    each item's score is the mean of its V probabilities (``view_average="prob"``: softmax, or
    sigmoid when ``multi_label``; VideoMAE's clips × crops test) or of its V logits (``"logit"``).
    Single-view scores are the logits.

    Args:
        model: maps a batch to B×C logits; evaluated on the device of its parameters.
        dataset: map-style dataset; items ``(x, label)`` or ``(x, label, seed)``.
        batch_size: samples per forward.
        num_workers: DataLoader worker processes.
        precision: autocast as in the engine ("auto": bf16 on a capable CUDA device).
        view_average: how the views of one item are combined.
        multi_label: labels are C-vectors (view probabilities are sigmoids).
        caller: the name error messages start with.

    Returns:
        (N×C float32 scores on the CPU, the N labels as collated: N class indices or N×C vectors),
        N = the items scored: skipped items (`skipped_indices`, after the pass) are left out.
    """
    data = as_samples(dataset)
    if len(data) == 0:
        raise ValueError(f"{caller}: the dataset is empty")
    if view_average not in ("prob", "logit"):
        raise ValueError(f"{caller}: view_average={view_average!r}: expected 'prob' or 'logit'")
    device = next(model.parameters()).device
    amp = autocast_dtype(precision, device)
    views = data.num_views
    was_training = model.training
    model.eval()
    scores, labels = [], []
    try:
        for batch in DataLoader(data, batch_size=batch_size, num_workers=num_workers, collate_fn=data.collate):
            x = to_device(batch[0], device)
            if views > 1:
                x = x.flatten(0, 1)  # B×V×... -> (B·V)×...
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = model(x).float()  # B×C, or (B·V)×C
            if views > 1:
                per_view = logits.view(-1, views, logits.shape[-1])  # B×V×C
                if view_average == "prob":
                    per_view = per_view.sigmoid() if multi_label else per_view.softmax(-1)
                logits = per_view.mean(1)  # B×C
            scores.append(logits.cpu())
            labels.append(batch[1])
    finally:
        model.train(was_training)
    keep = _kept(data, len(data))
    if not bool(keep.any()):
        raise ValueError(f"{caller}: every item of the dataset was skipped as unreadable; nothing to score")
    return torch.cat(scores)[keep], torch.cat(labels)[keep]


def _kept(data: SampleDataset, n: int) -> Tensor:
    """A boolean mask over the n items: False for those the dataset skipped (their rows hold substitutes)."""
    keep = torch.ones(n, dtype=torch.bool)
    keep[torch.tensor(data.skipped_indices(), dtype=torch.long)] = False
    return keep


def scored_items(dataset: Dataset) -> tuple[int, int]:
    """(items scored, items skipped) of a dataset that `predict_scores` has passed over."""
    data = as_samples(dataset)
    skipped = len(data.skipped_indices())
    return len(data) - skipped, skipped


def evaluate_classifier(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    precision: Literal["auto", "fp32", "bf16"] = "fp32",
    view_average: Literal["prob", "logit"] = "prob",
) -> float:
    """Top-1 accuracy (%) of ``model`` on items ``(x, class index, ...)``: 100 × correct / items scored
    (every item but the skipped ones).

    Scores (and multi-view averaging) as :func:`predict_scores`.
    """
    scores, labels = predict_scores(
        model, dataset, batch_size=batch_size, num_workers=num_workers, precision=precision,
        view_average=view_average, caller="evaluate_classifier",
    )  # fmt: skip
    return 100.0 * int((scores.argmax(dim=1) == labels).sum()) / int(labels.shape[0])


def mean_average_precision(scores: Tensor, targets: Tensor) -> float:
    """Macro mAP (%): sklearn ``average_precision_score`` per class, averaged over the classes
    that have at least one positive (targets >= 0.5) in ``targets``.

    Args:
        scores: N×C scores (logits or probabilities: AP depends only on the ranking).
        targets: N×C multi-hot targets.
    """
    from sklearn.metrics import average_precision_score

    y = (targets >= 0.5).cpu().numpy()
    s = scores.float().cpu().numpy()
    present = np.flatnonzero(y.any(axis=0))
    if present.size == 0:
        raise ValueError("mean_average_precision: no class has a positive example in the targets")
    return 100.0 * float(np.mean([average_precision_score(y[:, k], s[:, k]) for k in present]))


def evaluate_multilabel(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    precision: Literal["auto", "fp32", "bf16"] = "fp32",
    view_average: Literal["prob", "logit"] = "prob",
) -> float:
    """Macro mAP (%) of ``model`` on items ``(x, C-vector label, ...)`` (see
    :func:`mean_average_precision`); scores and multi-view averaging as :func:`predict_scores`."""
    scores, target = predict_scores(
        model, dataset, batch_size=batch_size, num_workers=num_workers, precision=precision,
        view_average=view_average, multi_label=True, caller="evaluate_multilabel",
    )  # fmt: skip
    if target.ndim != 2:
        raise ValueError(f"evaluate_multilabel: expected N×C label vectors, got labels of shape {tuple(target.shape)}")
    return mean_average_precision(scores, target)
