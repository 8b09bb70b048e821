"""Small folders of every shardable source (written once per session) and helpers shared by the shard tests."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from anymae.datasets.image.synthetic import write_image_folder


@dataclass
class FolderSet:
    """A folder source: its data section, and the model config values it decodes with."""

    section: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)


def same(a: Any, b: Any) -> bool:
    """Exact equality of items: tensors bitwise, dataclasses (ChannelStack) field by field, else ==."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(same(getattr(a, k), getattr(b, k)) for k in a.__dataclass_fields__)
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def _image(root: Path) -> FolderSet:
    write_image_folder(root, 3, 2, size=20, fmt="jpg")
    Image.fromarray(np.full((18, 22, 3), 90, np.uint8)).save(root / "class_1" / "extra.png")
    return FolderSet({"source": "image_folder", "root": str(root), "img_size": 16})


def _video(root: Path) -> FolderSet:
    pytest.importorskip("av")  # before decord (see video.synthetic.write_video)
    pytest.importorskip("decord")
    from anymae.datasets.video.synthetic import moving_square, write_video

    rng = np.random.default_rng(0)
    for cls, names in {"a": ["v1.mp4", "v2.avi"], "b": ["v3.mp4"]}.items():
        (root / cls).mkdir(parents=True)
        for i, name in enumerate(names):
            write_video(root / cls / name, moving_square(10, 32, i, rng))
    frames = root / "b" / "v4"
    frames.mkdir()
    for t, frame in enumerate(moving_square(10, 32, 3, rng)):
        Image.fromarray(frame).save(frames / f"img_{t + 1:05d}.jpg")
    return FolderSet({"source": "video_files", "root": str(root), "num_frames": 4, "img_size": 16,
                      "sampling_rate": 2})  # fmt: skip


_AUDIO = {"num_mel_bins": 16, "target_length": 24}


def _audio_folder(root: Path) -> FolderSet:
    pytest.importorskip("soundfile")
    pytest.importorskip("torchaudio")
    from anymae.datasets.audio.synthetic import write_audio_folder

    write_audio_folder(root, 2, ("tone", "noise"), fmt="flac", seconds=0.3)
    return FolderSet({"source": "audio_folder", "root": str(root), "roll_mag_aug": True, **_AUDIO})


def _audio_csv(root: Path) -> FolderSet:
    pytest.importorskip("soundfile")
    pytest.importorskip("torchaudio")
    from anymae.datasets.audio.synthetic import write_audio_folder, write_audioset_csv

    write_audio_folder(root, 2, ("tone", "chirp"), fmt="wav", seconds=0.3)
    labels = {"tone/tone_0.wav": ["/m/a"], "tone/tone_1.wav": ["/m/a", "/m/c"], "chirp/chirp_0.wav": ["/m/b"],
              "chirp/chirp_1.wav": []}  # fmt: skip
    table, classes = write_audioset_csv(root, labels, ["/m/a", "/m/b", "/m/c"])
    return FolderSet({"source": "audio_csv", "csv": str(table), "class_index_csv": str(classes), **_AUDIO})


def _points(root: Path) -> FolderSet:
    pytest.importorskip("open3d")
    from anymae.datasets.points.synthetic import synthetic_shape, write_cloud

    rng = np.random.default_rng(0)
    for cls, kinds in {"cube": ("ply", "npy"), "sphere": ("xyz", "txt")}.items():
        for i, ext in enumerate(kinds):
            write_cloud(root / cls / f"{cls}{i}.{ext}", synthetic_shape(cls, 200, rng))
    return FolderSet({"source": "point_files", "root": str(root), "num_points": 32}, {"group_size": 8})


def _stacks(root: Path) -> FolderSet:
    pytest.importorskip("tifffile")
    from anymae.datasets.multichannel.io import write_stack

    rng = np.random.default_rng(0)
    for cls in ("x", "y"):
        for i, ext in enumerate(("npy", "tif")):
            write_stack(root / cls / f"s{i}.{ext}", rng.normal(100, 20, (3, 12, 12)).astype(np.float32))
    return FolderSet({"source": "multichannel_files", "root": str(root), "channels": ["dna", "er", "rna"],
                      "img_size": 8})  # fmt: skip


def _channel_csv(root: Path) -> FolderSet:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    rows = []
    for i in range(4):
        names = []
        for c in ("dna", "rna"):
            name = f"{c}/well{i}.png"
            (root / c).mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (10, 10), dtype=np.uint8)).save(root / name)
            names.append(name)
        rows.append([*names, "treated" if i % 2 else "control"])
    with open(root / "plate.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dna", "rna", "condition"])
        w.writerows(rows)
    return FolderSet({"source": "multichannel_csv", "csv": str(root / "plate.csv"), "channels": ["dna", "rna"],
                      "label_column": "condition", "img_size": 8})  # fmt: skip


MAKERS = {"image": _image, "video": _video, "audio_folder": _audio_folder, "audio_csv": _audio_csv,
          "points": _points, "stacks": _stacks, "channel_csv": _channel_csv}  # fmt: skip


@pytest.fixture(scope="session")
def folder_sets(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], FolderSet]:
    """name -> a function making that folder set once (skips when its extra is missing)."""
    made: dict[str, FolderSet] = {}
    base = tmp_path_factory.mktemp("shard_folders")

    def get(name: str) -> FolderSet:
        if name not in made:
            made[name] = MAKERS[name](base / name)
        return made[name]

    return get
