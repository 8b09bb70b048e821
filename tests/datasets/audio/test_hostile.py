"""Audio readers on hostile input: bounded reads of long files, blame of bad mixup partners, odd names."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from anymae.datasets.audio.files import AudioClips, Augment, DataError, Frontend, frames_to_read, read_audio
from anymae.datasets.audio.synthetic import synth_clip, write_audio_folder
from anymae.datasets.sources import build_dataset
from tests.fuzz.bad_inputs import bounded_memory, non_utf8_path, write_random

SMALL = {"num_mel_bins": 64, "target_length": 128}  # window: 127 · 160 + 400 = 20720 samples at 16 kHz


def _long_wav(path: Path, seconds: int, sr: int) -> Path:
    """A PCM_16 tone of `seconds` at `sr`, written in 1-second blocks (never whole in memory)."""
    t = np.arange(sr) / sr
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for k in range(seconds):
            f.write((0.3 * np.sin(2 * np.pi * (200 + k) * t)).astype(np.float32))
    return path


def test_the_window_is_what_target_length_frames_cover() -> None:
    fe = Frontend(**SMALL)
    assert fe.window() == 127 * 160 + 400 and fe.span() == (2 * 20720, 16000)
    assert frames_to_read(fe.span(), 16000) == 41440  # same rate: exactly the span
    assert frames_to_read(fe.span(), 8000) == 20720 + 7 + 16  # half the samples, plus the resampling margin


def test_a_ten_minute_file_reads_only_the_window_in_bounded_memory(tmp_path: Path) -> None:
    long = _long_wav(tmp_path / "long.wav", 600, 8000)  # 4.8 M samples: 19 MB as float32
    fe = Frontend(**SMALL)
    with bounded_memory(4):
        x = fe(long)
    assert x.shape == (1, 128, 64) and torch.isfinite(x).all()
    with pytest.raises(AssertionError, match="peak traced memory"):  # the measure sees a whole-file decode
        with bounded_memory(4):
            read_audio(long)
    # the result is that of a file holding only the frames read: nothing beyond them matters
    head, _ = sf.read(long, frames=frames_to_read(fe.span(), 8000), dtype="float32")
    sf.write(tmp_path / "head.wav", head, 8000, subtype="FLOAT")
    assert torch.equal(fe(tmp_path / "head.wav"), x)
    wave, sr = read_audio(long, fe.span())
    assert sr == 8000 and wave.shape == (1, 20743)


def test_files_up_to_twice_the_window_keep_the_whole_file_mean(tmp_path: Path) -> None:
    x = synth_clip("chirp", 2.5, 16000, np.random.default_rng(0)) + np.float32(0.05)  # 40000 samples, DC 0.05
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    fe = Frontend(**SMALL)
    prepared = fe.read(tmp_path / "a.wav")
    assert prepared.shape == (1, 40000)  # under the span (41440): all of it, mean of all of it
    torch.testing.assert_close(prepared[0], torch.from_numpy(x - x.mean()), atol=1e-6, rtol=0)


def test_a_rate_without_a_cheap_exact_resampling_is_refused_by_name(tmp_path: Path) -> None:
    sf.write(tmp_path / "odd_rate.wav", np.zeros(4000, np.float32), 44101)  # coprime with 16000
    with pytest.raises(DataError, match=r"odd_rate.wav: a sample rate of 44101 Hz cannot be resampled to 16000 Hz"):
        Frontend(**SMALL)(tmp_path / "odd_rate.wav")
    sf.write(tmp_path / "cd.wav", np.zeros(4000, np.float32), 44100)
    assert Frontend(**SMALL)(tmp_path / "cd.wav").shape == (1, 128, 64)


def _clips_with_bad_files(root: Path) -> tuple[list[tuple[Path, int]], set[int]]:
    """10 good clips (2 classes) and 3 bad ones (empty, random bytes, too short): samples, bad indices."""
    write_audio_folder(root, 5, ("tone", "noise"), seconds=0.5)
    sf.write(root / "tone" / "t_empty.wav", np.zeros(0, np.float32), 16000)
    write_random(root / "noise" / "n_random.wav")
    sf.write(root / "noise" / "n_short.wav", np.zeros(100, np.float32), 16000)
    files = sorted(root.rglob("*.wav"))
    samples = [(p, 0 if p.parent.name == "tone" else 1) for p in files]
    return samples, {i for i, p in enumerate(files) if p.stem.split("_")[1] in ("empty", "random", "short")}


def test_bad_mixup_partners_are_blamed_themselves_and_every_good_clip_is_produced(tmp_path: Path) -> None:
    samples, bad = _clips_with_bad_files(tmp_path / "c")
    clips = AudioClips(samples, Frontend(**SMALL), num_classes=2, augment=Augment(mixup=1.0), on_error="skip")
    for rep in range(30):  # the 30 passes: before, the good clip loading a bad partner was skipped
        for i in range(len(samples)):
            random.seed(rep * 100 + i)
            np.random.seed(rep * 100 + i)
            x, y = clips[i]
            assert x.shape == (1, 128, 64) and torch.isclose(y.sum(), torch.tensor(1.0))
    assert set(clips.skipped_indices()) == bad and clips.skipped() == 3
    report = clips.skip_report()
    assert "skipped 3 unusable audio file(s) of 13" in report
    assert all(samples[j][0].name in report for j in bad)


def test_a_bad_partner_is_replaced_by_the_next_readable_one(tmp_path: Path) -> None:
    """Clip 0 draws clip 1 (bad) as its partner: the next readable one from 1 on is clip 0 itself,
    and a clip mixed with itself is the clip (λw + (1 - λ)w = w, label λy + (1 - λ)y = y)."""
    good = write_audio_folder(tmp_path / "c", 1, ("tone",), seconds=0.5) / "tone" / "tone_0.wav"
    broken = write_random(tmp_path / "broken.wav")
    samples = [(good, 0), (broken, 1)]
    fe = Frontend(**SMALL)
    clips = AudioClips(samples, fe, num_classes=2, augment=Augment(mixup=1.0), on_error="skip")
    seed = next(s for s in range(100) if (random.seed(s), random.random(), random.randint(0, 1))[2] == 1)
    random.seed(seed)
    x, y = clips[0]
    torch.testing.assert_close(x, fe(good), atol=2e-3, rtol=0)  # rounding of λw + (1 - λ)w, through a log
    assert y.tolist() == pytest.approx([1.0, 0.0]) and clips.skipped_indices() == [1]
    raising = AudioClips(samples, fe, num_classes=2, augment=Augment(mixup=1.0))
    random.seed(seed)
    with pytest.raises(DataError, match="broken.wav: Format not recognised"):  # the partner is named
        raising[0]


def test_names_that_are_not_utf8_open_and_are_shown_escaped(tmp_path: Path) -> None:
    root = write_audio_folder(tmp_path / "c", 1, ("tone",), seconds=0.5)
    odd = non_utf8_path(root / "tone", ".wav")
    os.rename(root / "tone" / "tone_0.wav", odd)
    data = build_dataset({"source": "audio_folder", "root": str(root), **SMALL}, split="test")
    assert [p for p, _ in data.samples] == [odd]
    assert data[0][0].shape == (1, 128, 64)
    broken = non_utf8_path(tmp_path, ".flac")
    write_random(broken)
    with pytest.raises(DataError, match=r"clip_\\xff\\xfe.flac: Format not recognised"):
        read_audio(broken)
