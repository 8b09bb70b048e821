"""Audio-visual clips: the sound through the audio frontend (CAV-MAE's normalization), CAV-MAE's
frame grid (random of 10 in training, the middle one in evaluation), the sources, missing tracks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("av")
sf = pytest.importorskip("soundfile")

from anymae.datasets.audio.files import Frontend
from anymae.datasets.audiovisual.files import CAVMAE_NORM, AudioVisualClips, CavFrontend, frame_indices
from anymae.datasets.audiovisual.synthetic import av_example, write_av_clip, write_av_folder
from anymae.datasets.seeding import SeededSamples
from anymae.datasets.skips import DataError
from anymae.datasets.sources import build_dataset

GEOMETRY = {"target_length": 64, "num_mel_bins": 32, "img_size": 16}


def _frontend(**kw: object) -> CavFrontend:
    return CavFrontend(num_mel_bins=32, target_length=64, **kw)  # type: ignore[arg-type]


def _grey_clip(path: Path, num_frames: int, wave: np.ndarray | None, fps: int = 8) -> Path:
    """Frame t is uniformly grey at level 12·t (so a decoded frame tells its index)."""
    frames = np.stack([np.full((32, 32, 3), 12 * t, np.uint8) for t in range(num_frames)])
    return write_av_clip(path, frames, wave, fps=fps)


def test_frame_grid_is_cavmaes() -> None:
    # extract_video_frame.py: frame_idx = int(i * (total_frame_num / 10))
    assert frame_indices(16) == [0, 1, 3, 4, 6, 8, 9, 11, 12, 14]
    assert frame_indices(100) == list(range(0, 100, 10))
    assert frame_indices(3, total=4) == [0, 0, 1, 2]


def test_the_sound_is_the_audio_frontends_fbank_of_the_track(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _, wave = av_example(2, 4, rng, sr=16000, seconds=1.0)
    wave16 = (np.clip(wave, -1, 1) * 32767).astype(np.int16)  # what the pcm track stores
    clip = _grey_clip(tmp_path / "c.avi", 8, wave)  # avi: pcm_s16le, lossless
    sf.write(tmp_path / "c.wav", wave16, 16000)
    data = AudioVisualClips([(clip, 0)], _frontend(), img_size=16)
    audio = data[0][0]["audio"]  # 1×T×F
    # the same samples through the audio modality's frontend, normalized by CAV-MAE's (x + 5.081) / 4.4849
    raw = Frontend(num_mel_bins=32, target_length=64, normalize=False)(tmp_path / "c.wav")[0]  # T×F
    expected = (raw - CAVMAE_NORM[0]) / CAVMAE_NORM[1]
    assert audio.shape == (1, 64, 32)
    torch.testing.assert_close(audio[0], expected, atol=1e-3, rtol=1e-4)


def test_evaluation_reads_the_middle_frame_and_training_one_of_the_ten(tmp_path: Path) -> None:
    clip = _grey_clip(tmp_path / "g.avi", 20, np.zeros(16000, np.float32))
    mean, std = 0.5, 0.25

    def level(x: torch.Tensor) -> float:
        return float((x * std + mean).mean() * 255)

    ev = AudioVisualClips([(clip, 0)], _frontend(), img_size=16, mean=(mean,) * 3, std=(std,) * 3)
    # 20 frames -> slots int(i * 2): the middle slot 5 is frame 10, grey 120
    assert abs(level(ev[0][0]["video"]) - 120) < 6
    tr = SeededSamples(AudioVisualClips([(clip, 0)], _frontend(), img_size=16, train=True, mean=(mean,) * 3,
                                        std=(std,) * 3), base_seed=0)  # fmt: skip
    seen = set()
    for epoch in range(12):
        tr.set_epoch(epoch)
        seen.add(round(level(tr[0][0]["video"]) / 24))  # slot k -> frame 2k -> grey 24k
    assert seen <= set(range(10)) and len(seen) >= 4
    tr.set_epoch(3)
    assert torch.equal(tr[0][0]["video"], tr[0][0]["video"])  # seeded: the same slot again


def test_pretraining_noise_is_cavmaes_and_seeded(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames, wave = av_example(0, 2, rng, num_frames=8, size=32, seconds=1.0)
    clip = write_av_clip(tmp_path / "n.avi", frames, wave)
    plain = AudioVisualClips([(clip, 0)], _frontend(), img_size=16)[0][0]["audio"][0]  # T×F
    noisy = AudioVisualClips([(clip, 0)], _frontend(), img_size=16, train=True, noise=True)
    torch.manual_seed(5)
    got = noisy[0][0]["audio"][0]
    torch.manual_seed(5)  # the same draws by hand: U(0,1)^{T×F} · u / 10, then a roll in [-T, T)
    base = torch.rand(plain.shape) * float(torch.rand(())) / 10
    shift = int(torch.randint(-64, 64, ()))
    torch.testing.assert_close(got, torch.roll(plain + base, shift, dims=0))
    assert not torch.equal(got, plain)


def test_a_clip_without_sound_is_a_named_error_or_a_counted_skip(tmp_path: Path) -> None:
    good = _grey_clip(tmp_path / "good.mp4", 8, np.zeros(16000, np.float32))
    mute = _grey_clip(tmp_path / "mute.mp4", 8, None)
    with pytest.raises(DataError, match="mute.mp4 has no audio track"):
        AudioVisualClips([(mute, 0)], _frontend(), img_size=16)[0]
    data = AudioVisualClips([(mute, 1), (good, 0)], _frontend(), img_size=16, on_error="skip")
    assert data[0][1] == 0  # the next usable clip
    assert data.skipped() == 1 and data.skipped_indices() == [0] and "mute.mp4" in data.skip_report()


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".webm", ".avi"])
def test_av_folder_reads_every_container(tmp_path: Path, ext: str) -> None:
    write_av_folder(tmp_path / "clips", num_classes=2, per_class=1, ext=ext, seconds=0.8, size=32)
    data = build_dataset({"source": "av_folder", "root": str(tmp_path / "clips")}, split="test", model_config=GEOMETRY)
    x, y = data[1]
    assert set(x) == {"audio", "video"} and x["audio"].shape == (1, 64, 32) and x["video"].shape == (3, 16, 16)
    assert y == 1 and data.labels == [0, 1] and data.classes == ["class_00", "class_01"]
    assert torch.isfinite(x["audio"]).all() and x["audio"].std() > 0.1  # a real tone, not padding


def test_av_folder_batches_as_a_modality_dict(tmp_path: Path) -> None:
    from anymae.datasets.collate import collate_items

    write_av_folder(tmp_path / "clips", num_classes=2, per_class=2, seconds=0.5, size=32)
    data = build_dataset({"source": "av_folder", "root": str(tmp_path / "clips"), "num_mel_bins": 16},
                         split="pretrain", model_config=GEOMETRY)
    x, y = collate_items(data, [data[i] for i in range(4)])
    assert x["audio"].shape == (4, 1, 64, 16) and x["video"].shape == (4, 3, 16, 16) and y.tolist() == [0, 0, 1, 1]


def test_av_csv_lists_audioset_mids_or_plain_names(tmp_path: Path) -> None:
    write_av_folder(tmp_path / "v", num_classes=2, per_class=1, seconds=0.5, size=32)
    table = tmp_path / "list.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "labels"])
        w.writerow(["v/class_00/clip_000.mp4", "/m/b,/m/a"])
        w.writerow(["v/class_01/clip_000.mp4", "/m/b"])
    index = tmp_path / "classes.csv"
    index.write_text("index,mid,display_name\n0,/m/a,A\n1,/m/b,B\n2,/m/c,C\n")
    data = build_dataset({"source": "av_csv", "csv": str(table), "class_index_csv": str(index)}, split="test",
                         model_config=GEOMETRY)
    assert data[0][1].tolist() == [1.0, 1.0, 0.0] and data[1][1].tolist() == [0.0, 1.0, 0.0]
    plain = build_dataset({"source": "av_csv", "csv": str(table)}, split="test", model_config=GEOMETRY)
    assert plain.classes == ["/m/a", "/m/b"] and plain[1][1].tolist() == [0.0, 1.0]
    index.write_text("index,mid,display_name\n0,/m/a,A\n")
    with pytest.raises(ValueError, match=r"line 2: label\(s\) \['/m/b'\]"):
        build_dataset({"source": "av_csv", "csv": str(table), "class_index_csv": str(index)}, split="test")
