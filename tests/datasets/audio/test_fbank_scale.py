"""roll_mag_aug on cached mel energies equals the fbank of the scaled waveform (datasets/audio/files.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torchaudio = pytest.importorskip("torchaudio")

from anymae.datasets.audio.files import Frontend  # noqa: E402


def _kaldi(wave: torch.Tensor, fe: Frontend) -> torch.Tensor:
    """The reference's fbank call (log included), zero-padded to target_length."""
    fb = torchaudio.compliance.kaldi.fbank(
        wave, htk_compat=True, sample_frequency=fe.sample_rate, use_energy=False, window_type="hanning",
        num_mel_bins=fe.num_mel_bins, dither=0.0, frame_shift=fe.frame_shift, frame_length=fe.frame_length,
    )  # fmt: skip
    return torch.nn.functional.pad(fb, (0, 0, 0, max(0, fe.target_length - fb.shape[0])))[: fe.target_length]


def _wave(seconds: float = 1.0, sr: int = 16000) -> torch.Tensor:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    x[4000:6000] = 0.0  # digital silence: floored bins
    w = torch.tensor(x, dtype=torch.float32)[None]
    return w - w.mean()


def test_unscaled_fbank_is_kaldis_bitwise() -> None:
    fe = Frontend(target_length=128)
    w = _wave()
    assert torch.equal(fe.fbank(w), _kaldi(w, fe))


@pytest.mark.parametrize("scale", [0.5, 0.93, 1.5])
def test_scaled_energies_equal_the_scaled_waveforms_fbank(scale: float) -> None:
    fe = Frontend(target_length=128)
    w = _wave()
    fast = fe.log_fbank(fe.mel_energies(w), scale)
    slow = _kaldi(w * scale, fe)
    # float rounding of the FFT on near-silent bins: < 1e-3 in log energy (< 1e-4 after the
    # (x - mean) / (2 · std) normalization); loud bins agree to 1e-5
    torch.testing.assert_close(fast, slow, rtol=0, atol=1e-3)
    loud = slow > 0
    torch.testing.assert_close(fast[loud], slow[loud], rtol=0, atol=1e-5)
    floor = float(np.log(np.finfo(np.float32).eps))
    assert (slow == floor).any() and torch.equal(fast == floor, slow == floor)  # the silent part stays at the floor
