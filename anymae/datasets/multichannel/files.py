"""Multi-channel stacks as datasets: items `(ChannelStack C×H×W, label)`, batched by `collate_x`.

Two layouts of files on disk:

- `StackFiles`: one file per sample (multi-page TIFF, .npy, .npz), in a folder per class, a
  flat folder (labels from an optional CSV `file,label`), or a single file;
- `ChannelCSV`: one image file per channel, grouped by a CSV with a row per sample and a column
  per channel (CHAMMI / JUMP-CP style), labels from an optional column.

Each sample: read -> check the channels (count, size) -> keep `use` channels -> normalize
(with dataset statistics per channel name, e.g. from `anymae stats`, or per image and
channel, or not at all) -> crop to the
model's size (random crop + horizontal / vertical flips when augmenting, centre crop else) ->
`ChannelStack(pixels, channel ids)`, ids being positions in the model's channel names.
Bad input raises `DataError` naming the file (and the channel); with `on_error="skip"` an
unreadable sample is replaced by the next readable one and counted (`skipped`, `skip_report`).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.cache import DecodeCache
from anymae.datasets.contract import SampleDataset
from anymae.modalities.multichannel import ChannelStack, channel_ids, collate_stacks
from anymae.datasets.scan import display_name, scan_folder
from anymae.datasets.skips import CountsSkips, DataError, Skips
from anymae.datasets.multichannel.io import (
    STACK_EXTENSIONS, Layout, check_finite, read_array, read_channel_image, to_chw,
)

logger = logging.getLogger(__name__)

_EPS = 1e-5  # InstanceNorm's eps, for per-image normalization


class StackDataset(CountsSkips, Dataset, SampleDataset):
    """What every multi-channel dataset shares: channel selection, normalization, cropping, skips.

    Args:
        file_channels: names of the channels each sample holds, in stored order.
        model_channels: the model's channel names (ids are positions in it).
        use: channels fed to the model, in order (default all of `file_channels`).
        img_size: H = W of the output (or (H, W)); None keeps the stored size.
        augment: random crop + flips ("pretrain" / "finetune") or centre crop (False).
        normalize: False returns the raw values; True normalizes each channel with `stats`
            ({name: (mean, std)}, dataset statistics) or, without them, each channel of each sample
            to mean 0, std 1 (an InstanceNorm, eps 1e-5).
        on_error: "raise" or "skip".
    """

    def __init__(
        self,
        *,
        file_channels: Sequence[str],
        model_channels: Sequence[str],
        use: Sequence[str] | None = None,
        img_size: int | tuple[int, int] | None = None,
        augment: Literal["pretrain", "finetune", False] = False,
        normalize: bool = True,
        stats: dict[str, tuple[float, float]] | None = None,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> None:
        self.file_channels = list(file_channels)
        if len(set(self.file_channels)) != len(self.file_channels):
            raise ValueError(f"data.channels: channel names repeat: {self.file_channels}")
        self.use = list(use) if use else list(self.file_channels)
        missing = [n for n in self.use if n not in self.file_channels]
        if missing:
            raise ValueError(f"data.use: channel(s) {missing} are not among the file's channels {self.file_channels}")
        self.positions = [self.file_channels.index(n) for n in self.use]
        self.ids = torch.tensor(channel_ids(self.use, model_channels, where="data.use"), dtype=torch.long)
        self.img_size = None if img_size is None else (
            (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
        )
        self.augment = augment
        self.normalize = bool(normalize)
        self.mean_std: tuple[Tensor, Tensor] | None = None
        if stats is not None:
            lacking = [n for n in self.use if n not in stats]
            if lacking:
                raise ValueError(f"data.mean/std: no statistics for channel(s) {lacking}; they have {sorted(stats)}")
            bad = [n for n in self.use if not stats[n][1] > 0]
            if bad:
                raise ValueError(f"data.std: must be > 0, not for channel(s) {bad}")
            self.mean_std = (
                torch.tensor([stats[n][0] for n in self.use]).view(-1, 1, 1),
                torch.tensor([stats[n][1] for n in self.use]).view(-1, 1, 1),
            )
        if on_error not in ("raise", "skip"):
            raise ValueError(f"data.on_error={on_error!r}: expected 'raise' or 'skip'")
        self.on_error = on_error
        self._skips = Skips(len(self), "sample", type(self).__name__, on_error)
        self.decode_cache = DecodeCache(self.read_raw, len(self), type(self).__name__)

    collate_x = staticmethod(collate_stacks)

    # --- what a layout provides
    def __len__(self) -> int:
        raise NotImplementedError

    def name(self, index: int) -> str:
        """The sample's file (for messages)."""
        raise NotImplementedError

    def label(self, index: int) -> int:
        raise NotImplementedError

    @property  # type: ignore[override]
    def labels(self) -> list[int]:
        """Every sample's label in index order, without reading the stacks."""
        return [self.label(i) for i in range(len(self))]

    def read_raw(self, index: int) -> np.ndarray:
        """The stored channels of sample `index`: C_file×H×W float32 (checked)."""
        raise NotImplementedError

    # --- shared pipeline
    def read_used(self, index: int) -> Tensor:
        """The `use` channels of a sample, unnormalized and uncropped: C×H×W."""
        return torch.from_numpy(np.ascontiguousarray(self.decode_cache(index)))[self.positions]

    def _normalized(self, x: Tensor) -> Tensor:
        if not self.normalize:
            return x
        if self.mean_std is not None:
            return (x - self.mean_std[0]) / self.mean_std[1]
        mean = x.mean(dim=(1, 2), keepdim=True)
        var = x.var(dim=(1, 2), keepdim=True, unbiased=False)
        return (x - mean) / (var + _EPS).sqrt()

    def _cropped(self, x: Tensor, index: int) -> Tensor:
        if self.img_size is None:
            return x
        (th, tw), (h, w) = self.img_size, x.shape[-2:]
        if h < th or w < tw:
            raise DataError(f"{self.name(index)}: {h}×{w} pixels, smaller than the model's input {th}×{tw}")
        if self.augment:
            top = int(torch.randint(0, h - th + 1, (1,)))
            left = int(torch.randint(0, w - tw + 1, (1,)))
        else:
            top, left = (h - th) // 2, (w - tw) // 2
        x = x[:, top : top + th, left : left + tw]
        if self.augment:
            flips = torch.rand(2)
            if flips[0] < 0.5:
                x = x.flip(-1)
            if flips[1] < 0.5:
                x = x.flip(-2)
        return x

    def load(self, index: int) -> ChannelStack:
        x = self._cropped(self._normalized(self.read_used(index)), index)
        return ChannelStack(x.contiguous(), self.ids.clone())

    def item_name(self, index: int) -> str:
        """Item `index`'s name in the skip report."""
        return self.name(index)

    def __getitem__(self, index: int) -> tuple[ChannelStack, int]:
        return self._skips.get(index, lambda j: (self.load(j), self.label(j)))


def _read_labels_csv(path: Path) -> dict[str, str]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise DataError(f"{display_name(path)}: expected a CSV with columns 'file' and 'label'")
    return {r["file"]: r["label"] for r in rows}


class StackFiles(StackDataset):
    """One stack file per sample (.tif/.tiff multi-page, .npy, .npz).

    Args:
        root: a folder (a sub-folder per class, or flat) or one file.
        channels: names of the stored channels in order (each file must hold exactly these).
        layout: "auto" / "classes" / "flat" (as `ImageFiles`).
        labels: optional CSV (`file,label`, file relative to `root`) labelling a flat folder.
        array_layout: "auto", "chw" or "hwc" (see `multichannel_io.to_chw`).
        npz_key: the array's name inside .npz files (default: their only array).
        **kwargs: `StackDataset` options.
    """

    def __init__(
        self,
        root: str | Path,
        channels: Sequence[str],
        *,
        layout: str = "auto",
        labels: str | Path | None = None,
        array_layout: Layout = "auto",
        npz_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.root = Path(root)
        try:
            self.classes, self.samples = scan_folder(self.root, layout, STACK_EXTENSIONS, what="stack")
        except ValueError as err:
            raise DataError(str(err).replace("image", "stack")) from err
        if labels is not None:
            by_file = _read_labels_csv(Path(labels))
            self.classes = sorted(set(by_file.values()))
            index = {c: i for i, c in enumerate(self.classes)}
            rel = lambda p: p.relative_to(self.root).as_posix() if self.root.is_dir() else p.name
            unlabeled = [rel(p) for p, _ in self.samples if rel(p) not in by_file]
            if unlabeled:
                raise DataError(f"{display_name(labels)}: no label for file(s) {unlabeled[:5]} under "
                                f"{display_name(self.root)}")
            self.samples = [(p, index[by_file[rel(p)]]) for p, _ in self.samples]
        self.array_layout, self.npz_key = array_layout, npz_key
        super().__init__(file_channels=channels, **kwargs)

    def __len__(self) -> int:
        return len(self.samples)

    def name(self, index: int) -> str:
        return display_name(self.samples[index][0])

    def label(self, index: int) -> int:
        return self.samples[index][1]

    def read_raw(self, index: int) -> np.ndarray:
        path = self.samples[index][0]
        chw = to_chw(read_array(path, npz_key=self.npz_key), self.file_channels, layout=self.array_layout, path=path)
        return check_finite(chw, self.file_channels, path)


class ChannelCSV(StackDataset):
    """One image file per channel, a CSV row per sample (CHAMMI / JUMP-CP style).

    Args:
        csv_path: the CSV; paths in it are relative to `root` (default: the CSV's folder).
        channels: the CSV columns holding the channels' files; the column names are channel names.
        root: base folder of relative paths.
        label_column: optional column of class names (labels = sorted class index); else -1.
        **kwargs: `StackDataset` options.
    """

    def __init__(
        self,
        csv_path: str | Path,
        channels: Sequence[str],
        *,
        root: str | Path | None = None,
        label_column: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.csv_path = Path(csv_path)
        self.root = Path(root) if root is not None else self.csv_path.parent
        with open(self.csv_path, newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            self.rows = list(reader)
        wanted = list(channels) + ([label_column] if label_column else [])
        lacking = [c for c in wanted if c not in columns]
        if lacking:
            raise DataError(f"{display_name(self.csv_path)}: no column(s) {lacking}; its columns are {columns}")
        if not self.rows:
            raise DataError(f"{display_name(self.csv_path)}: no rows")
        self.label_column = label_column
        self.classes = sorted({r[label_column] for r in self.rows}) if label_column else []
        self._class_index = {c: i for i, c in enumerate(self.classes)}
        super().__init__(file_channels=channels, **kwargs)

    def __len__(self) -> int:
        return len(self.rows)

    def name(self, index: int) -> str:
        return f"{display_name(self.csv_path)} row {index + 2}"

    def label(self, index: int) -> int:
        return self._class_index[self.rows[index][self.label_column]] if self.label_column else -1

    def _path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.root / p

    def read_raw(self, index: int) -> np.ndarray:
        """Only the `use` channels are read; the others stay zero."""
        row = self.rows[index]
        planes: dict[int, np.ndarray] = {}
        first: tuple[str, tuple[int, ...]] | None = None
        for pos in self.positions:
            name = self.file_channels[pos]
            path = self._path(row[name])
            plane = read_channel_image(path, name)
            if first is None:
                first = (f"{name!r} ({display_name(path)})", plane.shape)
            elif plane.shape != first[1]:
                raise DataError(
                    f"{display_name(path)}: channel {name!r} is {plane.shape[0]}×{plane.shape[1]} but channel "
                    f"{first[0]} of the same sample ({self.name(index)}) is {first[1][0]}×{first[1][1]}"
                )
            planes[pos] = plane
        assert first is not None
        out = np.zeros((len(self.file_channels), *first[1]), dtype=np.float32)
        for pos, plane in planes.items():
            out[pos] = plane
        return out


def synthetic_stacks(n: int, channels: int, size: int, *, num_classes: int = 2, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    """Random C×size×size stacks whose class sets the spatial frequency of the first channel (tests)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(n):
        label = i % num_classes
        stack = rng.normal(0, 0.3, (channels, size, size)).astype(np.float32)
        stack[0] += np.sin(2 * math.pi * (label + 1) * 2 * xx).astype(np.float32)
        for k in range(1, channels):
            stack[k] += (k * yy).astype(np.float32)
        out.append((stack * 100 + 500, label))
    return out

