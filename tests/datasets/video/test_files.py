"""Video data: sampling rules, transforms, real files in four containers, lists, frame folders, errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("av")  # before decord: decord's bundled libraries break PyAV's vpx encoders
pytest.importorskip("decord")

from anymae.core.config import ConfigError
from anymae.datasets.collate import collate_items
from anymae.datasets.seeding import SeededSamples, sample_seed
from anymae.datasets.sources import build_dataset
from anymae.datasets.video.files import VideoClips, VideoError, read_list_file, scan_videos
from anymae.datasets.video.sampling import (
    dense_test_indices,
    dense_train_indices,
    segment_test_indices,
    segment_train_indices,
)
from anymae.datasets.video.synthetic import moving_square, write_video
from anymae.datasets.video.transforms import fix_offsets, multi_scale_crop_box, short_side_crops


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """classes a/ (mp4, webm) and b/ (avi, mkv, a frame folder), 20 frames of 48×64 each."""
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    for cls, names in {"a": ["v1.mp4", "v2.webm"], "b": ["v3.avi", "v4.mkv"]}.items():
        (root / cls).mkdir()
        for i, name in enumerate(names):
            frames = np.concatenate([moving_square(20, 48, i, rng), moving_square(20, 48, i, rng)[:, :, :16]], 2)
            write_video(root / cls / name, frames)
    folder = root / "b" / "v5"
    folder.mkdir()
    for t, frame in enumerate(moving_square(20, 48, 2, rng)):
        Image.fromarray(frame).save(folder / f"img_{t + 1:05d}.jpg")
    return root


def test_dense_train_indices_follow_reference_rule() -> None:
    np.random.seed(0)
    for n, clip, rate in [(100, 16, 4), (40, 16, 4), (10, 16, 4), (64, 16, 4)]:
        ids = dense_train_indices(n, clip, rate)
        assert len(ids) == clip and 0 <= min(ids) and max(ids) < n
        steps = np.diff(ids)
        assert set(steps.tolist()) <= {0, rate}
        if n >= clip * rate:  # the whole span fits: strictly every `rate`-th frame
            assert (steps == rate).all()
        else:  # advances while offset + rate < n (1-based), then repeats the last frame
            assert ids[-1] >= n - 1 - rate and (steps[: int(np.argmin(steps))] == rate).all()
    assert dense_train_indices(10, 16, 4) == [0, 4, 8] + [8] * 13  # too short: start 0, stop advancing
    assert dense_train_indices(5, 4, 4) == [0, 0, 0, 0]  # the reference's `offset + rate < n` rule


def test_segment_and_test_indices() -> None:
    np.random.seed(1)
    ids = segment_train_indices(64, 16)
    assert [i // 4 for i in ids] == list(range(16))  # one frame in each 4-frame segment
    assert segment_train_indices(8, 16) == [0] * 16
    clips = dense_test_indices(100, 16, 4, 5)  # every 4th frame: 25 frames, windows at 0, 2, 4, 6, 9
    assert [c[0] for c in clips] == [0, 8, 16, 24, 36] and all(np.diff(c).tolist() == [4] * 15 for c in clips)
    assert dense_test_indices(100, 16, 4, 1)[0][0] == 16  # one clip: the centre window
    starts, centres = segment_test_indices(32, 16, 2)
    assert starts == list(range(0, 32, 2)) and centres == list(range(1, 32, 2))


def test_multi_scale_crop_box_matches_reference_choices() -> None:
    random.seed(0)
    boxes = {multi_scale_crop_box(320, 240, 224) for _ in range(300)}
    sizes = [int(240 * s) for s in (1, 0.875, 0.75, 0.66)]  # 240, 210, 180, 158; 210 is not within 3 of 224
    pairs = {(w, h) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= 1}
    assert {(w, h) for _, _, w, h in boxes} == pairs
    for left, top, w, h in boxes:
        assert (left, top) in fix_offsets(320, 240, w, h)
    crops = short_side_crops(torch.zeros(3, 2, 48, 96), 24, 3)
    assert [c.shape for c in crops] == [torch.Size([3, 2, 24, 24])] * 3


def test_scan_folder_list_files_and_frames(videos: Path, tmp_path: Path) -> None:
    classes, items = scan_videos(videos)
    assert classes == ["a", "b"] and [i.label for i in items] == [0, 0, 1, 1, 1]
    assert items[-1].path.name == "v5"  # a frame folder is one video
    (tmp_path / "train.txt").write_text("a/v1.mp4 0\nb/v3.avi 20 1\n")
    (tmp_path / "train.csv").write_text("path,label\na/v2.webm,3\n")
    listed = read_list_file(tmp_path / "train.txt", videos)
    assert [(i.path.name, i.label) for i in listed] == [("v1.mp4", 0), ("v3.avi", 1)]
    assert [(i.path.name, i.label) for i in read_list_file(tmp_path / "train.csv", videos)] == [("v2.webm", 3)]
    (tmp_path / "bad.txt").write_text("a/v1.mp4 0\na/v2.webm cat\n")
    with pytest.raises(ValueError, match="bad.txt, line 2"):
        read_list_file(tmp_path / "bad.txt", videos)


def test_clips_from_every_container(videos: Path) -> None:
    _, items = scan_videos(videos)
    data = VideoClips(items, mode="pretrain", num_frames=4, sampling_rate=2, img_size=32)
    for i in range(len(data)):
        clip, _ = data[i]
        assert clip.shape == (3, 4, 32, 32) and clip.dtype == torch.float32
        assert -2.2 < float(clip.min()) and float(clip.max()) < 2.7  # ImageNet-normalized pixels
    test = VideoClips(items, mode="test", num_frames=4, sampling_rate=2, img_size=32, num_clips=2, num_crops=3)
    views, _ = test[0]
    assert test.num_views == 6 and views.shape == (6, 3, 4, 32, 32)
    assert not torch.equal(views[0], views[2])  # left vs right crop of the 64-wide frames


def test_repeated_sampling_collates_k_clips_per_item(videos: Path) -> None:
    _, items = scan_videos(videos)
    data = VideoClips(items, mode="pretrain", num_frames=4, sampling_rate=2, img_size=32, num_sample=3)
    np.random.seed(0)
    random.seed(0)
    x, label = collate_items(data, [data[0], data[1]])
    assert x.shape == (6, 3, 4, 32, 32) and label.tolist() == [0, 0]
    assert not torch.equal(x[0], x[1])  # each clip its own crop (of the same decoded frames)
    assert data.inputs_per_item == 3 and data.labels == [item.label for item in items]
    seeded = SeededSamples(data, base_seed=5)
    *_, seeds = seeded.collate([seeded[0], seeded[1]])
    firsts = [sample_seed(5, 0, i) for i in (0, 1)]
    assert seeds.tolist() == [sample_seed(s, 0, j) for s in firsts for j in range(3)]  # one mask seed per clip
    test = VideoClips(items, mode="test", num_frames=4, sampling_rate=2, img_size=32, num_sample=3, num_clips=2)
    assert test.inputs_per_item == 1 and test.num_views == 2


def test_errors_name_the_file_and_skips_are_counted(videos: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00not a video" * 200)
    write_video(tmp_path / "short.mp4", moving_square(3, 32, 0, np.random.default_rng(0)))
    for name in ("empty.mp4", "corrupt.mp4", "short.mp4"):
        data = VideoClips(scan_videos(tmp_path / name)[1], num_frames=4, img_size=32)
        with pytest.raises(VideoError, match=name):
            data[0]
    _, good = scan_videos(videos)
    mixed = scan_videos(tmp_path)[1] + good[:1]
    data = VideoClips(mixed, num_frames=4, img_size=32, on_error="skip")
    clip, label = data[0]
    assert clip.shape == (3, 4, 32, 32) and label == 0
    assert data.skipped() == 3 and "short.mp4" in data.skip_report()


def test_sources_and_num_sample_only_for_pretraining(videos: Path) -> None:
    section = {"source": "video_files", "root": str(videos), "sampling_rate": 2, "num_sample": 2}
    cfg = {"num_frames": 4, "img_size": 32}
    data = build_dataset(section, split="pretrain", model_config=cfg)
    assert data[0][0].shape == (2, 3, 4, 32, 32)
    with pytest.raises(ConfigError, match="num_sample"):
        build_dataset(section, split="train", augment="finetune", model_config=cfg)
    test = build_dataset({**section, "num_sample": 1, "test_clips": 2}, split="test", model_config=cfg)
    assert test.num_views == 2 and test[4][0].shape == (2, 3, 4, 32, 32)
    syn = build_dataset({"source": "synthetic_videos", "n": 8}, split="train", model_config=cfg)
    assert syn[1][0].shape == (3, 4, 32, 32) and syn[1][1] == 1
