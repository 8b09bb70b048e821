"""Tar shards as a dataset: random access for evaluation, a stream for training, one decoder.

`ShardDataset` follows the dataset contract. Its length and labels come from the manifest (no
sample is decoded to know them); `collate_x`, `num_views` and `inputs_per_item` are those of the
modality's reader (read off a one-sample dataset of the first sample).

Two access patterns, one code path (`SampleDecoder`):

- random access, `ds[i]`: sample i is read at its manifest offset in a local shard (probes,
  few-shot subsets, validation sets: any map-style loader);
- streaming (training): `stream` is the dataset itself; the engine (`tasks/train/loader/stream.py`)
  reads raw samples shard by shard (`read`), shuffles them in a bounded buffer, and decodes a
  batch by serving its raw samples (`serving`) while it asks the wrapped dataset for their
  indices, so `SeededSamples` seeds every sample as it would a folder's.

Errors: `on_error="raise"` raises the `ShardError` naming the shard, the key and the original
file; `on_error="skip"` counts the sample (`Skips`, shared by loader workers) and returns another
one: by random access the next readable index (as every folder dataset does), in a served batch
the next readable sample of the same batch. Samples lost to a truncated shard are counted the
same way (`mark_lost`).
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset, collate_samples
from anymae.datasets.shards.decode import SampleDecoder, scratch_dir
from anymae.datasets.shards.manifest import Manifest, Shard, ShardError, resolve_shards, sample_key
from anymae.datasets.shards.reader import RawSample, iter_shard, read_sample
from anymae.datasets.skips import DataError, Skips


BUFFER_BYTES = 256 * 2**20  # the default shuffle buffer's size per loader worker


def default_buffer(manifest: Manifest) -> int:
    """Samples of mean size that fill `BUFFER_BYTES`, between 16 and 1000 (webdataset's usual 1000
    for images; fewer for video, whose samples are megabytes)."""
    mean = sum(s.bytes for s in manifest.shards) / max(1, manifest.num_samples)
    return int(min(1000, max(16, BUFFER_BYTES // max(mean, 1))))


class ShardDataset(Dataset, SampleDataset):
    """The samples of a shard set (module doc).

    Args:
        root: a folder of shards, a brace pattern of `.tar` files, or URLs (`manifest.resolve_shards`).
        split, augment, model_config: as a source receives them (they choose the reader's transforms).
        manifest: the manifest's path when it is not beside the shards.
        options: overrides of the fields of the section the shards were made from (`img_size`, ...).
        shuffle_buffer: raw samples a training stream shuffles among, per loader worker; None = as
            many as fill `BUFFER_BYTES` at the set's mean sample size, between 16 and 1000.
        on_error: "raise" or "skip" (module doc).
    """

    def __init__(
        self,
        root: str,
        *,
        split: str = "pretrain",
        augment: Any = False,
        model_config: dict[str, Any] | None = None,
        manifest: str | None = None,
        options: dict[str, Any] | None = None,
        shuffle_buffer: int | None = None,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> None:
        if shuffle_buffer is not None and shuffle_buffer < 1:
            raise ValueError(f"data.shuffle_buffer={shuffle_buffer}: expected >= 1 (1 = no shuffling) or null")
        self.root = root
        self.manifest, self.shards = resolve_shards(root, manifest)
        self.shuffle_buffer = default_buffer(self.manifest) if shuffle_buffer is None else shuffle_buffer
        self.on_error = on_error
        self._starts = [s.start for s in self.shards]
        self._size = sum(s.info.count for s in self.shards)
        stored = [label for s in self.shards for label in s.info.labels]
        self._labels = None if any(isinstance(v, list) for v in stored) else [int(v) for v in stored]
        self.decoder = SampleDecoder(self.manifest, dict(options or {}), split, augment, model_config or {},
                                     scratch_dir(self))  # fmt: skip
        self._template = self.decoder.template(self._first_sample())
        self._skips = Skips(self._size, "sample", f"ShardDataset({root})", on_error)
        self._serving: dict[int, RawSample] | None = None

    # --- the contract
    def __len__(self) -> int:
        return self._size

    @property  # type: ignore[override]
    def labels(self) -> list[int] | None:
        """The samples' labels in index order, from the manifest; None for multi-label samples."""
        return self._labels

    @property
    def classes(self) -> list[str]:
        return list(self.manifest.classes)

    @property  # type: ignore[override]
    def num_views(self) -> int:
        return self._template.num_views  # type: ignore[attr-defined]

    @property  # type: ignore[override]
    def inputs_per_item(self) -> int:
        return self._template.inputs_per_item  # type: ignore[attr-defined]

    def collate_x(self, xs: list[Any]) -> Any:
        return self._template.collate_x(xs)  # type: ignore[attr-defined]

    def collate(self, items: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
        return collate_samples(items, self.collate_x)

    @property  # type: ignore[override]
    def stream(self) -> ShardDataset:
        """What a training stream reads (this dataset: `read`, `serving`, `mark_lost`)."""
        return self

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if self._serving is not None and index in self._serving:
            return self._served_item(index)
        return self._skips.get(index, self._load)

    def skipped(self) -> int:
        return self._skips.count()

    def skip_report(self) -> str:
        return self._skips.report(self.name)

    def skipped_indices(self) -> list[int]:
        return [j for j in range(self._size) if self._skips.is_bad(j)]

    # --- reading
    def locate(self, index: int) -> tuple[Shard, int]:
        """(shard, position in it) of dataset index `index`."""
        if not 0 <= index < self._size:
            raise IndexError(f"index {index} out of range for {self._size} shard samples")
        shard = self.shards[bisect.bisect_right(self._starts, index) - 1]
        return shard, index - shard.start

    def name(self, index: int) -> str:
        """`train-000003.tar:000000042`: where sample `index` is."""
        shard, pos = self.locate(index)
        return f"{shard.info.name}:{sample_key(shard.info.first + pos)}"

    def read(self, shard: int, lo: int = 0, hi: int | None = None) -> Iterator[RawSample]:
        """Raw samples at positions `[lo, hi)` of the `shard`-th selected shard, read sequentially."""
        return iter_shard(self.shards[shard], lo, hi)

    def _first_sample(self) -> RawSample:
        shard = next(s for s in self.shards if s.info.count)
        return read_sample(shard, 0) if shard.local else next(iter_shard(shard, 0, 1))

    def _raw(self, index: int) -> RawSample:
        if self._serving is not None and index in self._serving:
            return self._serving[index]
        return read_sample(*self.locate(index))

    def _load(self, index: int) -> tuple[Any, Any]:
        return self.decoder.decode(self._raw(index))

    @contextlib.contextmanager
    def serving(self, raws: Sequence[RawSample]) -> Iterator[None]:
        """Within the block, `self[r.index]` decodes the raw samples `raws` (a batch being built)."""
        self._serving = {r.index: r for r in raws}
        try:
            yield
        finally:
            self._serving = None

    def _served_item(self, index: int) -> tuple[Any, Any]:
        assert self._serving is not None
        if self.on_error == "raise":
            return self._load(index)
        order = list(self._serving)
        first = order.index(index)
        for j in order[first:] + order[:first]:  # this sample, else the batch's next readable one
            if self._skips.is_bad(j):
                continue
            try:
                return self._load(j)
            except DataError as err:
                self._skips.mark(j, err)
        raise ShardError(f"ShardDataset({self.root}): all {len(order)} samples of a batch are unreadable "
                         f"(on_error='skip'), e.g. {self.name(index)}")

    def mark_lost(self, indices: Sequence[int], err: Exception) -> None:
        """Count samples a corrupt shard did not deliver as skipped (on_error="skip")."""
        for j in indices:
            self._skips.mark(j, err)
