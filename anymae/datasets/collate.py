"""Batching samples whose inputs torch's default collate cannot stack.

A dataset whose inputs are not same-shaped tensors (graphs, stacks with different channel sets)
defines `collate_x(xs: list) -> batch`; every loader in anymae then batches its items
`(x, label[, seed])` as `(collate_x(xs), default_collate(labels)[, seeds])`. Wrappers
(`SeededSamples`, `Subset`) are looked through via their `.dataset` attribute.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from torch.utils.data import Dataset, default_collate

Collate = Callable[[list[Any]], Any]


def collate_samples(items: Sequence[Sequence[Any]], collate_x: Collate) -> tuple[Any, ...]:
    """[(x, label, ...)] -> (collate_x([x...]), *default_collate of the remaining fields)."""
    batch_x = collate_x([item[0] for item in items])
    rest = default_collate([tuple(item[1:]) for item in items])
    return (batch_x, *rest)


def collate_fn_for(dataset: Dataset) -> Collate | None:
    """The DataLoader `collate_fn` for `dataset`: None (torch's default) unless it, or a dataset
    it wraps, defines `collate_x`."""
    inner: Any = dataset
    while inner is not None:
        fn = getattr(inner, "collate_x", None)
        if fn is not None:
            return functools.partial(collate_samples, collate_x=fn)
        inner = getattr(inner, "dataset", None)
    return None


def collate_items(dataset: Dataset, items: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
    """Batch items taken from `dataset` by hand, the way its loaders would."""
    fn = collate_fn_for(dataset)
    return tuple(fn(list(items)) if fn is not None else default_collate(list(items)))
