"""Videos on disk as a dataset: video files (decord) and folders of extracted frames.

Inputs:
- a folder, searched recursively, of video files (.mp4, .webm, .avi, .mkv, .mov) and/or frame
  folders (a folder holding `img_XXXXX.jpg` frames is one video); one first-level sub-folder per
  class (`layout="classes"`) or unlabeled (`"flat"`), as `ImageFiles`;
- a list file (Kinetics / Something-Something style): one video per line, `path label`
  (whitespace; extra middle fields such as a frame count are ignored) or CSV `path,label` (a
  header row is skipped); relative paths are resolved against `prefix`;
- one video file or one frame folder.

Items: `(clip, label)` with `clip` C×T×S×S normalized. With `num_sample = k > 1` (VideoMAE V2's
repeated sampling, pretraining) `k×C×T×S×S`: the frames of one item are sampled and decoded once
and cropped k times; `collate_x` concatenates the clips along the batch (B·k clips, `inputs_per_item`
= k) and `SeededSamples.collate` gives each clip its own mask seed. With evaluation views `V×C×T×S×S` and `num_views = V`
(multi-view testing: `evaluate_classifier` averages each item's V predictions).

Cache (`run.cache`, `datasets.cache`): without it each item decodes only its clip's frames; with
it every video is decoded whole once (its size for `run.cache=auto` is read from the file's
frame count and first frame, not by decoding) and the clips are sampled from memory: the same
frames, so the same items.

Errors: an unreadable, empty or too short video raises `VideoError` naming the file (as
`display_name` shows it); with `on_error="skip"` it is replaced by the next readable item and
counted (`skipped`, `skip_report`), across DataLoader workers; evaluation drops it from its scores
(`skipped_indices`). File names that are not UTF-8 open too: decord encodes paths as UTF-8, so such
a file is opened through a temporary link with a UTF-8 name (removed once FFmpeg holds the file).
"""

from __future__ import annotations

import csv
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.cache import DecodeCache
from anymae.datasets.contract import SampleDataset
from anymae.extras import require
from anymae.datasets.scan import Layout, display_name, extension_filter, scan_layout, walk_files
from anymae.datasets.skips import CountsSkips, DataError, Skips, file_problem, reason
from anymae.datasets.video.sampling import dense_test_indices, dense_train_indices, segment_test_indices, segment_train_indices
from anymae.datasets.video.transforms import (
    PRETRAIN_SCALES,
    multi_scale_crop,
    normalize,
    random_resized_crop_flip,
    short_side_crops,
    to_float_clip,
)

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".avi", ".mkv", ".mov")
FRAME_PATTERN = "img_{:05d}.jpg"
Mode = Literal["pretrain", "finetune", "test"]
Sampling = Literal["dense", "segment"]


class VideoError(DataError):
    """A video cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoItem:
    path: Path
    label: int


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.name.startswith("img_") and p.suffix == ".jpg" for p in path.iterdir())


def frame_files(folder: Path) -> list[Path]:
    """The `img_*.jpg` frames of a frame folder, in frame order."""
    return sorted(p for p in folder.iterdir() if p.name.startswith("img_") and p.suffix == ".jpg")


@contextmanager
def utf8_path(path: Path) -> Iterator[str]:
    """`path` as a string that encodes to UTF-8: itself, or for a name that is not UTF-8 a temporary
    link with a UTF-8 name to the same file (removed when the block ends)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield text
        return
    suffix = path.suffix if path.suffix.isascii() else ""
    with tempfile.TemporaryDirectory(prefix="anymae-video-") as folder:
        link = os.path.join(folder, "video" + suffix)
        os.symlink(os.path.abspath(os.fsencode(path)), link)
        yield link


class VideoReader:
    """Random access to the frames of one video file (decord) or frame folder (PIL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = display_name(path)
        if path.is_dir():
            self._frames = frame_files(path)
            self._vr = None
            self.num_frames = len(self._frames)
            if self.num_frames == 0:
                raise VideoError(f"cannot read video {self.name}: a folder with no img_XXXXX.jpg frames")
            return
        decord = require("decord", "video", purpose="decoding video files")
        problem = file_problem(path)
        if problem is None and path.stat().st_size == 0:
            problem = "is empty (0 bytes)"
        if problem is not None:
            raise VideoError(f"video {self.name} {problem}")
        try:
            with utf8_path(path) as openable:  # FFmpeg keeps the file open: the link may go
                self._vr = decord.VideoReader(openable, num_threads=1, ctx=decord.cpu(0))
            self.num_frames = len(self._vr)
        except Exception as err:
            raise VideoError(f"cannot read video {self.name}: {reason(err)}") from err
        if self.num_frames == 0:
            raise VideoError(f"cannot read video {self.name}: it has no frames")

    def frame_bytes(self) -> int:
        """Bytes of one decoded frame (H·W·3), read from the first frame's size (a frame folder's
        header, or one decoded frame of a file)."""
        try:
            if self._vr is None:
                from PIL import Image

                with Image.open(self._frames[0]) as first:
                    width, height = first.size
            else:
                height, width = self._vr[0].shape[:2]
        except Exception as err:
            raise VideoError(f"cannot read the first frame of video {self.name}: {reason(err)}") from err
        return height * width * 3

    def get(self, indices: Sequence[int]) -> Tensor:
        """Frames at `indices` -> T×H×W×3 uint8."""
        try:
            if self._vr is None:
                from PIL import Image

                arrays = [np.asarray(Image.open(self._frames[i]).convert("RGB")) for i in indices]
                return torch.from_numpy(np.stack(arrays))
            self._vr.seek(0)
            return torch.from_numpy(self._vr.get_batch(list(indices)).asnumpy())
        except Exception as err:
            raise VideoError(f"cannot decode frames {list(indices)[:4]}... of video {self.name}: {reason(err)}") from err


class HeldFrames:
    """A video decoded whole and held in memory (`run.cache`), read like a `VideoReader`."""

    def __init__(self, frames: Tensor, name: str) -> None:
        self.frames, self.name, self.num_frames = frames, name, frames.shape[0]  # frames: N×H×W×3 uint8

    def get(self, indices: Sequence[int]) -> Tensor:
        """Frames at `indices` -> T×H×W×3 uint8 (a new tensor: the held frames stay unchanged)."""
        return self.frames[torch.as_tensor(list(indices), dtype=torch.long)]


def read_list_file(list_file: str | Path, prefix: str | Path | None = None) -> list[VideoItem]:
    """`path label` lines (whitespace or CSV; middle fields ignored; a CSV header skipped).

    Raises:
        DataError: naming the list file: unreadable, not UTF-8 text, a bad line, or no videos.
    """
    list_file = Path(list_file)
    name = display_name(list_file)
    base = Path(prefix) if prefix else list_file.parent
    problem = file_problem(list_file)
    if problem is not None:
        raise DataError(f"list file {name} {problem}")
    try:
        text = list_file.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(
            f"{name} is no list file (not UTF-8 text): expected lines 'path label', or a video with one "
            f"of the extensions {', '.join(VIDEO_EXTENSIONS)}"
        ) from None
    if list_file.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(text) if r]
    else:
        rows = [line.split() for line in text if line.strip() and not line.lstrip().startswith("#")]
    items = []
    for n, row in enumerate(rows, 1):
        label = row[-1].strip() if len(row) > 1 else "-1"
        try:
            value = int(label)
        except ValueError:
            if n == 1:
                continue  # a header row
            raise DataError(f"{name}, line {n}: expected 'path label' with an integer label, got {row!r}") from None
        p = Path(row[0].strip())
        items.append(VideoItem(p if p.is_absolute() else base / p, value))
    if not items:
        raise DataError(f"list file {name} holds no videos (expected lines 'path label')")
    return items


def scan_videos(root: str | Path, layout: Layout = "auto") -> tuple[list[str], list[VideoItem]]:
    """(classes, items) for a video file, a frame folder, or a folder of them (see module doc).

    Raises:
        DataError: naming the root: missing (or a broken link), no videos under it, or a list
            file that cannot be read; a layout that does not fit (`scan_layout`'s rules).
    """
    root = Path(root)
    if not root.exists():
        kind = "is a dangling or looping link" if root.is_symlink() else "does not exist"
        raise DataError(f"video root {display_name(root)} {kind}")
    if root.is_file() and root.suffix.lower() not in VIDEO_EXTENSIONS:
        return [], read_list_file(root)
    if root.is_file() or _is_frame_folder(root):
        return [], [VideoItem(root, -1)]
    found = walk_files(
        root, extension_filter(VIDEO_EXTENSIONS),
        stop_dir=lambda d, names: any(f.startswith("img_") and f.endswith(".jpg") for f in names),
    ).files
    if not found:
        raise DataError(
            f"no videos under {display_name(root)} (extensions {', '.join(VIDEO_EXTENSIONS)}, or folders of img_*.jpg)"
        )
    try:
        classes, samples = scan_layout(root, found, layout, what="video")
    except ValueError as err:
        raise DataError(str(err)) from None
    return classes, [VideoItem(p, label) for p, label in samples]


class VideoClips(CountsSkips, Dataset, SampleDataset):
    """Clips of videos (see the module doc for inputs, items and errors).

    Args:
        items: the videos and labels.
        mode: "pretrain" (multi-scale crop, no flip), "finetune" (random resized crop + flip) or
            "test" (short-side resize and crops; `num_clips` × `num_crops` views).
        num_frames: T, frames per clip.
        sampling_rate: frame step of dense sampling (Kinetics 4, SSv2 2).
        sampling: "dense" (VideoMAE pretraining / Kinetics) or "segment" (SSv2: one frame per segment).
        img_size: output side S.
        num_sample: clips per video per item (pretraining; VideoMAE V2 uses 4).
        num_clips, num_crops: evaluation views (VideoMAE's Kinetics test: 5 × 3).
        scales: multi-scale crop scales.
        mean, std: normalization.
        min_frames: fewer frames is an error (too short); default `num_frames`.
        on_error: "raise" or "skip".
    """

    def __init__(
        self,
        items: Sequence[VideoItem],
        *,
        mode: Mode = "pretrain",
        num_frames: int = 16,
        sampling_rate: int = 4,
        sampling: Sampling = "dense",
        img_size: int = 224,
        num_sample: int = 1,
        num_clips: int = 1,
        num_crops: int = 1,
        scales: Sequence[float] = PRETRAIN_SCALES,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        min_frames: int | None = None,
        on_error: str = "raise",
        classes: Sequence[str] = (),
    ) -> None:
        if mode not in ("pretrain", "finetune", "test"):
            raise ValueError(f"mode={mode!r}: expected 'pretrain', 'finetune' or 'test'")
        if sampling not in ("dense", "segment"):
            raise ValueError(f"sampling={sampling!r}: expected 'dense' or 'segment'")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error={on_error!r}: expected 'raise' or 'skip'")
        if min(num_frames, sampling_rate, img_size, num_sample, num_clips, num_crops) < 1:
            raise ValueError("num_frames, sampling_rate, img_size, num_sample, num_clips, num_crops must be >= 1")
        if not items:
            raise ValueError("no videos given")
        self.items = list(items)
        self.mode, self.num_frames, self.rate, self.sampling = mode, num_frames, sampling_rate, sampling
        self.img_size, self.num_sample, self.scales = img_size, num_sample, tuple(scales)
        self.num_clips, self.num_crops = num_clips, num_crops
        self.mean, self.std = tuple(mean), tuple(std)
        self.min_frames = num_frames if min_frames is None else min_frames
        self.on_error = on_error
        self.classes = list(classes)
        self._skips = Skips(len(self.items), "video", "VideoClips", on_error)
        self.decode_cache = DecodeCache(self._decode, len(self.items), f"VideoClips({len(self.items)} videos)",
                                        size_of=self._decoded_bytes)  # fmt: skip

    @property  # type: ignore[override]
    def num_views(self) -> int:
        """Views per evaluation item (1 outside test mode)."""
        return self.num_clips * self.num_crops if self.mode == "test" else 1

    @property  # type: ignore[override]
    def inputs_per_item(self) -> int:
        """Clips per training item (`num_sample`; 1 in test mode): `collate_x` concatenates them."""
        return 1 if self.mode == "test" else self.num_sample

    @property  # type: ignore[override]
    def labels(self) -> list[int]:
        return [item.label for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def _open(self, j: int) -> VideoReader:
        """Video j's reader; a video shorter than `min_frames` is a `VideoError`."""
        reader = VideoReader(self.items[j].path)
        if reader.num_frames < self.min_frames:
            raise VideoError(
                f"video {reader.name} is too short: {reader.num_frames} frames, at least {self.min_frames} needed "
                "(data.min_frames)"
            )
        return reader

    def _decode(self, j: int) -> Tensor:
        """Video j decoded whole, N×H×W×3 uint8: what `run.cache` holds (the clips are sampled from it)."""
        reader = self._open(j)
        return reader.get(range(reader.num_frames))

    def _decoded_bytes(self, j: int) -> int:
        """Bytes video j takes decoded whole (frame count × one frame), for `run.cache=auto`."""
        reader = self._open(j)
        return reader.num_frames * reader.frame_bytes()

    def _train_clips(self, reader: VideoReader | HeldFrames) -> list[Tensor]:
        """`num_sample` clips: the frames are sampled and decoded once, each clip is cropped anew
        (VideoMAE V2's repeated sampling applies the transform k times to the same frames)."""
        n = reader.num_frames
        ids = dense_train_indices(n, self.num_frames, self.rate) if self.sampling == "dense" else \
            segment_train_indices(n, self.num_frames)  # fmt: skip
        frames = to_float_clip(reader.get(ids))  # C×T×H×W
        crop = multi_scale_crop if self.mode == "pretrain" else random_resized_crop_flip
        args = (self.scales,) if self.mode == "pretrain" else ()
        return [normalize(crop(frames, self.img_size, *args), self.mean, self.std) for _ in range(self.num_sample)]

    def _test_views(self, reader: VideoReader | HeldFrames) -> Tensor:
        n = reader.num_frames
        windows = dense_test_indices(n, self.num_frames, self.rate, self.num_clips) if self.sampling == "dense" else \
            segment_test_indices(n, self.num_frames, self.num_clips)  # fmt: skip
        views = [
            normalize(crop, self.mean, self.std)
            for ids in windows
            for crop in short_side_crops(to_float_clip(reader.get(ids)), self.img_size, self.num_crops)
        ]
        return torch.stack(views)  # V×C×T×S×S

    def _load(self, j: int) -> tuple[Tensor, int]:
        item = self.items[j]
        cache = self.decode_cache
        held = cache.enabled and j in cache  # decoded whole once; else only the sampled frames are decoded
        reader = HeldFrames(cache(j, copy=False), display_name(item.path)) if held else self._open(j)
        if self.mode == "test":
            views = self._test_views(reader)
            return (views[0] if self.num_views == 1 else views), item.label
        clips = self._train_clips(reader)
        return (clips[0] if self.num_sample == 1 else torch.stack(clips)), item.label

    def item_name(self, index: int) -> str:
        """Item `index`'s name in the skip report."""
        return display_name(self.items[index].path)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self._skips.get(index, self._load)

    def collate_x(self, xs: list[Tensor]) -> Tensor:
        """Clips -> B×C×T×S×S; k clips per item (num_sample) -> (B·k)×C×T×S×S; views -> B×V×C×T×S×S."""
        if self.inputs_per_item > 1:
            return torch.cat(xs, dim=0)  # item-major: clips of item i at rows i·k ... i·k + k - 1
        return torch.stack(xs)


