"""Feature sequences on disk: one L×F array per clip (`.npy` or `.safetensors`), read safely.

`read_features` loads one file: `.npy` through `load_npy` (header checked against the file size
before anything is allocated, `allow_pickle=False`), `.safetensors` through the `safetensors`
reader (its header is validated against the file; one tensor, or the one named `key`). The
array must be 2-D (L rows of F features, L >= 1), real and finite, with F = the model's `in_dim`;
every error is a `DataError` naming the file.

`FeatureFiles` serves them as `(L_i×F float tensor, label)` items. For pretraining it samples a
window as LV-MAE's data loader (`data/CombinedData.py`) does: a duration drawn uniformly in whole
seconds from [5·min_len, 5·max_len] (LV-MAE: 10 s to 1280 s of 5-s segments), i.e. `length =
randint(5·min_len, 5·max_len + 1) // 5` rows, the whole clip when it is shorter, at a uniform
start; clips of fewer than 2 rows are tiled ×8, of fewer than 5 ×3 (`tile_short`). Without
augmentation an item is the clip's first `max_len` rows. Random draws use torch's generator,
which `SeededSamples` seeds per sample. `collate_x` pads a batch at the end with zero rows to its
longest item and returns a `FeatureBatch` with the `valid` mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset
from anymae.datasets.multichannel.io import load_npy
from anymae.datasets.scan import display_name, scan_folder
from anymae.datasets.skips import CountsSkips, DataError, Skips, check_file, reason
from anymae.modalities.features import FeatureBatch

FEATURE_EXTENSIONS: tuple[str, ...] = (".npy", ".safetensors")
SECONDS_PER_ROW = 5  # LV-MAE's segment length: window durations are drawn in whole seconds


def _load_safetensors(p: Path, key: str | None) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(p), framework="np") as f:  # validates the header against the file size
        keys = list(f.keys())
        if key is None and len(keys) != 1:
            raise DataError(f"{display_name(p)}: holds {len(keys)} tensors {keys[:5]}; name one with data.key")
        name = keys[0] if key is None else key
        if name not in keys:
            raise DataError(f"{display_name(p)}: no tensor named {name!r}; it holds {keys[:5]}")
        return f.get_tensor(name)


def read_features(path: str | Path, *, in_dim: int | None = None, key: str | None = None) -> np.ndarray:
    """The L×F float32 array stored in a `.npy` / `.safetensors` file (module doc for the checks).

    Args:
        path: the file.
        in_dim: the expected F (None: any).
        key: the tensor's name in a `.safetensors` file with several (None: its only one).

    Raises:
        DataError naming the file.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".npy":
        arr = load_npy(p)
    elif ext == ".safetensors":
        check_file(p, "feature file")
        try:
            arr = _load_safetensors(p, key)
        except DataError:
            raise
        except Exception as err:  # any decode failure, reported with its type and text
            raise DataError(f"cannot read .safetensors file {display_name(p)}: {reason(err)}") from err
    else:
        raise DataError(f"{display_name(p)}: unknown feature file type {ext!r}; expected "
                        f"{', '.join(FEATURE_EXTENSIONS)}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr) or arr.dtype == np.bool_:
        raise DataError(f"{display_name(p)}: expected real numbers, found dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise DataError(f"{display_name(p)}: expected an L×F array of L >= 1 rows of F features, got shape "
                        f"{arr.shape}")
    if in_dim is not None and arr.shape[1] != in_dim:
        raise DataError(f"{display_name(p)}: rows of {arr.shape[1]} features, but the model takes in_dim={in_dim}")
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32)
    bad = int((~np.isfinite(out)).sum())
    if bad:
        raise DataError(f"{display_name(p)}: {bad} of its {out.size} values are NaN or Inf (as float32)")
    return out


def sample_window(rows: Tensor, *, min_len: int, max_len: int, tile_short: bool = True) -> Tensor:
    """LV-MAE's pretraining window of an L×F clip (module doc); draws from torch's generator."""
    total = rows.shape[0]
    seconds = int(torch.randint(SECONDS_PER_ROW * min_len, SECONDS_PER_ROW * max_len + 1, (1,)))
    length = min(seconds // SECONDS_PER_ROW, total)
    start = int(torch.randint(0, total - length + 1, (1,)))
    window = rows[start : start + length]
    if tile_short and total < 5:
        window = window.repeat(8 if total < 2 else 3, 1)  # LV-MAE tiles very short clips
    return window[:max_len]


def pad_batch(items: Sequence[Tensor]) -> FeatureBatch:
    """[L_i×F] -> FeatureBatch(B×L×F zero-padded at the end, B×L valid), L = max L_i."""
    if not items:
        raise ValueError("cannot collate an empty batch of feature sequences")
    width = {t.shape[1] for t in items}
    if len(width) != 1:
        raise ValueError(f"feature rows of different widths {sorted(width)} in one batch")
    longest = max(t.shape[0] for t in items)
    feats = torch.zeros(len(items), longest, width.pop(), dtype=items[0].dtype)  # B×L×F
    valid = torch.zeros(len(items), longest, dtype=torch.bool)  # B×L
    for i, t in enumerate(items):
        feats[i, : t.shape[0]] = t
        valid[i, : t.shape[0]] = True
    return FeatureBatch(feats, valid)


class FeatureFiles(CountsSkips, Dataset, SampleDataset):
    """Feature files in a folder tree (a folder per class, or flat); items `(L_i×F tensor, label)`.

    Args:
        root: a folder (searched recursively) or one file.
        in_dim: the feature width F every file must have.
        max_len: the longest item (the model's `max_len`).
        min_len: the shortest pretraining window (LV-MAE: 2 rows = 10 s).
        window: sample LV-MAE's random window (pretraining) or take the first `max_len` rows.
        tile_short: tile clips of fewer than 5 rows (LV-MAE), when sampling windows.
        layout, on_error: as `ImageFiles`.
        key: the tensor's name in `.safetensors` files that hold several.
    """

    def __init__(
        self, root: str | Path, *, in_dim: int, max_len: int, min_len: int = 2, window: bool = True,
        tile_short: bool = True, layout: str = "auto", on_error: str = "raise", key: str | None = None,
    ) -> None:
        if not 1 <= min_len <= max_len:
            raise ValueError(f"feature windows need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        self.root = Path(root)
        self.in_dim, self.max_len, self.min_len = int(in_dim), int(max_len), int(min_len)
        self.window, self.tile_short, self.key = window, tile_short, key
        found = scan_folder(self.root, layout, FEATURE_EXTENSIONS, what="feature")  # type: ignore[arg-type]
        self.classes, self.samples = found
        self._skips = Skips(len(self.samples), "feature file", f"FeatureFiles({display_name(self.root)})", on_error)

    def __len__(self) -> int:
        return len(self.samples)

    @property  # type: ignore[override]
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        rows, label = self._skips.get(index, self._load)
        if self.window:
            rows = sample_window(rows, min_len=self.min_len, max_len=self.max_len, tile_short=self.tile_short)
        return rows[: self.max_len], label

    def _load(self, j: int) -> tuple[Tensor, int]:
        path, label = self.samples[j]
        return torch.from_numpy(read_features(path, in_dim=self.in_dim, key=self.key)), label

    def collate_x(self, xs: list[Any]) -> FeatureBatch:
        return pad_batch(xs)


