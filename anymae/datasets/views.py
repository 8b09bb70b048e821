"""Several views per sample: one item -> V inputs, batched as a `Views` the model understands.

    data:
      source: image_folder
      root: /data/imagenet/train
      views: 2              # V inputs per sample (default 1: no views)
      view_mode: augment    # "augment": V independent draws of the source's transform
                            # "same": the same input V times

`ViewSamples(dataset, views, mode)` wraps any dataset of the contract (any modality): its item i is
`((x_1, ..., x_V), label)` and its `collate_x` batches view v of every item with the wrapped
dataset's own `collate_x`, giving `core.skeleton.steps.Views((batch_1, ..., batch_V))`.

Determinism: `SeededSamples` (the outermost wrapper) seeds the RNGs from the item's sample seed
before calling `__getitem__`, so the V draws of "augment" mode (the wrapped item read V times in a
row, each read continuing the seeded streams) depend only on that seed: the same views whatever
the batch, worker, rank or resume. Views apply to the pretraining split only (`build_dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.core.skeleton.steps import Views
from anymae.datasets.contract import DatasetView, dataset_name

ViewMode = Literal["same", "augment"]


@dataclass
class ViewOptions:
    """The `data:` keys that turn views on (`views`, `view_mode`), next to the source's own keys."""

    views: int = 1
    view_mode: ViewMode = "augment"

    def __post_init__(self) -> None:
        if isinstance(self.views, bool) or not isinstance(self.views, int) or self.views < 1:
            raise ValueError(f"views={self.views!r}: expected the number of views per sample, an int >= 1")


VIEW_KEYS = ("views", "view_mode")


class ViewSamples(DatasetView):
    """Each item of `dataset` as V views (module doc).

    Args:
        dataset: a map-style dataset of `(x, label)` items.
        views: V >= 2.
        mode: "augment" reads the item V times (independent draws of its transform), "same"
            reads it once and repeats the input.

    Raises:
        ValueError: V < 2, an unknown mode, or a dataset whose items already carry several inputs
            (`inputs_per_item` > 1, VideoMAE V2's repeated sampling).
    """

    def __init__(self, dataset: Dataset, views: int = 2, mode: ViewMode = "augment") -> None:
        super().__init__(dataset)
        if isinstance(views, bool) or not isinstance(views, int) or views < 2:
            raise ValueError(f"ViewSamples views={views!r}: expected an int >= 2 (1 view needs no wrapper)")
        if mode not in ("same", "augment"):
            raise ValueError(f"ViewSamples view_mode={mode!r}: expected 'same' or 'augment'")
        if self.dataset.inputs_per_item > 1:
            raise ValueError(f"{dataset_name(dataset)} already gives {self.dataset.inputs_per_item} inputs per item "
                             "(repeated sampling); it cannot also give views")
        self.views, self.mode = int(views), mode

    def __getitem__(self, index: int) -> tuple[tuple[Any, ...], Any]:
        if self.mode == "same":
            x, label = self.dataset[index]
            return tuple(x for _ in range(self.views)), label
        items = [self.dataset[index] for _ in range(self.views)]  # V draws, in order, from the seeded streams
        return tuple(x for x, _ in items), items[0][1]

    def collate_x(self, xs: list[Any]) -> Views:
        """B items' V-tuples -> `Views` of V batches (each by the wrapped dataset's `collate_x`)."""
        return Views(tuple(self.dataset.collate_x([x[v] for x in xs]) for v in range(self.views)))


def with_views(dataset: Dataset, options: ViewOptions) -> Dataset:
    """`dataset` itself for one view, else `ViewSamples(dataset, options.views, options.view_mode)`."""
    if options.views == 1:
        return dataset
    return ViewSamples(dataset, options.views, options.view_mode)
