"""Data sources of the multi-channel modality (`data.source: multichannel_files | multichannel_csv`).

Imports without the `multichannel` extra: tifffile is imported when a TIFF is read.

    data:
      source: multichannel_files
      root: /data/stacks            # a folder per class, a flat folder, or one file
      channels: [dna, er, rna]      # the channels stored in each file, in order
      use: [dna, rna]               # optional: feed only these (any subset of the model's channels)
      mean: {dna: 512.0, er: 300.1, rna: 88.0}   # dataset statistics (`anymae stats` prints them),
      std: {dna: 80.2, er: 41.0, rna: 20.5}      # by name or as lists; without them: per image
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.datasets.sources import SOURCES, Augment


@dataclass
class MultichannelFilesSource:
    """Multi-channel stacks, one file per sample (.tif/.tiff multi-page, .npy, .npz).

    `channels` names the stored channels in order (default: the model's channel names); `use`
    picks the channels fed to the model (default all). `img_size` defaults to the model's:
    larger stacks are cropped (random crop + flips when training, centre crop else), smaller
    ones are an error. Normalization (`normalize: true`): with `mean` / `std` (by channel name,
    or lists in the order of `use`, or of `channels`) per channel, else each channel of each
    sample to mean 0, std 1; `normalize: false` gives the raw values (`anymae stats`).
    """

    root: str
    channels: list[str] | None = None
    use: list[str] | None = None
    layout: Literal["auto", "classes", "flat"] = "auto"
    labels: str | None = None
    array_layout: Literal["auto", "chw", "hwc"] = "auto"
    npz_key: str | None = None
    img_size: int | None = None
    normalize: bool = True
    mean: list[float] | dict[str, float] | None = None
    std: list[float] | dict[str, float] | None = None
    on_error: Literal["raise", "skip"] = "raise"


@dataclass
class MultichannelCSVSource:
    """One image file per channel, a CSV row per sample (CHAMMI / JUMP-CP style).

    `channels` are the CSV's columns of channel files (their names are channel names); paths
    are relative to `root` (default: the CSV's folder); `label_column` gives class names.
    `use`, `img_size`, normalization: as `multichannel_files`.
    """

    csv: str
    channels: list[str]
    root: str | None = None
    label_column: str | None = None
    use: list[str] | None = None
    img_size: int | None = None
    normalize: bool = True
    mean: list[float] | dict[str, float] | None = None
    std: list[float] | dict[str, float] | None = None
    on_error: Literal["raise", "skip"] = "raise"


def _stats(cfg: Any, stored: list[str]) -> dict[str, tuple[float, float]] | None:
    """`mean` / `std` (dicts by name, or lists per `use` / stored channel) -> {name: (mean, std)}."""
    if cfg.mean is None and cfg.std is None:
        return None
    if cfg.mean is None or cfg.std is None:
        raise ValueError("data.mean and data.std: give both or neither")
    use = list(cfg.use or stored)

    def by_name(values: list[float] | dict[str, float], key: str) -> dict[str, float]:
        if isinstance(values, dict):
            return {str(k): float(v) for k, v in values.items()}
        for names in (use, stored):
            if len(values) == len(names):
                return dict(zip(names, map(float, values)))
        raise ValueError(
            f"data.{key}: {len(values)} values, expected one per used channel ({len(use)}: {use}) or per stored "
            f"channel ({len(stored)}), or a mapping by channel name"
        )

    mean, std = by_name(cfg.mean, "mean"), by_name(cfg.std, "std")
    return {n: (mean[n], std[n]) for n in mean if n in std}


def _common(cfg: Any, stored: list[str], augment: Augment, model_config: dict[str, Any]) -> dict[str, Any]:
    """The `StackDataset` options of a source; without a model (`anymae stats`) the stored channels
    name the ids and the stored size is kept."""
    size = cfg.img_size if cfg.img_size is not None else model_config.get("img_size")
    return {
        "model_channels": list(model_config.get("channels") or stored),
        "use": cfg.use,
        "img_size": tuple(size) if isinstance(size, list) else size,
        "augment": augment,
        "normalize": cfg.normalize,
        "stats": _stats(cfg, stored),
        "on_error": cfg.on_error,
    }


@SOURCES.register(
    "multichannel_files", config=MultichannelFilesSource, modality="multichannel", files={"layout": "flat"}
)
def _files(cfg: MultichannelFilesSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.multichannel.files import StackFiles

    channels = list(cfg.channels or model_config.get("channels") or [])
    if not channels:
        raise ValueError("data.channels: name the channels stored in each file (no model gives them)")
    return StackFiles(
        cfg.root, channels, layout=cfg.layout, labels=cfg.labels, array_layout=cfg.array_layout,
        npz_key=cfg.npz_key, **_common(cfg, channels, augment, model_config),
    )


@SOURCES.register("multichannel_csv", config=MultichannelCSVSource, modality="multichannel")
def _csv(cfg: MultichannelCSVSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.multichannel.files import ChannelCSV

    return ChannelCSV(
        cfg.csv, cfg.channels, root=cfg.root, label_column=cfg.label_column,
        **_common(cfg, list(cfg.channels), augment, model_config),
    )
