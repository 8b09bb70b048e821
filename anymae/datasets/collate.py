"""Batching items the way every loader in anymae does: through the dataset's `collate`.

A dataset's `collate` (see `anymae.datasets.contract`) batches items `(x, label[, seed])` as
`(collate_x(xs), default_collate(labels)[, seeds])`; datasets whose inputs torch's default collate
cannot stack (graphs, channel stacks, repeated clips) override `collate_x`, wrappers forward it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

from anymae.datasets.contract import Collate, as_samples


def collate_fn_for(dataset: Dataset) -> Collate:
    """The DataLoader `collate_fn` for `dataset`: its contract's `collate`."""
    return as_samples(dataset).collate


def collate_items(dataset: Dataset, items: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
    """Batch items taken from `dataset` by hand, the way its loaders would."""
    return tuple(collate_fn_for(dataset)(list(items)))
