"""Audio frontend and sources: parity with a direct kaldi.fbank call, formats, layouts, errors, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from anymae.core.config import ConfigError
from anymae.datasets.audio.files import NORM_STATS, AudioClips, Augment, DataError, Frontend, read_audio
from anymae.datasets.audio.synthetic import synth_clip, write_audio_folder, write_audioset_csv
from anymae.datasets.sources import build_dataset

SMALL = {"num_mel_bins": 64, "target_length": 128}


def _reference_fbank(wave: torch.Tensor, sr: int, target: int, mel: int) -> torch.Tensor:
    """Audio-MAE dataset.py's `_wav2fbank` + normalization, called directly."""
    wave = wave - wave.mean()
    fb = torchaudio.compliance.kaldi.fbank(wave, htk_compat=True, sample_frequency=sr, use_energy=False,
                                           window_type="hanning", num_mel_bins=mel, dither=0.0, frame_shift=10)
    p = target - fb.shape[0]
    fb = torch.nn.ZeroPad2d((0, 0, 0, p))(fb) if p > 0 else fb[:target]
    mean, std = NORM_STATS["audioset"]
    return (fb - mean) / (std * 2)


def test_frontend_matches_a_direct_kaldi_fbank_call(tmp_path: Path) -> None:
    x = synth_clip("chirp", 1.1, 16000, np.random.default_rng(0))
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    ours = Frontend(num_mel_bins=128, target_length=100)(tmp_path / "a.wav")  # cut (108 frames -> 100)
    ref = _reference_fbank(torch.from_numpy(x).unsqueeze(0), 16000, 100, 128)
    assert ours.shape == (1, 100, 128) and torch.allclose(ours[0], ref, atol=1e-5)
    padded = Frontend(num_mel_bins=128, target_length=1024)(tmp_path / "a.wav")
    assert torch.allclose(padded[0], _reference_fbank(torch.from_numpy(x).unsqueeze(0), 16000, 1024, 128), atol=1e-5)


def test_other_rates_are_resampled_and_stereo_mixed_down(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    left, right = synth_clip("tone", 1.0, 22050, rng), synth_clip("noise", 1.0, 22050, rng)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 22050, subtype="FLOAT")
    wave, sr = read_audio(tmp_path / "s.wav")
    assert sr == 22050 and torch.allclose(wave[0], torch.from_numpy((left + right) / 2), atol=1e-6)
    ours = Frontend(**SMALL)(tmp_path / "s.wav")
    resampled = torchaudio.functional.resample(wave, 22050, 16000)
    assert torch.allclose(ours[0], _reference_fbank(resampled, 16000, 128, 64), atol=1e-5)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3"])
def test_every_format_reads_to_the_same_geometry(tmp_path: Path, fmt: str) -> None:
    root = write_audio_folder(tmp_path / "c", 1, ("tone",), fmt=fmt, seconds=0.5)
    data = build_dataset({"source": "audio_folder", "root": str(root), **SMALL}, split="test")
    x, label = data[0]
    assert x.shape == (1, 128, 64) and torch.isfinite(x).all() and label == -1


def test_empty_and_corrupt_files_are_named_or_counted(tmp_path: Path) -> None:
    root = write_audio_folder(tmp_path / "c", 2, ("tone",), seconds=0.3)
    sf.write(root / "tone" / "empty.wav", np.zeros(0, np.float32), 16000)
    (root / "tone" / "broken.flac").write_bytes(b"not audio at all")
    section = {"source": "audio_folder", "root": str(root), **SMALL}
    data = build_dataset(section, split="test")
    names = [p.name for p, _ in data.samples]
    with pytest.raises(DataError, match="broken.flac"):
        data[names.index("broken.flac")]
    with pytest.raises(DataError, match=r"empty.wav is empty \(0 samples\)"):
        data[names.index("empty.wav")]
    skipping = build_dataset({**section, "on_error": "skip"}, split="test")
    items = [skipping[i] for i in range(len(skipping))]
    assert len(items) == 4 and skipping.skipped() == 2 and "skipped 2 unusable" in skipping.skip_report()


def test_silent_file_is_valid_and_too_short_is_an_error(tmp_path: Path) -> None:
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 16000)
    x = Frontend(**SMALL)(tmp_path / "silent.wav")
    assert torch.isfinite(x).all()
    sf.write(tmp_path / "short.wav", np.zeros(100, np.float32), 16000)
    with pytest.raises(DataError, match="short.wav.*shorter than one 25 ms frame"):
        Frontend(**SMALL)(tmp_path / "short.wav")


def test_specaugment_masks_raw_fbank_to_zero(tmp_path: Path) -> None:
    root = write_audio_folder(tmp_path / "c", 1, ("noise",), seconds=1.3)
    fe = Frontend(**SMALL)
    clips = AudioClips([(next(root.rglob("*.wav")), 0)], fe, num_classes=1, augment=Augment(freqm=20, timem=40))
    zero = fe.norm(torch.zeros(1))  # a masked raw value (0) after normalization
    bins, frames = [], []
    for seed in range(8):
        torch.manual_seed(seed)
        x, _ = clips[0]
        bins.append(int((x[0] == zero).all(dim=0).sum()))  # whole masked mel bins
        frames.append(int((x[0] == zero).all(dim=1).sum()))  # whole masked frames
    assert max(bins) > 0 and max(frames) > 0 and max(bins) < 20 and max(frames) < 40
    assert len(set(bins)) > 1  # a random width per draw


def test_mixup_mixes_waveforms_and_labels(tmp_path: Path) -> None:
    root = write_audio_folder(tmp_path / "c", 1, ("tone", "chirp"), seconds=0.5)
    samples = [(p, [i]) for i, p in enumerate(sorted(root.rglob("*.wav")))]
    clips = AudioClips(samples, Frontend(**SMALL), num_classes=2, multilabel=True, augment=Augment(mixup=1.0))
    torch.manual_seed(0)
    np.random.seed(0)
    labels = [clips[0][1] for _ in range(6)]
    assert all(torch.isclose(y.sum(), torch.tensor(1.0)) for y in labels)
    assert any(0.2 < float(y[0]) < 0.8 for y in labels)  # Beta(10, 10) weights when mixed with the other clip


def test_audioset_csv_gives_multi_hot_labels(tmp_path: Path) -> None:
    root = write_audio_folder(tmp_path / "c", 1, ("tone", "chirp"), seconds=0.3)
    table, classes = write_audioset_csv(root, {"tone/tone_0.wav": ["/m/a"], "chirp/chirp_0.wav": ["/m/b", "/m/c"]},
                                        ["/m/a", "/m/b", "/m/c"])
    section = {"source": "audio_csv", "csv": str(table), "class_index_csv": str(classes), **SMALL}
    data = build_dataset(section, split="test")
    assert [y.tolist() for _, y in (data[0], data[1])] == [[1, 0, 0], [0, 1, 1]]
    table.write_text("file,labels\ntone/tone_0.wav,/m/zzz\n")
    with pytest.raises(ConfigError, match=r"line 2: label\(s\) \['/m/zzz'\]"):
        build_dataset(section, split="test")


def test_esc50_folds_split_train_and_test(tmp_path: Path) -> None:
    root = tmp_path / "ESC-50"
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows = ["filename,fold,target,category"]
    for i in range(4):
        sf.write(root / "audio" / f"{i}.wav", synth_clip("tone", 0.3, 16000, np.random.default_rng(i)), 16000)
        rows.append(f"{i}.wav,{1 + i % 2},{i},c{i}")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    section = {"source": "esc50", "root": str(root), "test_fold": 2, **SMALL}
    test, train = build_dataset(section, split="test"), build_dataset(section, split="train")
    assert [y for _, y in test.samples] == [1, 3] and [y for _, y in train.samples] == [0, 2]
    assert test.frontend.mean == NORM_STATS["esc50"][0]
