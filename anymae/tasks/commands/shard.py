"""`anymae shard`: turn any folder source of any modality into tar shards (WebDataset layout).

    anymae shard data.source=image_folder data.root=/data/imagenet/train out=/data/in1k-shards \\
        shard.max_count=5000 shard.max_size=1e9 run.num_workers=8
    anymae shard data.source=audio_csv data.csv=balanced_train.csv data.class_index_csv=classes.csv \\
        data.on_error=skip out=/data/as-shards

Each sample's original bytes (jpg/png, mp4 or frame jpgs, flac/wav, ply/off/npy, npy/tif) go
into `<prefix>-000000.tar`, ... with its label (`json`, and `cls` for a single label); a
`manifest.json` records counts, bytes, classes and the data section. The shards are then read
with `data.source=shards data.root=OUT` by every command (see `anymae.datasets.shards`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from anymae.core.config import check_field, load_config
from anymae.datasets.shards.manifest import Manifest
from anymae.datasets.shards.writer import write_shards
from anymae.tasks.train.config import EvalRunConfig


@dataclass
class ShardSettings:
    """How the shards are cut.

    Attributes:
        max_count: samples per shard at most.
        max_size: bytes per shard at most (a single larger sample gets a shard of its own).
        split: the split of the source that is listed (matters for sources that split by folder,
            e.g. ModelNet meshes in class/train|test).
        prefix: shard file names `<prefix>-000000.tar`; default: the split.
        check: decode every sample once with the source's reader before writing it (unreadable
            files are then found now, not during training); `run.num_workers` processes check.
    """

    max_count: int = 10000
    max_size: float = 1e9
    split: Literal["pretrain", "train", "test"] = "train"
    prefix: str | None = None
    check: bool = True

    def __post_init__(self) -> None:
        check_field(self.max_count >= 1, "max_count", self.max_count, ">= 1")
        check_field(self.max_size > 0, "max_size", self.max_size, "> 0 (bytes)")
        check_field(self.prefix is None or (bool(self.prefix) and "/" not in self.prefix and "{" not in self.prefix),
                    "prefix", self.prefix, "a file name prefix without '/' or braces")


@dataclass
class ShardConfig:
    """`anymae shard`: the data section to shard, the output folder, how to cut it.

    Attributes:
        data: a folder source's section (`data.on_error=skip` skips and counts unreadable files).
        out: the folder written (shards and manifest.json).
        shard: `ShardSettings`.
        run: run.num_workers (decode checks).
        model: model config values the source reads for its defaults (e.g. num_frames, channels).
    """

    data: dict[str, Any]
    out: str
    shard: ShardSettings = field(default_factory=ShardSettings)
    run: EvalRunConfig = field(default_factory=EvalRunConfig)
    model: dict[str, Any] = field(default_factory=dict)


def run_shard(cfg: ShardConfig, *, progress: bool = True) -> Manifest:
    """Write the shards (`datasets.shards.writer.write_shards`); returns the manifest."""
    return write_shards(
        cfg.data, cfg.out, split=cfg.shard.split, prefix=cfg.shard.prefix, max_count=cfg.shard.max_count,
        max_size=cfg.shard.max_size, check=cfg.shard.check, num_workers=cfg.run.num_workers,
        model_config=cfg.model, progress=progress,
    )  # fmt: skip


def summary(manifest: Manifest, out: str) -> str:
    """What the command prints: counts, bytes, classes and skips, on a few lines."""
    data = manifest.to_json()
    counts = data["class_counts"]
    lines = [
        f"wrote {data['num_samples']} samples in {len(manifest.shards)} shard(s), {data['bytes'] / 2**20:.1f} MiB, "
        f"to {out} (manifest.json)",
        f"classes: {len(manifest.classes)}" + (f" ({', '.join(f'{k} {v}' for k, v in list(counts.items())[:8])}"
                                                f"{', ...' if len(counts) > 8 else ''})" if counts else ""),
    ]
    skipped = manifest.skipped
    if skipped["count"]:
        named = ", ".join(skipped["files"][:5]) + (", ..." if skipped["count"] > 5 else "")
        lines.append(f"skipped {skipped['count']} unreadable file(s) (data.on_error=skip): {named}")
    (prefix, first), last = manifest.shards[0].name[:-4].rsplit("-", 1), manifest.shards[-1].name[:-4].rsplit("-", 1)[1]
    pattern = os.path.join(out, f"{prefix}-{{{first}..{last}}}.tar")
    lines.append(f"read with: data.source=shards data.root={out}  (or a brace pattern of its shards: {pattern})")
    return "\n".join(lines)


def load_shard_config(path: str | None, overrides: list[str]) -> ShardConfig:
    return load_config(ShardConfig, path, overrides)
