"""The manifest of a shard set, and where its shards are: a folder, a brace pattern, or URLs.

`anymae shard` writes `manifest.json` next to the shards. It is an index beside plain tars, not
a format of its own: the tars read without it (`tar tf`, `webdataset.WebDataset`), and it holds
what a stream needs before reading a byte of them: per shard its sample count, byte size, the
labels of its samples (so probes and few-shot splits know them without decoding) and the tar
offset of each sample (random access for evaluation), plus the data section the shards were
made from (how samples decode), the classes and the count per class.

    {"anymae_shards": 1, "modality": "image", "source": {"source": "image_folder", ...},
     "split": "train", "classes": [...], "num_samples": N, "bytes": B,
     "class_counts": {"cat": 12, ...}, "skipped": {"count": 0, "files": []},
     "shards": [{"name": "train-000000.tar", "count": 100, "bytes": 123, "first": 0,
                 "labels": [...], "offsets": [...]}, ...]}

Sample keys are the sample's index in the manifest order, nine digits (`000000042`); `first` is
the key of a shard's first sample.

`resolve_shards(root)` turns `data.root` into the shards to read: a folder (every shard of its
manifest, in order), a brace pattern or one `.tar` (`/data/train-{000000..000127}.tar`; the
manifest beside them, or `data.manifest`), or URLs webdataset opens (`pipe:aws s3 cp
s3://b/x-{0..9}.tar -`, with `data.manifest` a local copy of the manifest). Patterns expand as
`webdataset.WebDataset` expands them (`expand_urls`: braces, `::` between lists, `$WDS_*` variables). A selected subset of shards is a dataset of
its own: its indices run over the selected shards in pattern order.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from webdataset.shardlists import expand_urls

from anymae.core.io import atomic_write
from anymae.datasets.skips import DataError

MANIFEST = "manifest.json"
VERSION = 1
KEY_DIGITS = 9


class ShardError(DataError):
    """A shard (or its manifest) cannot be used; the message names the shard and the sample."""


def sample_key(index: int) -> str:
    """The tar key of manifest sample `index` (`000000042`): no dot, so webdataset groups by it."""
    return f"{index:0{KEY_DIGITS}d}"


@dataclass
class ShardInfo:
    """One shard in the manifest: file name, samples, bytes, first key, labels and tar offsets."""

    name: str
    count: int
    bytes: int
    first: int
    labels: list[Any] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)


@dataclass
class Manifest:
    """What `anymae shard` wrote (module doc); `shards` in manifest order."""

    modality: str
    source: dict[str, Any]
    split: str
    classes: list[str]
    shards: list[ShardInfo]
    skipped: dict[str, Any] = field(default_factory=lambda: {"count": 0, "files": []})

    @property
    def num_samples(self) -> int:
        return sum(s.count for s in self.shards)

    def class_counts(self) -> dict[str, int]:
        """Samples per class name (a multi-label sample counts once for each of its classes);
        `unlabeled` counts the samples labelled -1."""
        counts = {name: 0 for name in self.classes}
        for shard in self.shards:
            for label in shard.labels:
                for k in label if isinstance(label, list) else [label]:
                    name = self.classes[k] if 0 <= k < len(self.classes) else "unlabeled"
                    counts[name] = counts.get(name, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "anymae_shards": VERSION, "modality": self.modality, "source": self.source, "split": self.split,
            "classes": self.classes, "num_samples": self.num_samples, "bytes": sum(s.bytes for s in self.shards),
            "class_counts": self.class_counts(), "skipped": self.skipped, "shards": [asdict(s) for s in self.shards],
        }  # fmt: skip

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write `folder/manifest.json` atomically."""
        path = Path(folder) / MANIFEST
        with atomic_write(path, "w") as f:
            json.dump(self.to_json(), f)
        return path


def _expect(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise ShardError(f"shard manifest {path}: {what}")


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a manifest.

    Raises:
        ShardError: missing, not JSON, another version, or fields of the wrong kind (named).
    """
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"no shard manifest {path}: shards made by `anymae shard` have one beside them "
                         "(or give data.manifest=PATH)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ShardError(f"shard manifest {path} is not readable JSON: {type(err).__name__}: {err}") from err
    _expect(isinstance(data, dict) and data.get("anymae_shards") == VERSION, path,
            f"expected an object with anymae_shards={VERSION}")
    _expect(isinstance(data.get("source"), dict) and isinstance(data["source"].get("source"), str), path,
            "expected 'source', the data section the shards were made from")
    _expect(isinstance(data.get("classes"), list) and isinstance(data.get("shards"), list), path,
            "expected lists 'classes' and 'shards'")
    shards, first = [], 0
    for n, entry in enumerate(data["shards"]):
        try:
            info = ShardInfo(**entry)
        except TypeError as err:
            raise ShardError(f"shard manifest {path}: shards[{n}]: {err}") from None
        _expect(isinstance(info.name, str) and "/" not in info.name and isinstance(info.count, int)
                and info.count >= 0 and info.first == first, path,
                f"shards[{n}] ({info.name!r}): expected a file name, a count >= 0 and first={first}")
        _expect(len(info.labels) == info.count and len(info.offsets) == info.count, path,
                f"shards[{n}] ({info.name}): expected {info.count} labels and offsets")
        shards.append(info)
        first += info.count
    return Manifest(modality=str(data.get("modality", "")), source=data["source"], split=str(data.get("split", "")),
                    classes=[str(c) for c in data["classes"]], shards=shards,
                    skipped=data.get("skipped") or {"count": 0, "files": []})  # fmt: skip


@dataclass(frozen=True)
class Shard:
    """One shard to read: where it is, its manifest entry, and the dataset index of its first sample."""

    location: str  # a local path, or a URL webdataset's gopen opens
    info: ShardInfo
    start: int  # dataset index of the shard's first sample

    @property
    def local(self) -> bool:
        return not is_url(self.location)


def is_url(location: str) -> bool:
    return location.startswith("pipe:") or "://" in location


def resolve_shards(root: str, manifest: str | None = None) -> tuple[Manifest, list[Shard]]:
    """The manifest and the shards `data.root` selects (module doc), indices in selection order.

    Raises:
        ShardError: no such folder / shard, a shard the manifest does not list, no manifest.
    """
    if not root:
        raise ShardError("data.root: expected a folder of shards, a brace pattern of .tar files, or URLs")
    folder = Path(root)
    if not is_url(root) and folder.is_dir():
        man = load_manifest(Path(manifest) if manifest else folder / MANIFEST)
        chosen = [(str(folder / s.name), s) for s in man.shards]
        missing = [loc for loc, _ in chosen if not Path(loc).is_file()]
        if missing:
            raise ShardError(f"shard {missing[0]} is listed in {folder / MANIFEST} but does not exist "
                             f"({len(missing)} of {len(chosen)} shards missing)")
    else:
        locations = expand_urls(root)
        if manifest is None and is_url(root):
            raise ShardError(f"data.root={root!r} names URLs: give data.manifest=PATH (a local copy of their manifest)")
        man = load_manifest(Path(manifest) if manifest else Path(locations[0]).parent / MANIFEST)
        by_name = {s.name: s for s in man.shards}
        chosen = []
        for loc in locations:
            name = loc.rstrip("/").rsplit("/", 1)[-1].split()[0] if is_url(loc) else Path(loc).name
            info = by_name.get(name) or next((s for n, s in by_name.items() if n in loc), None)
            if info is None:
                raise ShardError(f"shard {loc} is not listed in its manifest (it lists {len(by_name)} shards, "
                                 f"e.g. {next(iter(by_name), 'none')})")
            if not is_url(loc) and not Path(loc).is_file():
                raise ShardError(f"shard {loc} does not exist (data.root={root!r})")
            chosen.append((loc, info))
    shards, start = [], 0
    for loc, info in chosen:
        shards.append(Shard(loc, info, start))
        start += info.count
    if start == 0:
        raise ShardError(f"data.root={root!r}: the selected shards hold no samples")
    return man, shards
