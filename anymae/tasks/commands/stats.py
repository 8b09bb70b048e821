"""`anymae stats`: per-channel mean / std of a dataset's raw inputs, for its normalization fields.

Generic over modalities, by one convention: a data source that normalizes its inputs has a
`normalize: bool` field, and `normalize: false` makes it return the raw values (audio: the raw
log-mel fbank before `(x - mean) / (2 std)`; multichannel stacks: raw channel values). The
statistics are taken over every value of every sample, per channel, where the channel is axis 0
of a sample (audio 1×T×F: one channel; a C×H×W stack: C channels), in float64 (exact population
mean and std, not an average of batch statistics). Samples are read without augmentation
(evaluation transform of the chosen split) and summed one by one, so samples of different sizes
(multi-channel stacks of any H×W, clips of any length) all count, each with all its values; every
sample must hold the same number of channels.

Output: a YAML snippet for the data section, scalars for one channel and lists otherwise:

    data:
      mean: -4.2677393
      std: 4.5689974
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import yaml
from torch import Tensor
from torch.utils.data import DataLoader

from anymae.core.config import ConfigError, load_config
from anymae.datasets.sources import build_dataset, source_entry
from anymae.tasks.train.config import EvalRunConfig
from anymae.tasks.train.distributed import resolve_device


@dataclass
class StatsConfig:
    """`anymae stats`: the data section, which split, how many samples, model defaults."""

    data: dict[str, Any]
    split: Literal["pretrain", "train", "test"] = "pretrain"
    max_samples: int | None = None  # None: every sample
    batch_size: int = 16
    run: EvalRunConfig = field(default_factory=EvalRunConfig)  # run.device (where the sums run), run.num_workers
    model: dict[str, Any] = field(default_factory=dict)  # model config values the source reads (e.g. num_mel_bins)


@dataclass
class ChannelStats:
    """Per-channel statistics: mean and population std (C values each) over `count` values per channel."""

    mean: list[float]
    std: list[float]
    count: int
    num_samples: int

    def yaml_snippet(self) -> str:
        """`data: {mean, std}` as YAML; scalars when there is one channel."""
        one = len(self.mean) == 1
        section = {"mean": self.mean[0] if one else self.mean, "std": self.std[0] if one else self.std}
        return yaml.safe_dump({"data": section}, sort_keys=False, default_flow_style=None if not one else False)


def raw_section(section: dict[str, Any]) -> dict[str, Any]:
    """The data section with `normalize: false`; the source must have that field (module doc)."""
    name = section.get("source")
    if "normalize" not in getattr(source_entry(name).config, "__dataclass_fields__", {}):
        raise ConfigError(
            f"data.source={name!r} has no 'normalize' field, so its raw inputs cannot be read; "
            "`anymae stats` works with sources that normalize their inputs (e.g. audio_folder)"
        )
    return {**section, "normalize": False}


def channel_stats(batches: Any, max_samples: int | None = None, device: torch.device | str = "cpu") -> ChannelStats:
    """Exact per-channel mean / std over batches of B×C×... tensors (float64 sums on `device`).

    Raises:
        ValueError: no samples, or a batch whose channel count differs from the first one's.
    """
    total: Tensor | None = None
    total_sq: Tensor | None = None
    count, seen = 0, 0
    for x in batches:
        if max_samples is not None:
            x = x[: max(0, max_samples - seen)]
        if x.shape[0] == 0:
            break
        if total is not None and x.shape[1] != total.shape[0]:
            raise ValueError(f"channel_stats: sample {seen} has {x.shape[1]} channel(s), the samples before it "
                             f"{total.shape[0]}; statistics per channel need one channel count")
        flat = x.detach().to(device=device, dtype=torch.float64).transpose(0, 1).reshape(x.shape[1], -1)  # C×(B·rest)
        s, sq = flat.sum(1), flat.pow(2).sum(1)
        total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)  # type: ignore[operator]
        count += flat.shape[1]
        seen += x.shape[0]
        if max_samples is not None and seen >= max_samples:
            break
    if total is None or total_sq is None or count == 0:
        raise ValueError("channel_stats: the dataset gave no samples")
    mean = total / count
    var = (total_sq / count - mean.pow(2)).clamp_min(0.0)
    return ChannelStats([float(v) for v in mean], [math.sqrt(float(v)) for v in var], count, seen)


def run_stats(cfg: StatsConfig) -> ChannelStats:
    """Build the data section's dataset with normalization off and measure it."""
    data = build_dataset(raw_section(cfg.data), split=cfg.split, augment=False, model_config=cfg.model)
    loader = DataLoader(data, batch_size=cfg.batch_size, num_workers=cfg.run.num_workers, collate_fn=keep_apart)
    # one sample at a time (1×C×...): samples of different sizes are no batch, but each counts whole
    samples = (sample_values(item).unsqueeze(0) for items in loader for item in items)
    return channel_stats(samples, cfg.max_samples, device=resolve_device(cfg.run.device))


def keep_apart(items: list[Any]) -> list[Any]:
    """A DataLoader `collate_fn` that keeps the samples of a batch apart (a list)."""
    return items


def sample_values(item: Any) -> Tensor:
    """A dataset item's input values, C×...: the first element of `(input, label)`; an input type
    that carries metadata with its values (multi-channel `ChannelStack`) exposes them as `.pixels`."""
    x = item[0] if isinstance(item, (tuple, list)) else item
    return getattr(x, "pixels", x)


def load_stats_config(path: str | None, overrides: list[str]) -> StatsConfig:
    return load_config(StatsConfig, path, overrides)
