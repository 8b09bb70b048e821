"""The one check of a probe's labels, made by every probe before it trains (k-NN, linear,
attentive, SVM, prototypical, the node probe, few-shot folds).

A training split that holds fewer than two classes is refused: any classifier fit on it predicts
that class, and its accuracy measures the split, not the features (a single-class split scores
100% on a test set of that class). A class of the test set that training never shows is warned
about: its samples cannot be classified correctly, so the accuracy is capped below 100%.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


class ProbeLabelWarning(UserWarning):
    """Test classes that the training split does not hold."""


def check_probe_labels(train: Tensor, test: Tensor | None = None, *, where: str) -> None:
    """Refuse a training split with < 2 classes; warn when test classes are absent from training.

    Args:
        train: N training labels (values < 0 are unlabelled and ignored).
        test: M test labels, or None.
        where: the probe's name, first in the message.

    Raises:
        ValueError: the training labels hold 0 or 1 classes (one line naming them and the count).
    """
    labels = train[train >= 0]
    classes = torch.unique(labels)
    if len(classes) < 2:
        held = "no labelled samples" if not len(classes) else (
            f"a single class ({int(classes[0])}, all {len(labels)} labelled samples)"
        )
        raise ValueError(f"{where}: the training split holds {held}; a probe needs at least two classes "
                         "(check the labels and how the split was drawn)")
    if test is None:
        return
    seen = set(classes.tolist())
    unseen = sorted(set(test[test >= 0].tolist()) - seen)
    if unseen:
        count = int(sum(int((test == c).sum()) for c in unseen))
        shown = ", ".join(map(str, unseen[:10])) + (" ..." if len(unseen) > 10 else "")
        warnings.warn(
            f"{where}: test class(es) {shown} ({count} of {len(test)} test samples) never occur in the training "
            f"split ({len(seen)} classes); those samples cannot be classified correctly",
            ProbeLabelWarning, stacklevel=3,
        )
