"""Fuzz: the kinds of bad input (`bad_inputs.KINDS`) that apply to audio-visual clips.

Each bad clip gives a one-line `DataError` naming it, or, in `AudioVisualClips` with
on_error="skip", one counted skip blamed on it while every good clip loads. Added kinds of this
reader: a clip without a sound track (the reference crashes on such VGGSound / K400 videos) and a
container without a picture (a WAV under a video extension). NaN/Inf and declared-size bombs do
not apply: the decoders produce bounded 8-bit frames and the sound is read up to the frontend's
span (a NaN float track is refused by `read_track`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
sf = pytest.importorskip("soundfile")

from anymae.datasets.audiovisual.files import AudioVisualClips, CavFrontend
from anymae.datasets.audiovisual.synthetic import av_example, write_av_clip
from anymae.datasets.scan import display_name
from tests.fuzz.bad_inputs import (
    assert_named_error,
    make_dangling_link,
    make_dir_named_like_file,
    make_link_loop,
    non_utf8_path,
    write_empty,
    write_random,
    write_truncated,
)

pytestmark = pytest.mark.timeout(60)


def _clip(path: Path, seed: int = 0, sound: bool = True) -> Path:
    frames, wave = av_example(seed % 2, 2, np.random.default_rng(seed), num_frames=4, size=32, seconds=0.5)
    return write_av_clip(path, frames, wave if sound else None)


def _audio_only(path: Path) -> Path:
    sf.write(path.with_suffix(".wav"), np.zeros(8000, np.float32), 16000)
    os.rename(path.with_suffix(".wav"), path)
    return path


# kind -> (name, maker(folder, name) -> path, words the error must hold)
BROKEN: dict[str, tuple[str, Callable[[Path, str], Path], str]] = {
    "empty": ("e.mp4", lambda d, n: write_empty(d / n), "is empty (0 bytes)"),
    "truncated": ("t.mp4", lambda d, n: write_truncated(_clip(d / "whole.mp4"), d / n), "cannot read video"),
    "random_bytes": ("r.mp4", lambda d, n: write_random(d / n), "cannot read video"),
    "wrong_extension": ("sound.mp4", lambda d, n: _audio_only(d / n), "has no video stream"),
    "no_audio_track": ("mute.mp4", lambda d, n: _clip(d / n, sound=False), "has no audio track"),
    "symlink_loop": ("loop.mp4", make_link_loop, "is a looping symbolic link"),
    "dangling_link": ("gone.mp4", make_dangling_link, "is a dangling symbolic link"),
    "unreadable": ("dir.mp4", make_dir_named_like_file, "is a directory"),
    "non_utf8_name": ("", lambda d, n: write_random(non_utf8_path(d, ".mp4")), "video"),
}


def _clips(samples: list[tuple[Path, int]], on_error: str = "raise") -> AudioVisualClips:
    return AudioVisualClips(samples, CavFrontend(num_mel_bins=16, target_length=32), img_size=16, on_error=on_error)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_bad_clip_is_a_named_one_line_error(tmp_path: Path, kind: str) -> None:
    name, make, words = BROKEN[kind]
    bad = make(tmp_path, name)
    message = assert_named_error(lambda: _clips([(bad, 0)])[0], bad)
    assert words in message


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_bad_clip_is_one_counted_skip_blamed_on_it(tmp_path: Path, kind: str) -> None:
    name, make, _ = BROKEN[kind]
    good = [_clip(tmp_path / f"good_{i}.mp4", seed=i) for i in range(2)]
    bad = make(tmp_path, name)
    data = _clips([(good[0], 0), (bad, 1), (good[1], 0)], on_error="skip")
    items = [data[i][0] for i in range(3)]
    assert [(x["audio"].shape, x["video"].shape) for x in items] == [((1, 32, 16), (3, 16, 16))] * 3
    assert data.skipped_indices() == [1] and data.skipped() == 1
    assert data.skip_report().endswith(f"1 unusable video(s) of 3: {display_name(bad)}")
