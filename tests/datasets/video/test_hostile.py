"""Video readers on hostile names and paths: non-UTF-8 names open, messages show them escaped."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("av")  # before decord: decord's bundled libraries break PyAV's vpx encoders
pytest.importorskip("decord")

from anymae.datasets.scan import display_name
from anymae.datasets.sources import build_dataset
from anymae.datasets.video.files import VideoClips, VideoError, VideoReader, scan_videos, utf8_path
from anymae.datasets.video.synthetic import moving_square, write_video
from tests.fuzz.bad_inputs import non_utf8_path, write_random


def test_a_video_whose_name_is_not_utf8_decodes_like_its_utf8_twin(tmp_path: Path) -> None:
    frames = moving_square(12, 32, 1, np.random.default_rng(0))
    twin = write_video(tmp_path / "twin.mp4", frames)
    odd = non_utf8_path(tmp_path, ".mp4")
    os.link(twin, odd)  # same bytes, a name decord's UTF-8 path handling refused
    a, b = VideoReader(twin), VideoReader(odd)
    assert a.num_frames == b.num_frames == 12
    assert np.array_equal(a.get([0, 5, 11]).numpy(), b.get([0, 5, 11]).numpy())
    assert sorted(os.listdir(os.fsencode(tmp_path))) == sorted([b"twin.mp4", os.fsencode(odd.name)])  # no link left
    data = build_dataset({"source": "video_files", "root": str(odd)}, split="test",
                         model_config={"num_frames": 4, "img_size": 32})
    assert data[0][0].shape == (3, 4, 32, 32)


def test_the_temporary_utf8_link_is_removed_after_use(tmp_path: Path) -> None:
    odd = write_random(non_utf8_path(tmp_path, ".mp4"))
    with utf8_path(odd) as text:
        text.encode("utf-8")  # encodable
        link = Path(text)
        assert link.is_symlink() and os.path.samefile(link, odd)
    assert not link.exists() and not link.parent.exists()
    with utf8_path(tmp_path / "plain.mp4") as text:
        assert text == str(tmp_path / "plain.mp4")


def test_errors_show_undecodable_names_escaped(tmp_path: Path) -> None:
    odd = write_random(non_utf8_path(tmp_path, ".mp4"))
    data = VideoClips(scan_videos(odd)[1], num_frames=4, img_size=32)
    with pytest.raises(VideoError, match=r"^cannot read video .*clip_\\xff\\xfe\.mp4: ") as info:
        data[0]
    assert "\n" not in str(info.value) and display_name(odd) in str(info.value)


def test_a_frame_folder_with_an_undecodable_name_is_one_video(tmp_path: Path) -> None:
    folder = non_utf8_path(tmp_path / "flat", "")
    folder.mkdir(parents=True)
    for t, frame in enumerate(moving_square(6, 32, 0, np.random.default_rng(1))):
        Image.fromarray(frame).save(folder / f"img_{t + 1:05d}.jpg")
    write_video(tmp_path / "flat" / "v.mp4", moving_square(6, 32, 0, np.random.default_rng(1)))
    classes, items = scan_videos(tmp_path / "flat")
    assert classes == [] and sorted(i.path.name for i in items) == sorted([folder.name, "v.mp4"])
    data = VideoClips(items, num_frames=4, img_size=32, on_error="skip")
    assert [data[i][0].shape for i in range(2)] == [(3, 4, 32, 32)] * 2 and data.skipped() == 0
