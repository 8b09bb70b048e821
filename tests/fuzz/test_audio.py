"""Fuzz: every kind of bad input (`bad_inputs.KINDS`) fed to the audio readers and the audio dataset.

Each bad file gives a one-line `DataError` naming it, or, in a dataset with on_error="skip", one
counted skip blamed on it (its index, its name in the report) while every good file still loads.
Kinds that are valid audio after all (a truncated WAV is its first samples; a FLAC named .wav is a
FLAC; a header that declares more frames than the file holds) must read exactly what is there.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from anymae.datasets.audio.files import Frontend, read_audio
from anymae.datasets.audio.synthetic import synth_clip
from anymae.datasets.scan import display_name
from anymae.datasets.sources import build_dataset
from tests.fuzz.bad_inputs import (
    assert_named_error,
    bounded_memory,
    make_dangling_link,
    make_dir_named_like_file,
    make_escape_link,
    make_link_loop,
    non_utf8_path,
    write_empty,
    write_random,
    write_truncated,
)

SMALL = {"num_mel_bins": 64, "target_length": 128}
pytestmark = pytest.mark.timeout(60)


def _tone(path: Path, seconds: float = 0.5, subtype: str | None = None) -> Path:
    sf.write(path, synth_clip("tone", seconds, 16000, np.random.default_rng(len(path.name))), 16000, subtype=subtype)
    return path


def _wav_header(path: Path, data: bytes, *, declared: int, channels: int = 1, sr: int = 16000) -> Path:
    """A 16-bit PCM WAV whose header declares `declared` data bytes, followed by `data`."""
    block = 2 * channels
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * block, block, 16)
    riff = min(36 + declared, 0xFFFFFFFF)
    path.write_bytes(b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + fmt + b"data"
                     + struct.pack("<I", declared) + data)  # fmt: skip
    return path


def _png(path: Path) -> Path:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(512))  # an image signature under an audio extension
    return path


def _odd_rate(path: Path) -> Path:
    sf.write(path, np.zeros(8000, np.float32), 44101)  # coprime with 16000 Hz: a huge exact filter bank
    return path


def _float_wav(path: Path, bad: float) -> Path:
    x = synth_clip("tone", 0.5, 16000, np.random.default_rng(0))
    x[100] = bad
    sf.write(path, x, 16000, subtype="FLOAT")
    return path


# kind -> (file name, maker(folder, name) -> path, words the error must hold)
BROKEN: dict[str, tuple[str, Callable[[Path, str], Path], str]] = {
    "empty": ("e.wav", lambda d, n: write_empty(d / n), "is empty (0 bytes)"),
    "truncated_flac": ("t.flac", lambda d, n: write_truncated(_tone(d / "whole.flac"), d / n), "cannot read audio"),
    "truncated_ogg": ("t.ogg", lambda d, n: write_truncated(_tone(d / "whole.ogg"), d / n), "cannot read audio"),
    "random_wav": ("r.wav", lambda d, n: write_random(d / n), "Format not recognised"),
    "random_flac": ("r.flac", lambda d, n: write_random(d / n), "Format not recognised"),
    "random_mp3": ("r.mp3", lambda d, n: write_random(d / n), "not a decodable audio stream"),
    "wrong_extension": ("png.wav", lambda d, n: _png(d / n), "Format not recognised"),
    "nan": ("nan.wav", lambda d, n: _float_wav(d / n, float("nan")), "holds NaN or infinite samples"),
    "inf": ("inf.wav", lambda d, n: _float_wav(d / n, float("inf")), "holds NaN or infinite samples"),
    "zero_size": ("z.wav", lambda d, n: _wav_header(d / n, b"", declared=0), "is empty (0 samples)"),
    "channel_bomb": ("c.wav", lambda d, n: _wav_header(d / n, bytes(64), declared=2**31, channels=1024),
                     "is empty (0 samples)"),
    "rate_bomb": ("odd.wav", lambda d, n: _odd_rate(d / n), "cannot be resampled"),
    "symlink_loop": ("loop.wav", make_link_loop, "is a looping symbolic link"),
    "dangling_link": ("gone.wav", make_dangling_link, "is a dangling symbolic link"),
    "directory": ("dir.wav", make_dir_named_like_file, "is a directory"),
    "non_utf8_name": ("", lambda d, n: write_random(non_utf8_path(d, ".wav")), "Format not recognised"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_bad_file_is_a_named_one_line_error(tmp_path: Path, kind: str) -> None:
    name, make, words = BROKEN[kind]
    bad = make(tmp_path, name)
    message = assert_named_error(lambda: Frontend(**SMALL)(bad), bad)
    assert words in message


@pytest.mark.parametrize("kind", sorted(set(BROKEN) - {"directory"}))  # a folder named x.wav is scanned into
def test_a_bad_file_in_a_folder_is_one_counted_skip_blamed_on_it(tmp_path: Path, kind: str) -> None:
    name, make, _ = BROKEN[kind]
    root, scratch = tmp_path / "data", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    good = [_tone(root / f"good_{i}.wav") for i in range(3)]
    bad = make(scratch, name)
    os.rename(os.fsencode(bad), os.fsencode(root / bad.name))  # links keep their (absolute) targets
    bad = root / bad.name
    data = build_dataset({"source": "audio_folder", "root": str(root), "on_error": "skip", **SMALL}, split="test")
    paths = [p for p, _ in data.samples]
    assert sorted(paths) == sorted([*good, bad])
    items = [data[i] for i in range(len(data))]
    assert all(x.shape == (1, 128, 64) and torch.isfinite(x).all() for x, _ in items)
    assert data.skipped_indices() == [paths.index(bad)]
    assert f"skipped 1 unusable audio file(s) of 4: {display_name(bad)}" in data.skip_report()


def test_a_truncated_wav_is_its_first_samples_not_garbage(tmp_path: Path) -> None:
    whole = _tone(tmp_path / "whole.wav", subtype="PCM_16")
    cut = write_truncated(whole, tmp_path / "cut.wav")
    n = (cut.stat().st_size - 44) // 2  # 16-bit samples after the 44-byte header
    full, _ = read_audio(whole)
    part, sr = read_audio(cut)
    assert sr == 16000 and part.shape == (1, n) and torch.equal(part, full[:, :n])


def test_wrong_extension_with_audio_inside_reads_the_content(tmp_path: Path) -> None:
    flac = _tone(tmp_path / "real.flac")
    os.rename(flac, tmp_path / "named.wav")
    assert torch.equal(read_audio(tmp_path / "named.wav")[0], read_audio(_tone(tmp_path / "real.flac"))[0])


def test_a_header_declaring_four_gigabytes_reads_what_is_there_in_bounded_memory(tmp_path: Path) -> None:
    samples = (np.arange(1000) % 100).astype(np.int16)
    bomb = _wav_header(tmp_path / "bomb.wav", samples.tobytes(), declared=0xFFFFFFF0)
    with bounded_memory(2):
        wave, sr = read_audio(bomb)
        x = Frontend(**SMALL)(bomb)
    assert wave.shape == (1, 1000) and torch.allclose(wave[0], torch.from_numpy(samples / 32768).float())
    assert x.shape == (1, 128, 64)


def test_a_valid_file_whose_name_is_not_utf8_reads(tmp_path: Path) -> None:
    odd = _tone(tmp_path / "plain.wav")
    os.rename(odd, non_utf8_path(tmp_path, ".wav"))
    assert Frontend(**SMALL)(non_utf8_path(tmp_path, ".wav")).shape == (1, 128, 64)


def test_links_out_of_the_root_and_looping_folders_add_no_files(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    _tone(root / "a.wav")
    _tone(outside / "stranger.wav")
    make_escape_link(root, outside)
    (root / "self").symlink_to(root, target_is_directory=True)
    data = build_dataset({"source": "audio_folder", "root": str(root), **SMALL}, split="test")
    assert [p.name for p, _ in data.samples] == ["a.wav"]
