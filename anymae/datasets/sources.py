"""Data sources by name: the `data:` section of a run config -> a Dataset.

Each source is a small typed config plus a builder, registered in `SOURCES` by its modality's
module (`datasets/<modality>/sources.py`, listed below and imported on the registry's first read;
those modules import without their modality's extra, readers are imported when a dataset is
built). `source:` picks one, the other keys are that config's fields (an unknown key is an error
listing the valid ones):

    data:
      source: image_folder
      root: /data/imagenet/train
      img_size: 224

A modality's module registers a source with its config class, its modality and, for the source
that reads a user's file or folder given as `root` (`anymae reconstruct --input PATH`), the fixed
fields of that reading (`files=`):

    @SOURCES.register("video_files", config=VideoFilesSource, modality="video", files={"layout": "flat"})
    def _video_files(cfg: VideoFilesSource, split: str, augment: Augment, model_config: dict) -> Dataset: ...
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

from torch.utils.data import Dataset

from anymae.core.config import ConfigError, from_dict, register_source_keys
from anymae.core.registry import Entry, Registry
from anymae.datasets.views import VIEW_KEYS, ViewOptions, with_views

Augment = Literal["pretrain", "finetune", False]
Split = Literal["pretrain", "train", "test"]
# builder(config instance, split, augment, the model's plain config) -> Dataset
Builder = Callable[[Any, str, Augment, dict[str, Any]], Dataset]

SOURCES: Registry[Builder] = Registry(
    "data source", hint="`anymae info` lists every source with its keys",
    modules=("anymae.datasets.image.sources", "anymae.datasets.points.sources",
             "anymae.datasets.multichannel.sources", "anymae.datasets.audio.sources",
             "anymae.datasets.graph.sources", "anymae.datasets.video.sources", "anymae.datasets.shards.sources",
             "anymae.datasets.volume.sources", "anymae.datasets.features.sources",
             "anymae.datasets.pairs.sources", "anymae.datasets.audiovisual.sources", "anymae.datasets.paired",
             "anymae.datasets.mixed"),
)


def source_entry(name: Any) -> Entry[Builder]:
    """The registered source `name` (`.obj` the builder, `.config` its config class, `.modality`)."""
    if not isinstance(name, str):
        raise ConfigError(f"data.source={name!r}: expected a source name, one of {', '.join(SOURCES.names())}")
    return SOURCES.entry(name)


def _keys_of(name: str) -> list[str] | None:
    """The keys of source `name`'s config (None if unknown): `data.source=NAME` overrides drop the
    file's other keys (`anymae.core.config.register_source_keys`)."""
    entry = next((e for e in SOURCES.entries() if e.name == name), None)
    config = entry.meta.get("config") if entry is not None else None
    return None if config is None else ["source", *(f.name for f in dataclasses.fields(config)), *VIEW_KEYS]


register_source_keys(_keys_of)


def files_section(modality: str, root: str) -> dict[str, Any]:
    """The `data:` section that reads the file or folder `root` for a model of `modality`."""
    readers = [e for e in SOURCES.entries() if e.meta.get("files") is not None]
    for entry in readers:
        if entry.modality == modality:
            return {"source": entry.name, "root": root, **entry.files}
    known = ", ".join(sorted(e.modality for e in readers))
    raise ConfigError(f"no file reader for modality {modality!r}; known: {known}")


def build_dataset(
    section: dict[str, Any],
    *,
    split: Split,
    augment: Augment | None = None,
    model_config: dict[str, Any] | None = None,
) -> Dataset:
    """Build the dataset a `data:` section describes; items are (x, label), label -1 if unlabeled.

    Args:
        section: `{"source": name, **fields}`, plus `views` / `view_mode` (`datasets.views`: V
            inputs per pretraining sample, batched as `Views`).
        split: "pretrain" (unlabeled training data), "train" or "test" (labelled, for probes and
            fine-tuning; sources with one folder serve the same files for every split).
        augment: "pretrain" (MAE's crop + flip), "finetune" (MAE's RandAugment recipe) or False
            (evaluation transform); default "pretrain" for the pretrain split, else False. Sources
            held in memory (demo, synthetic) have no augmentation.
        model_config: the model's plain config (for defaults such as the image size).
    """
    values = dict(section)
    entry = source_entry(values.pop("source", None))
    views = from_dict(ViewOptions, {k: values.pop(k) for k in VIEW_KEYS if k in values}, where="data")
    cfg = from_dict(entry.config, values, where="data")
    if augment is None:
        augment = "pretrain" if split == "pretrain" else False
    dataset = entry.obj(cfg, split, augment, model_config or {})  # type: ignore[misc]
    return with_views(dataset, views) if split == "pretrain" else dataset  # views: pretraining only
