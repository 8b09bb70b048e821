"""`data.source: shards`: tar shards made by `anymae shard`, for every modality and every command.

    data:
      source: shards
      root: /data/k400-shards/train-{000000..000127}.tar   # or the folder; or URLs (+ manifest)
      shuffle_buffer: 2000                                # raw samples per loader worker (default: 256 MiB's)
      options: {img_size: 224}                            # change how samples decode (optional)

The shards remember the data section they were made from (`manifest.json`); samples decode with
that section's source (its transforms, the model's defaults), `options` overriding its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.datasets.sources import SOURCES, Augment


@dataclass
class ShardsSource:
    """Tar shards (WebDataset layout) made by `anymae shard` from any folder source of any modality.

    `root`: a folder of shards with its manifest.json, a brace pattern of .tar files
    (`train-{000000..000127}.tar`), or URLs webdataset opens (`pipe:...`; then `manifest` is a
    local copy of the manifest). Training streams the shards (a shard order per epoch, contiguous
    ranges per rank and loader worker, a seeded `shuffle_buffer`); evaluation reads samples by
    offset. `options` overrides fields of the source the shards were made from (e.g. img_size).
    Every split reads the same shards (as a folder source serves its one folder): shard the
    training and the test folders into two sets.
    """

    root: str
    manifest: str | None = None
    shuffle_buffer: int | None = None  # None: as many samples as fill 256 MiB, 16 to 1000
    options: dict[str, Any] = field(default_factory=dict)
    on_error: Literal["raise", "skip"] = "raise"


@SOURCES.register("shards", config=ShardsSource, modality="any")
def _shards(cfg: ShardsSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.shards.dataset import ShardDataset

    return ShardDataset(
        cfg.root, split=split, augment=augment, model_config=model_config, manifest=cfg.manifest,
        options=cfg.options, shuffle_buffer=cfg.shuffle_buffer, on_error=cfg.on_error,
    )  # fmt: skip
