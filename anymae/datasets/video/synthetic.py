"""Synthetic moving-shape videos for tests and demos, and a small video-file writer (PyAV).

`moving_square` draws a bright square on a dark textured background moving in one of four
directions; the direction is the class. `SyntheticVideos` serves such clips normalized like
real data; `write_video` encodes frames to mp4 (h264), webm (vp9), avi (mpeg4) or mkv (h264)
so tests can make real files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset
from anymae.extras import require
from anymae.datasets.video.transforms import normalize

DIRECTIONS: tuple[tuple[int, int], ...] = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx): right, left, down, up
CODECS: dict[str, str] = {".mp4": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4", ".mkv": "libx264"}


def moving_square(num_frames: int, size: int, direction: int, rng: np.random.Generator) -> np.ndarray:
    """T×size×size×3 uint8 frames of a square moving `DIRECTIONS[direction]` by ~size/(2T) px per frame."""
    side = max(2, size // 4)
    y, x = rng.integers(0, size - side, size=2)
    colour = rng.integers(150, 256, size=3)
    background = rng.integers(0, 60, size=(size, size, 3))
    dy, dx = DIRECTIONS[direction]
    speed = max(1, size // (2 * num_frames))
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        frame = background.copy()
        top = int(np.clip(y + dy * speed * t, 0, size - side))
        left = int(np.clip(x + dx * speed * t, 0, size - side))
        frame[top : top + side, left : left + side] = colour
        frames[t] = frame
    return frames


class SyntheticVideos(Dataset, SampleDataset):
    """`n` moving-square clips, label = direction (4 classes), normalized C×T×S×S items."""

    def __init__(
        self,
        n: int = 64,
        *,
        num_frames: int = 8,
        size: int = 32,
        seed: int = 0,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
    ) -> None:
        rng = np.random.default_rng(seed)
        self.labels = [int(i % len(DIRECTIONS)) for i in range(n)]
        frames = np.stack([moving_square(num_frames, size, lab, rng) for lab in self.labels])  # n×T×S×S×3
        clips = torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float() / 255.0  # n×3×T×S×S
        self.clips = torch.stack([normalize(c, mean, std) for c in clips])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.clips[index], self.labels[index]


def write_video(path: str | Path, frames: np.ndarray, fps: int = 8) -> Path:
    """Encode T×H×W×3 uint8 frames (H, W even) with the codec of the file's extension (`CODECS`).

    Import `av` before `decord` in a process that writes webm: once decord's bundled FFmpeg
    libraries are loaded, PyAV cannot open the vpx encoders.
    """
    av = require("av", "video", purpose="writing video files")
    path = Path(path)
    codec = CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"cannot write {path}: extension must be one of {', '.join(CODECS)}")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
