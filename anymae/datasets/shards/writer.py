"""Writing tar shards from any folder source: the original bytes of each sample, its label, a manifest.

`write_shards(section, out)` builds the folder dataset the `data:` section describes (its listing
only, evaluation transform), then for every sample, in the dataset's order:

1. checks that it decodes (`check=True`: the folder dataset reads it, in `num_workers` loader
   processes), so that shards hold only samples a reader accepts;
2. reads its files' bytes unchanged (`jpg`/`png`, `mp4`, `flac`, `ply`, `npy`/`tif`, frames of a
   frame folder, one file per channel);
3. writes them with webdataset's `TarWriter` as members `<key>.<suffix>` next to `<key>.json`
   (`{"index", "file", "label"}`) and, for a single-label sample, WebDataset's `<key>.cls`;
   a new shard starts when `max_count` samples or `max_size` bytes would be exceeded.

An unreadable sample raises a `DataError` naming its file (`on_error="raise"`), or is skipped,
counted and named in the manifest (`"skip"`). Shards are written as hidden partial files and
renamed when complete; the manifest comes last, so a folder with a manifest is a finished set.
Tars are reproducible: the same folder gives the same bytes (fixed member times and owners).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from webdataset import TarWriter

from anymae.core.io import writable_dir
from anymae.datasets.contract import SampleDataset
from anymae.datasets.scan import display_name
from anymae.datasets.shards.adapters import Adapter, adapter_for
from anymae.datasets.shards.manifest import MANIFEST, Manifest, ShardInfo, sample_key
from anymae.datasets.shards.reader import CLASS, META
from anymae.datasets.skips import DataError
from anymae.datasets.sources import build_dataset, source_entry

TAR_BLOCK = 512
SKIP_NAMES = 20  # skipped files named in the manifest


class _Checked(Dataset, SampleDataset):
    """`None` for a sample the folder dataset reads, else the error's message (in loader workers)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> str | None:
        try:
            self.dataset[index]
        except DataError as err:
            return " ".join(str(err).split())
        return None


def _first(value: Any) -> Any:
    return value


def _problems(dataset: Dataset, check: bool, num_workers: int) -> Iterator[str | None]:
    if not check:
        yield from (None for _ in range(len(dataset)))  # type: ignore[arg-type]
        return
    yield from DataLoader(_Checked(dataset), batch_size=None, num_workers=num_workers, collate_fn=_first)


@dataclass
class _Open:
    """The shard being written."""

    info: ShardInfo
    path: Path
    partial: Path
    file: BinaryIO
    tar: TarWriter

    def close(self) -> None:
        self.tar.close()
        self.file.close()
        os.replace(self.partial, self.path)
        self.info.bytes = self.path.stat().st_size


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {display_name(path)}: {type(err).__name__}: {err.strerror or err}") from err


def _sample(adapter: Adapter, dataset: Dataset, j: int, index: int) -> tuple[dict[str, Any], Any]:
    """The webdataset sample of folder item `j`, stored under manifest index `index`, and its label."""
    name = adapter.name(dataset, j)
    members = {suffix: _read(path) for suffix, path in adapter.files(dataset, j).items()}
    label = adapter.label(dataset, j)
    meta = {"index": index, "file": name, "label": label}
    sample: dict[str, Any] = {"__key__": sample_key(index), **members, META: json.dumps(meta).encode()}
    if isinstance(label, int) and label >= 0:
        sample[CLASS] = str(label).encode()
    return sample, label


def _existing(out: Path, prefix: str) -> list[Path]:
    return sorted([*out.glob(f"{prefix}-*.tar"), *out.glob(MANIFEST)])


def write_shards(
    section: dict[str, Any],
    out: str | os.PathLike[str],
    *,
    split: Literal["pretrain", "train", "test"] = "train",
    prefix: str | None = None,
    max_count: int = 10000,
    max_size: float = 1e9,
    check: bool = True,
    num_workers: int = 0,
    model_config: dict[str, Any] | None = None,
    progress: bool = True,
) -> Manifest:
    """Shard the data `section` describes into `out` (module doc); returns the manifest written.

    Args:
        section: a `data:` section of a folder source (`{"source": "image_folder", "root": ...}`);
            its `on_error` decides on unreadable samples: "raise" (`DataError` naming the file) or
            "skip" (counted, named in the manifest).
        out: the folder for the shards and `manifest.json` (created).
        split: the split whose listing is sharded (it matters for sources that split by folder).
        prefix: shard names `<prefix>-000000.tar` (default: the split).
        max_count, max_size: samples and bytes per shard at most (a single larger sample gets a
            shard of its own).
        check: decode each sample once with the folder's reader before writing it.
        num_workers: loader processes for that check.
        model_config: model config values the source reads for its defaults (e.g. num_frames).

    Raises:
        DataError: an unreadable sample with on_error="raise".
        ValueError: the source cannot be sharded, bad sizes, or `out` already holds shards.
    """
    if max_count < 1 or max_size <= 0:
        raise ValueError(f"shard.max_count={max_count}, shard.max_size={max_size}: expected >= 1 and > 0")
    name = section.get("source")
    on_error = section.get("on_error", "raise")
    adapter = adapter_for(str(name))
    dataset = build_dataset({**section, "on_error": "raise"}, split=split, augment=False, model_config=model_config)
    if type(dataset).__name__ != adapter.dataset:
        raise ValueError(f"data.source={name!r} built a {type(dataset).__name__}, expected {adapter.dataset}")
    folder = writable_dir(out, "shard output")
    prefix = prefix or split
    if _existing(folder, prefix):
        raise ValueError(f"{display_name(folder)} already holds shards ({_existing(folder, prefix)[0].name}); "
                         "choose an empty folder")
    shards: list[ShardInfo] = []
    skipped: list[str] = []
    current: _Open | None = None
    bar = tqdm(total=len(dataset), unit="sample", disable=not progress, dynamic_ncols=True, desc="shard")
    try:
        for j, problem in enumerate(_problems(dataset, check, num_workers)):
            bar.update(1)
            index = sum(s.count for s in shards)
            try:
                if problem is not None:
                    raise DataError(problem)
                sample, label = _sample(adapter, dataset, j, index)
            except DataError:
                if on_error == "raise":
                    raise
                skipped.append(adapter.name(dataset, j))
                bar.set_postfix(shards=len(shards), skipped=len(skipped), refresh=False)
                continue
            size = sum(len(v) + 2 * TAR_BLOCK for k, v in sample.items() if k != "__key__")
            if current is None or current.info.count >= max_count or (
                current.info.count and current.info.bytes + size > max_size
            ):
                if current is not None:
                    current.close()
                path = folder / f"{prefix}-{len(shards):06d}.tar"
                partial = folder / f".{path.name}.partial"
                file = open(partial, "wb")
                info = ShardInfo(path.name, 0, 0, index)
                shards.append(info)
                current = _Open(info, path, partial, file, TarWriter(file, encoder=False, user="anymae", group="anymae",
                                                                     mode=0o644, mtime=0))  # fmt: skip
            current.info.offsets.append(current.tar.tarstream.offset)
            current.tar.write(sample)
            current.info.count += 1
            current.info.labels.append(label)
            current.info.bytes = current.tar.tarstream.offset
            bar.set_postfix(shards=len(shards), MB=f"{sum(s.bytes for s in shards) / 2**20:.1f}",
                            skipped=len(skipped), refresh=False)  # fmt: skip
        if current is not None:
            current.close()
            current = None
    except BaseException:
        if current is not None:
            with contextlib.suppress(Exception):
                current.tar.close()  # (its end blocks go to a file removed next)
            current.file.close()
            current.partial.unlink(missing_ok=True)
        for info in shards:  # a set without its manifest is unusable: leave nothing half-made
            (folder / info.name).unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    if not shards:
        raise DataError(f"{name}: no readable samples to shard ({len(skipped)} skipped, e.g. {skipped[:1]})")
    classes = list(getattr(dataset, "classes", []) or [])
    manifest = Manifest(
        modality=source_entry(name).modality, source=dict(section), split=split, classes=[str(c) for c in classes],
        shards=shards, skipped={"count": len(skipped), "files": skipped[:SKIP_NAMES]},
    )  # fmt: skip
    manifest.write(folder)
    return manifest
