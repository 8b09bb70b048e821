"""Video data sources for `data:` sections (imports without the video extra; readers load on use).

    data:
      source: video_files
      root: /data/k400/train.csv        # a list file, a folder of videos / frame folders, or one video
      sampling_rate: 4                  # Kinetics 4, SSv2 2 (with sampling: segment for SSv2 fine-tuning)
      num_sample: 4                     # VideoMAE V2 repeated sampling (pretraining)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.core.config import ConfigError
from anymae.datasets.sources import SOURCES


@dataclass
class VideoFilesSource:
    """Videos (mp4, webm, avi, mkv, mov via decord) or img_XXXXX.jpg frame folders: a folder, list file or one video.

    `num_frames` and `img_size` default to the model's. Pretraining: VideoMAE's multi-scale crop
    (no flip) on `num_sample` clips per decoded video; fine-tuning: random resized crop + flip;
    evaluation: `test_clips` x `test_crops` views (VideoMAE's Kinetics test: 5 x 3).
    """

    root: str
    prefix: str | None = None  # base folder of relative paths in a list file (default: the list's folder)
    layout: Literal["auto", "classes", "flat"] = "auto"
    num_frames: int | None = None
    img_size: int | None = None
    sampling_rate: int = 4
    sampling: Literal["dense", "segment"] = "dense"
    num_sample: int = 1
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    test_clips: int = 1
    test_crops: int = 1
    min_frames: int | None = None
    on_error: Literal["raise", "skip"] = "raise"


@dataclass
class SyntheticVideosSource:
    """Synthetic moving squares whose class is the direction of motion (tests and smoke runs)."""

    n: int = 64
    num_frames: int | None = None
    img_size: int | None = None
    seed: int = 0


def _geometry(cfg: Any, model_config: dict[str, Any]) -> tuple[int, int]:
    size = cfg.img_size if cfg.img_size is not None else model_config.get("img_size", 224)
    size = size if isinstance(size, int) else int(size[0])
    return int(cfg.num_frames if cfg.num_frames is not None else model_config.get("num_frames", 16)), size


@SOURCES.register("video_files", config=VideoFilesSource, modality="video", files={"layout": "flat"})
def _video_files(cfg: VideoFilesSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.video.files import VideoClips, read_list_file, scan_videos

    num_frames, size = _geometry(cfg, model_config)
    mode = "pretrain" if augment == "pretrain" else "finetune" if augment == "finetune" else "test"
    if cfg.num_sample > 1 and mode != "pretrain":
        raise ConfigError(
            f"data.num_sample={cfg.num_sample}: repeated sampling is for pretraining; set data.num_sample=1 "
            f"for the {split!r} split"
        )
    if cfg.prefix is not None:
        classes, items = [], read_list_file(cfg.root, cfg.prefix)
    else:
        classes, items = scan_videos(cfg.root, cfg.layout)
    return VideoClips(
        items, mode=mode, num_frames=num_frames, sampling_rate=cfg.sampling_rate, sampling=cfg.sampling,
        img_size=size, num_sample=cfg.num_sample if mode == "pretrain" else 1, num_clips=cfg.test_clips,
        num_crops=cfg.test_crops, scales=cfg.scales, mean=model_config.get("mean", (0.485, 0.456, 0.406)),
        std=model_config.get("std", (0.229, 0.224, 0.225)), min_frames=cfg.min_frames, on_error=cfg.on_error,
        classes=classes,
    )  # fmt: skip


@SOURCES.register("synthetic_videos", config=SyntheticVideosSource, modality="video")
def _synthetic_videos(cfg: SyntheticVideosSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.video.synthetic import SyntheticVideos

    num_frames, size = _geometry(cfg, model_config)
    seed = cfg.seed + (0 if split in ("train", "pretrain") else 1)
    return SyntheticVideos(cfg.n, num_frames=num_frames, size=size, seed=seed)
