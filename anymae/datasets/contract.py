"""The dataset contract: what the engine, fine-tuning, probes and pictures may ask of a dataset.

Every dataset class in anymae subclasses `SampleDataset` (a `typing.Protocol` whose optional
members carry their defaults), so training and evaluation code reads the members directly instead
of probing with `getattr` / `hasattr`:

| member | required | meaning | default |
|---|---|---|---|
| `__len__()`, `__getitem__(i)` | yes | map-style items `(x, label)` (`SeededSamples` adds a seed) | |
| `collate_x(xs)` | no | batch the inputs of B items (graphs, channel stacks, repeated clips) | torch's `default_collate` (stack) |
| `collate(items)` | no | batch whole items: a DataLoader's `collate_fn` | `(collate_x(xs), *default_collate(rest))` |
| `num_views` | no | V: evaluation items carry V views, x is V×... (multi-view testing) | 1 (no views axis) |
| `inputs_per_item` | no | k: training items carry k inputs that `collate_x` concatenates item-major into B·k rows (VideoMAE V2's repeated sampling) | 1 |
| `labels` | no | the items' labels in index order, known without loading inputs | None (only loading an item tells) |
| `set_epoch(e)` | no | select epoch e's randomness (called before each epoch) | nothing to do |
| `skipped()` | no | distinct unreadable items skipped so far (`on_error="skip"`) | 0 |
| `skip_report()` | no | one line naming the skipped items, for the end of a run | "" |
| `skipped_indices()` | no | the indices of the items skipped so far; evaluation drops them from its scores instead of scoring their substitutes | [] |
| `decode_cache` | no | the reader's cache of decoded files (`datasets.cache.DecodeCache`), which `run.cache` fills | None (nothing to cache) |
| `stream` | no | what a training stream reads instead of indices (tar shards: `datasets.shards.ShardDataset`; the engine draws its batches with `tasks/train/loader/stream.py`) | None (read by index) |

Wrappers (`DatasetView` and its subclasses: `SeededSamples`, subsets, channel views) forward the
members to the dataset they wrap, explicitly; nothing walks `.dataset` chains. A dataset from
elsewhere (a torch `TensorDataset`, a user's class) enters through `as_samples`, which wraps it in
`PlainSamples` (every default); one that declares some contract members without subclassing
`SampleDataset` is refused, because its members would otherwise be silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from torch import Tensor
from torch.utils.data import Dataset, default_collate

if TYPE_CHECKING:
    from anymae.datasets.cache import DecodeCache

Collate = Callable[[list[Any]], Any]
Labels = Sequence[int] | Tensor | None

# The optional members whose presence on a class that does not subclass SampleDataset means the
# author meant to follow the contract (`labels` is left out: many foreign datasets carry one).
_BEHAVIOUR_MEMBERS = ("collate_x", "collate", "num_views", "inputs_per_item", "set_epoch", "skipped", "skip_report",
                      "skipped_indices", "decode_cache")


@runtime_checkable
class SampleDataset(Protocol):
    """The dataset contract (see the module doc for each member and its default).

    Subclass it next to torch's `Dataset` (``class MyData(Dataset, SampleDataset)``) and override
    only the members that differ from the defaults.
    """

    num_views: int = 1
    inputs_per_item: int = 1
    labels: Labels = None
    decode_cache: DecodeCache | None = None
    stream: Any = None

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...

    def collate_x(self, xs: list[Any]) -> Any:
        """B inputs -> one batch (default: stacked by torch's `default_collate`)."""
        return default_collate(xs)

    def collate(self, items: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
        """[(x, label, ...)] -> (collate_x([x...]), *default_collate of the remaining fields)."""
        return collate_samples(items, self.collate_x)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose randomness the items use (default: none to select)."""
        return None

    def skipped(self) -> int:
        """Distinct unreadable items skipped so far, across DataLoader workers (default 0)."""
        return 0

    def skip_report(self) -> str:
        """One line for an end-of-run report on skipped items (default: empty)."""
        return ""

    def skipped_indices(self) -> list[int]:
        """Indices of the items skipped so far, ascending (default: none)."""
        return []


def collate_samples(items: Sequence[Sequence[Any]], collate_x: Collate) -> tuple[Any, ...]:
    """[(x, label, ...)] -> (collate_x([x...]), *default_collate of the remaining fields)."""
    batch_x = collate_x([item[0] for item in items])
    rest = default_collate([tuple(item[1:]) for item in items])
    return (batch_x, *rest)


class PlainSamples(Dataset, SampleDataset):
    """A dataset that does not subclass `SampleDataset`, given every default of the contract."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]


def as_samples(dataset: Dataset) -> SampleDataset:
    """`dataset` itself when it follows the contract, else `PlainSamples(dataset)`.

    Raises:
        TypeError: `dataset` defines some contract members (e.g. `collate_x`, `num_views`)
            without subclassing `SampleDataset`; they would be ignored.
    """
    if isinstance(dataset, SampleDataset):
        return dataset
    declared = [name for name in _BEHAVIOUR_MEMBERS if hasattr(dataset, name)]
    if declared:
        raise TypeError(
            f"{type(dataset).__name__} defines {', '.join(declared)} but does not follow the dataset contract; "
            "subclass anymae.datasets.contract.SampleDataset (next to torch's Dataset) so that they are used, "
            "or wrap it in a DatasetView that forwards them"
        )
    return PlainSamples(dataset)


def dataset_name(dataset: Dataset) -> str:
    """The class name of `dataset`, looking through the `PlainSamples` adapter (for messages)."""
    return type(dataset.dataset if isinstance(dataset, PlainSamples) else dataset).__name__


def item_labels(dataset: Dataset) -> list[Any]:
    """Every item's label in index order: `labels` when the dataset knows them, else read from its items."""
    data = as_samples(dataset)
    if data.labels is not None:
        return data.labels.tolist() if isinstance(data.labels, Tensor) else list(data.labels)
    return [data[i][1] for i in range(len(data))]


class DatasetView(Dataset, SampleDataset):
    """A wrapper that forwards the contract to the dataset it wraps (`self.dataset`).

    Every member is forwarded except `collate`, which stays the default built on the (forwarded)
    `collate_x`, so a view that changes the inputs overrides `collate_x` alone. Subclasses change
    the items (`__getitem__`, `__len__`) and override the members their change affects (`labels`
    for a subset, `collate` for an added field: `SeededSamples`, which is therefore the outermost
    wrapper).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset: SampleDataset = as_samples(dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    @property  # type: ignore[override]
    def num_views(self) -> int:
        return self.dataset.num_views

    @property  # type: ignore[override]
    def inputs_per_item(self) -> int:
        return self.dataset.inputs_per_item

    @property  # type: ignore[override]
    def labels(self) -> Labels:
        return self.dataset.labels

    @property  # type: ignore[override]
    def decode_cache(self) -> DecodeCache | None:
        return self.dataset.decode_cache

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return self.dataset.stream

    def collate_x(self, xs: list[Any]) -> Any:
        return self.dataset.collate_x(xs)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def skipped(self) -> int:
        return self.dataset.skipped()

    def skip_report(self) -> str:
        return self.dataset.skip_report()

    def skipped_indices(self) -> list[int]:
        return self.dataset.skipped_indices()


class SubsetView(DatasetView):
    """The items of `dataset` at `indices`, in that order (torch's `Subset`, forwarding the contract)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        super().__init__(dataset)
        self.indices = [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    @property  # type: ignore[override]
    def labels(self) -> Labels:
        inner = self.dataset.labels
        if inner is None:
            return None
        return inner[self.indices] if isinstance(inner, Tensor) else [inner[i] for i in self.indices]

    @property  # type: ignore[override]
    def stream(self) -> Any:
        """None: a subset is read by index (its items, not the whole stream)."""
        return None

    def skipped_indices(self) -> list[int]:
        """The positions in this view whose item is skipped in the wrapped dataset."""
        inner = set(self.dataset.skipped_indices())
        return [p for p, i in enumerate(self.indices) if i in inner]
