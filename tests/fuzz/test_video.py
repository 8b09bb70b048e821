"""Fuzz: every kind of bad input (`bad_inputs.KINDS`) that applies to video, fed to the readers and datasets.

Each bad video gives a one-line `VideoError` naming it, or, in `VideoClips` with on_error="skip",
one counted skip blamed on it (its index, its name in the report) while every good video loads.
NaN/Inf and declared-size bombs do not apply: FFmpeg decodes 8-bit frames and sizes what it reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("av")  # before decord: decord's bundled libraries break PyAV's vpx encoders
pytest.importorskip("decord")

from anymae.datasets.scan import display_name
from anymae.datasets.skips import DataError
from anymae.datasets.video.files import VideoClips, VideoError, VideoItem, scan_videos
from anymae.datasets.video.synthetic import moving_square, write_video
from tests.fuzz.bad_inputs import (
    assert_named_error,
    make_dangling_link,
    make_dir_named_like_file,
    make_escape_link,
    make_link_loop,
    non_utf8_path,
    write_empty,
    write_random,
    write_truncated,
)

pytestmark = pytest.mark.timeout(60)


def _video(path: Path, seed: int = 0) -> Path:
    return write_video(path, moving_square(8, 32, seed % 4, np.random.default_rng(seed)))


def _audio_only(path: Path) -> Path:
    """A container with no video stream: a WAV under a video extension (zero frames to decode)."""
    sf.write(path.with_suffix(".wav"), np.zeros(1600, np.float32), 16000)
    os.rename(path.with_suffix(".wav"), path)
    return path


def _empty_frame_folder(folder: Path, name: str) -> Path:
    """A folder given as a video (e.g. by a list file) that holds no img_XXXXX.jpg frames."""
    path = folder / name
    path.mkdir()
    (path / "notes.txt").write_text("frames were never extracted")
    return path


# kind -> (name, maker(folder, name) -> path, words the error must hold)
BROKEN: dict[str, tuple[str, Callable[[Path, str], Path], str]] = {
    "empty": ("e.mp4", lambda d, n: write_empty(d / n), "is empty (0 bytes)"),
    "truncated": ("t.mp4", lambda d, n: write_truncated(_video(d / "whole.mp4"), d / n), "cannot read video"),
    "random_bytes": ("r.mp4", lambda d, n: write_random(d / n), "cannot read video"),
    "wrong_extension": ("sound.mp4", lambda d, n: _audio_only(d / n), "cannot read video"),
    "zero_frames": ("no_frames", _empty_frame_folder, "a folder with no img_XXXXX.jpg frames"),
    "symlink_loop": ("loop.mp4", make_link_loop, "is a looping symbolic link"),
    "dangling_link": ("gone.mp4", make_dangling_link, "is a dangling symbolic link"),
    "unreadable": ("dir.mp4", make_dir_named_like_file, "a folder with no img_XXXXX.jpg frames"),
    "non_utf8_name": ("", lambda d, n: write_random(non_utf8_path(d, ".mp4")), "cannot read video"),
}


def _clips(items: list[VideoItem], on_error: str = "raise") -> VideoClips:
    return VideoClips(items, mode="test", num_frames=4, sampling_rate=1, img_size=32, on_error=on_error)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_bad_video_is_a_named_one_line_error(tmp_path: Path, kind: str) -> None:
    name, make, words = BROKEN[kind]
    bad = make(tmp_path, name)
    message = assert_named_error(lambda: _clips([VideoItem(bad, 0)])[0], bad, error=VideoError)
    assert words in message


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_bad_video_in_a_list_is_one_counted_skip_blamed_on_it(tmp_path: Path, kind: str) -> None:
    name, make, _ = BROKEN[kind]
    good = [_video(tmp_path / f"good_{i}.mp4", seed=i) for i in range(2)]
    bad = make(tmp_path, name)
    items = [VideoItem(good[0], 0), VideoItem(bad, 1), VideoItem(good[1], 0)]
    data = _clips(items, on_error="skip")
    clips = [data[i][0] for i in range(3)]
    assert [c.shape for c in clips] == [(3, 4, 32, 32)] * 3
    assert data.skipped_indices() == [1] and data.skipped() == 1
    assert data.skip_report() == f"VideoClips: skipped 1 unreadable video(s) of 3: {display_name(bad)}"


@pytest.mark.parametrize("kind", ["empty", "truncated", "random_bytes", "symlink_loop", "dangling_link"])
def test_a_scanned_folder_lists_bad_files_and_skips_them(tmp_path: Path, kind: str) -> None:
    name, make, _ = BROKEN[kind]
    root, scratch = tmp_path / "data", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    good = [_video(root / f"good_{i}.mp4", seed=i) for i in range(2)]
    bad = make(scratch, name)
    os.rename(bad, root / bad.name)  # links keep their (absolute) targets
    _, items = scan_videos(root)
    paths = [item.path for item in items]
    assert sorted(paths) == sorted([*good, root / bad.name])
    data = _clips(items, on_error="skip")
    assert all(data[i][0].shape == (3, 4, 32, 32) for i in range(3))
    assert data.skipped_indices() == [paths.index(root / bad.name)]


def test_links_out_of_the_root_and_looping_folders_add_no_videos(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    _video(root / "a.mp4")
    _video(outside / "stranger.mp4")
    make_escape_link(root, outside)
    (root / "self").symlink_to(root, target_is_directory=True)
    (root / "up").symlink_to(tmp_path, target_is_directory=True)
    assert [item.path.name for item in scan_videos(root)[1]] == ["a.mp4"]


def test_a_video_root_that_is_no_video_and_no_list_is_named(tmp_path: Path) -> None:
    assert_named_error(lambda: scan_videos(write_random(tmp_path / "clip.mp3")), tmp_path / "clip.mp3")
    assert_named_error(lambda: scan_videos(make_link_loop(tmp_path, "loop.mp4")), tmp_path / "loop.mp4")
    empty = tmp_path / "nothing"
    empty.mkdir()
    message = assert_named_error(lambda: scan_videos(empty), empty, error=DataError)
    assert message.startswith("no videos under")
