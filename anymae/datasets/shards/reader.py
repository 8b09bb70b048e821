"""Raw samples out of shards: sequential reading (webdataset's tar iterators) and random access.

A raw sample is what a shard holds for one key, undecoded: `{suffix: bytes}` with its `json`
(index, original file name, label). Sequential reading opens a shard with webdataset's `gopen`
(a path, or a URL such as `pipe:curl -s https://host/train-000003.tar`), expands it with
`tar_file_expander` and groups members by key with `group_by_keys`; only the members of the
positions asked for are kept. Random access (evaluation, a probe's subsets) seeks to the
sample's offset from the manifest in a local shard and reads its members.

Every problem is a `ShardError` naming the shard (and the sample): a shard that ends before the
count its manifest gives (truncated), a tar that does not parse, a key out of order, a sample
without its `json`.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from webdataset.gopen import gopen
from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_expander

from anymae.datasets.shards.manifest import KEY_DIGITS, Shard, ShardError, sample_key

META = "json"  # the member holding a sample's index, file name and label
CLASS = "cls"  # WebDataset's class-index member (text), written for single-label samples


@dataclass
class RawSample:
    """One undecoded sample: its dataset index, where it is, and its members (`suffix -> bytes`)."""

    index: int
    where: str  # "train-000003.tar:000000042"
    members: dict[str, bytes]
    _meta: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def meta(self) -> dict[str, Any]:
        """The parsed `json` member: {"index", "file", "label"}."""
        if self._meta is None:
            try:
                meta = json.loads(self.members[META].decode("utf-8"))
            except KeyError:
                raise ShardError(f"{self.where}: the sample has no {META} member "
                                 f"(members: {sorted(self.members)})") from None
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ShardError(f"{self.where}: its {META} member is not JSON: {err}") from None
            if not isinstance(meta, dict) or "label" not in meta:
                raise ShardError(f"{self.where}: its {META} member lacks 'label'")
            self._meta = meta
        return self._meta

    @property
    def data(self) -> dict[str, bytes]:
        """The sample's files: every member but `json` and `cls`."""
        return {k: v for k, v in self.members.items() if k not in (META, CLASS)}

    @property
    def nbytes(self) -> int:
        return sum(len(v) for v in self.members.values())


def _why(err: BaseException) -> str:
    """An exception as `Type: first line` (webdataset appends stream objects to the args)."""
    text = str(err.args[0]) if err.args else str(err)
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _position(key: str, shard: Shard, where: str) -> int:
    """The position in `shard` of the sample with tar key `key`."""
    name = key.rsplit("/", 1)[-1]
    if len(name) != KEY_DIGITS or not name.isdigit():
        raise ShardError(f"{where}: member key {key!r} is not a {KEY_DIGITS}-digit sample index "
                         "(not made by anymae shard?)")
    return int(name) - shard.info.first


def iter_shard(shard: Shard, lo: int = 0, hi: int | None = None) -> Iterator[RawSample]:
    """The raw samples at positions `[lo, hi)` of `shard` (default: all), in tar order.

    Raises:
        ShardError: the shard cannot be opened or parsed, a key is out of order, or the shard ends
            before `hi` (its manifest count) — the message names the shard and how far it got.
    """
    count = shard.info.count
    hi = count if hi is None else hi
    if not 0 <= lo <= hi <= count:
        raise ValueError(f"positions [{lo}, {hi}) outside shard {shard.info.name} of {count} samples")
    if lo == hi:
        return
    name = shard.info.name

    def select(fname: str) -> bool:  # keep only the members of the positions asked for
        key, _ = base_plus_ext(fname)
        try:
            return key is not None and lo <= _position(key, shard, name) < hi
        except ShardError:
            return True  # let the grouping below report it

    expected = lo
    try:
        stream = gopen(shard.location, "rb")
    except Exception as err:  # missing file, failed pipe
        raise ShardError(f"cannot open shard {shard.location}: {_why(err)}") from err
    try:
        files = tar_file_expander([{"url": name, "stream": stream}], select_files=select, eof_value=None)
        samples = group_by_keys(files)
        while expected < hi:
            try:
                sample = next(samples, None)
            except ShardError:
                raise
            except Exception as err:  # tarfile.ReadError (truncated / not a tar), OSError, duplicate members
                raise ShardError(f"shard {name} is corrupt after {expected} of its {count} samples: "
                                 f"{_why(err)}") from err
            if sample is None:
                raise ShardError(f"shard {name} ends after {expected} of the {count} samples its manifest lists "
                                 "(truncated?)")
            key = sample.pop("__key__")
            sample.pop("__url__", None)
            pos = _position(key, shard, name)
            if pos != expected:
                raise ShardError(f"shard {name}: expected sample {sample_key(shard.info.first + expected)}, found "
                                 f"{key} (samples out of order or missing)")
            yield RawSample(shard.start + pos, f"{name}:{key}", sample)
            expected += 1
    finally:
        try:
            stream.close()
        except Exception:  # a pipe closed before its end reports a broken pipe: what was read is checked above
            pass


def read_sample(shard: Shard, pos: int) -> RawSample:
    """Random access: the sample at position `pos` of a local shard, read at its manifest offset.

    Raises:
        ShardError: the shard is a URL (no random access), or the sample is not where the
            manifest says (a truncated or replaced shard).
    """
    name, key = shard.info.name, sample_key(shard.info.first + pos)
    where = f"{name}:{key}"
    if not shard.local:
        raise ShardError(f"{where}: random access needs a local shard, not {shard.location} (evaluation and "
                         "subsets read samples by offset; copy the shards to a local folder)")
    members: dict[str, bytes] = {}
    try:
        with open(shard.location, "rb") as f:
            f.seek(shard.info.offsets[pos])
            with tarfile.open(fileobj=f, mode="r|") as tar:
                for info in tar:
                    found, suffix = base_plus_ext(info.name)
                    if found != key:
                        break
                    data = tar.extractfile(info)
                    if data is None:
                        continue
                    members[suffix.lower()] = data.read()
    except (OSError, tarfile.TarError, EOFError) as err:
        raise ShardError(f"{where}: cannot read it at offset {shard.info.offsets[pos]} of {shard.location}: "
                         f"{_why(err)} (truncated or replaced shard?)") from err
    if not members:
        raise ShardError(f"{where}: no members at offset {shard.info.offsets[pos]} of {shard.location} "
                         "(the shard does not match its manifest)")
    return RawSample(shard.start + pos, where, members)
