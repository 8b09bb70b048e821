"""Decoding a raw shard sample with the modality's own source, as a one-sample folder.

`SampleDecoder` resolves, once, the data section the shards were made from (`manifest.source`)
into the config of the modality's file source (`Adapter.reader`): the original fields that
source has, resolved with the original source's defaults, then `data.options` overrides, minus
the fields that list files. Per sample it writes the sample's files to a scratch folder
(`Adapter.materialize`), builds that source over them (a dataset of one) and reads item 0 under
the caller's RNG state (`SeededSamples` seeds it), so the readers, checks, transforms and random
draws are those of the folder dataset. The label comes from the sample's `json`: an int, or a
list of class indices returned as a multi-hot float vector over the manifest's classes (what the
folder dataset gives multi-label data).

Scratch folders live under one directory made per `ShardDataset` (in `/dev/shm` when it is
writable, a memory file system), one sub-folder per sample being decoded, removed right after.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from anymae.core.config import ConfigError, from_dict
from anymae.core.registry import Entry
from anymae.datasets.shards.adapters import Adapter, adapter_for
from anymae.datasets.shards.manifest import Manifest, ShardError
from anymae.datasets.shards.reader import RawSample
from anymae.datasets.skips import DataError
from anymae.datasets.sources import source_entry

_MEMORY_FS = "/dev/shm"


def _remove(path: str, creator: int) -> None:
    if os.getpid() == creator:  # not from a forked loader worker that inherited the finalizer
        shutil.rmtree(path, ignore_errors=True)


def scratch_dir(owner: object) -> Path:
    """A fresh scratch directory, removed when `owner` is collected or the process that made it exits
    (loader workers, forked or spawned, use it and leave it)."""
    parent = _MEMORY_FS if os.path.isdir(_MEMORY_FS) and os.access(_MEMORY_FS, os.W_OK) else None
    path = tempfile.mkdtemp(prefix="anymae-shards-", dir=parent)
    weakref.finalize(owner, _remove, path, os.getpid())
    return Path(path)


class SampleDecoder:
    """Raw sample -> (x, label) through the modality's file source (module doc).

    Args:
        manifest: the shard set's manifest (its `source` section, classes).
        options: overrides of the source's fields (`data.options`), e.g. `{"img_size": 224}`.
        split, augment, model_config: as `build_dataset` passes them to a source.
        scratch: the directory for the one-sample folders.

    Raises:
        ConfigError: the shards' source has no reader, an option is unknown or lists files, or an
            option needs the whole folder (`Adapter.refuse`) and would act.
    """

    def __init__(
        self, manifest: Manifest, options: dict[str, Any], split: str, augment: Any, model_config: dict[str, Any],
        scratch: Path,
    ) -> None:
        section = dict(manifest.source)
        name = section.pop("source")
        try:
            adapter_for(name)
        except ValueError as err:
            raise ConfigError(f"shard manifest: {err}") from None
        self.source = name  # adapter and reader looked up by name: they hold lambdas, and workers unpickle this
        reader_fields = {f.name for f in dataclasses.fields(self.reader.config)}
        listed = [k for k in options if k in self.adapter.listing or k == "on_error"]
        if listed:
            raise ConfigError(f"data.options.{listed[0]}: the shards give the files of each sample (and data.on_error "
                              "decides on unreadable ones); options change how samples decode")
        resolved = dataclasses.asdict(from_dict(source_entry(name).config, section, where="shard manifest source"))
        carried = {k: v for k, v in resolved.items() if k in reader_fields and k not in self.adapter.listing}
        values = {**carried, **options, **self.adapter.placeholder, "on_error": "raise"}
        self.cfg = from_dict(self.reader.config, values, where="data.options")
        if augment == "finetune" and manifest.classes:
            for key, why in self.adapter.refuse.items():
                if getattr(self.cfg, key, None):
                    raise ConfigError(f"data.options.{key}={getattr(self.cfg, key)!r}: {why}")
        self.split, self.augment, self.model_config = split, augment, model_config
        self.num_classes = len(manifest.classes)
        self.scratch = scratch

    @property
    def adapter(self) -> Adapter:
        return adapter_for(self.source)

    @property
    def reader(self) -> Entry[Any]:
        """The registered file source that reads one materialized sample."""
        return source_entry(self.adapter.reader)

    def one_sample(self, raw: RawSample, folder: Path) -> Dataset:
        """The reader's dataset of the one sample `raw`, its files written under `folder`."""
        fields = self.adapter.materialize(raw.data, folder, self.cfg)
        return self.reader.obj(dataclasses.replace(self.cfg, **fields), self.split, self.augment, self.model_config)

    def label(self, value: Any, where: str) -> Any:
        """A stored label -> the item's label (multi-label: a multi-hot float C-vector)."""
        if isinstance(value, list):
            y = torch.zeros(self.num_classes)
            for k in value:
                if not (isinstance(k, int) and 0 <= k < self.num_classes):
                    raise ShardError(f"{where}: label {value} names class {k!r}, not in the manifest's "
                                     f"{self.num_classes} classes")
                y[k] = 1.0
            return y
        if not isinstance(value, int) or isinstance(value, bool):
            raise ShardError(f"{where}: label {value!r} is neither an int nor a list of class indices")
        return value

    def template(self, raw: RawSample) -> Dataset:
        """A one-sample dataset of `raw` (files removed again), for the members every item shares:
        `collate_x`, `num_views`, `inputs_per_item`."""
        return self._with_folder(raw, lambda folder: self.one_sample(raw, folder))

    def decode(self, raw: RawSample) -> tuple[Any, Any]:
        """`raw` -> (x, label), x read by the reader exactly as its folder dataset reads a file.

        Raises:
            ShardError: the sample does not decode; the message names the shard, the key and the
                original file, with the reader's reason.
        """
        label = self.label(raw.meta.get("label"), raw.where)
        x, _ = self._with_folder(raw, lambda folder: self.one_sample(raw, folder)[0])
        return x, label

    def _with_folder(self, raw: RawSample, work: Any) -> Any:
        folder = self.scratch / f"{os.getpid()}-{raw.index}"
        try:
            folder.mkdir(parents=True)
            return work(folder)
        except (DataError, ValueError, OSError) as err:
            if isinstance(err, (ShardError, ConfigError)):  # already names the sample / a setting, not a file
                raise
            text = " ".join(str(err).replace(str(folder), raw.where).split())
            raise ShardError(f"{raw.where} ({raw.meta.get('file', '?')}): {text}") from err
        finally:
            shutil.rmtree(folder, ignore_errors=True)
