"""The data source of precomputed feature sequences (`data.source: feature_files`).

    data:
      source: feature_files
      root: /data/lvu_langbind      # .npy / .safetensors files, one L×F array per clip
      min_len: 2                    # shortest pretraining window (rows; LV-MAE: 10 s of 5-s segments)

`max_len` and the row width default to the model's (`max_len`, `in_dim`). Pretraining samples
LV-MAE's random windows; evaluation splits read each clip's first `max_len` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.datasets.sources import SOURCES, Augment


@dataclass
class FeatureFilesSource:
    """Feature files (`.npy` / `.safetensors`, L×F each): a folder per class, or a flat folder."""

    root: str
    layout: Literal["auto", "classes", "flat"] = "auto"
    min_len: int = 2
    max_len: int | None = None
    in_dim: int | None = None
    tile_short: bool = True
    key: str | None = None
    on_error: Literal["raise", "skip"] = "raise"


@SOURCES.register("feature_files", config=FeatureFilesSource, modality="features", files={"layout": "flat"})
def _feature_files(cfg: FeatureFilesSource, split: str, augment: Augment, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.features.files import FeatureFiles

    in_dim = cfg.in_dim if cfg.in_dim is not None else model_config.get("in_dim")
    max_len = cfg.max_len if cfg.max_len is not None else model_config.get("max_len")
    if in_dim is None or max_len is None:
        raise ValueError("data.in_dim and data.max_len: give them, or use a features model (in_dim, max_len)")
    return FeatureFiles(
        cfg.root, in_dim=int(in_dim), max_len=int(max_len), min_len=cfg.min_len, window=augment == "pretrain",
        tile_short=cfg.tile_short, layout=cfg.layout, on_error=cfg.on_error, key=cfg.key,
    )
