"""Audio files -> normalized Kaldi fbank, as Audio-MAE's `dataset.py` makes them, plus its augmentations.

Frontend (`Frontend.fbank`): read the file with soundfile (wav, flac, ogg, mp3; float32 in
[-1, 1]), mix channels down to mono (the reference keeps only channel 0 of a multi-channel file),
resample to `sample_rate` with `torchaudio.functional.resample` when the file has another rate
(the reference does not resample: its frame counts silently change), subtract the waveform mean,
then `torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False, window_type="hanning",
num_mel_bins=128, dither=0.0, frame_shift=10)` (25 ms frames), zero-pad or cut to `target_length`
frames, and normalize `(fbank - mean) / (2 · std)`.

Augmentations (training only, as the reference's dataset applies them):
- `roll_mag_aug` (AS-2M pretraining): the waveform is multiplied by Beta(10, 10) + 0.5. The
  reference also "rolls" by `randint(len(waveform))`, but its waveform is 1×L so that length is 1
  and the roll is always 0; we reproduce the code (magnitude only).
- `mixup` (fine-tuning, 0.5): with this probability the clip is mixed with a uniformly drawn
  partner at the waveform level, λ ~ Beta(10, 10), the partner padded / cut to the clip's length,
  the mix mean-subtracted again; labels mix as λ·y1 + (1 - λ)·y2.
- SpecAugment (fine-tuning): torchaudio `FrequencyMasking(freqm=48)` then `TimeMasking(timem=192)`
  on the raw fbank (masked values are 0 before normalization, as the reference).

Labels: an int class index (single-label without mixup), a float vector of C values (multi-label
multi-hot, or single-label when mixup is on, so that batches stack), or -1 (unlabeled).
Randomness comes from python's `random`, numpy's and torch's global RNGs, which `SeededSamples`
seeds per sample.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset
from anymae.extras import require
from anymae.datasets.skips import DataError, Skips

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")
# (mean, std) of the raw fbank per dataset (Audio-MAE main_finetune_as.py); normalize by (x - mean) / (2 std).
NORM_STATS: dict[str, tuple[float, float]] = {
    "audioset": (-4.2677393, 4.5689974),
    "esc50": (-6.6268077, 5.358466),
    "speechcommands": (-6.845978, 5.5654526),
}


def read_audio(path: str | Path) -> tuple[Tensor, int]:
    """Decode a whole file with soundfile -> (1×L float32 mono waveform, sample rate).

    Raises:
        DataError: the file is missing, undecodable, has no samples, or holds NaN / Inf.
    """
    sf = require("soundfile", "audio", purpose="reading audio files")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # L×C
    except Exception as err:  # any decode failure, reported with its type and text
        raise DataError(f"cannot read audio {path}: {type(err).__name__}: {err}") from err
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise DataError(f"audio file {path} is empty (0 samples)")
    if not np.isfinite(data).all():
        raise DataError(f"audio file {path} holds NaN or infinite samples")
    return torch.from_numpy(data.mean(axis=1, dtype=np.float32)).unsqueeze(0), int(sr)  # 1×L mono


@dataclass
class Frontend:
    """Waveform -> normalized B-free fbank (T×F), with Audio-MAE's arguments (see module doc)."""

    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_length: int = 1024
    frame_shift: float = 10.0
    frame_length: float = 25.0
    mean: float = NORM_STATS["audioset"][0]
    std: float = NORM_STATS["audioset"][1]
    normalize: bool = True

    def prepare(self, waveform: Tensor, sr: int) -> Tensor:
        """1×L waveform at `sr` -> 1×L' at `sample_rate` (resampled if needed), mean subtracted."""
        if sr != self.sample_rate:
            ta = require("torchaudio", "audio", purpose="resampling audio")
            waveform = ta.functional.resample(waveform, sr, self.sample_rate)
        return waveform - waveform.mean()

    def fbank(self, waveform: Tensor, *, where: str = "waveform") -> Tensor:
        """1×L mean-subtracted waveform at `sample_rate` -> T×F raw log-mel fbank (padded / cut)."""
        ta = require("torchaudio", "audio", purpose="computing fbank features")
        if waveform.shape[-1] < int(self.sample_rate * self.frame_length / 1000):
            raise DataError(
                f"{where}: {waveform.shape[-1]} samples at {self.sample_rate} Hz is shorter than one "
                f"{self.frame_length:g} ms frame"
            )
        fb = ta.compliance.kaldi.fbank(
            waveform, htk_compat=True, sample_frequency=self.sample_rate, use_energy=False,
            window_type="hanning", num_mel_bins=self.num_mel_bins, dither=0.0,
            frame_shift=self.frame_shift, frame_length=self.frame_length,
        )  # fmt: skip  # T0×F
        pad = self.target_length - fb.shape[0]
        if pad > 0:
            fb = torch.nn.functional.pad(fb, (0, 0, 0, pad))  # zero frames at the end
        return fb[: self.target_length]  # T×F

    def norm(self, fbank: Tensor) -> Tensor:
        """(fbank - mean) / (2 · std) when `normalize`, else unchanged."""
        return (fbank - self.mean) / (2 * self.std) if self.normalize else fbank

    def __call__(self, path: str | Path) -> Tensor:
        """A file -> 1×T×F normalized fbank (no augmentation)."""
        wave, sr = read_audio(path)
        return self.norm(self.fbank(self.prepare(wave, sr), where=str(path))).unsqueeze(0)


@dataclass
class Augment:
    """Training augmentations (Audio-MAE's fine-tuning: freqm 48, timem 192, mixup 0.5)."""

    freqm: int = 0
    timem: int = 0
    mixup: float = 0.0
    roll_mag: bool = False


class AudioClips(Dataset, SampleDataset):
    """Audio files with labels; items are `(1×T×F normalized fbank, label)` (label rules: module doc).

    Args:
        samples: (path, label) pairs; label an int class, a sequence of class indices
            (multi-label), or -1 (unlabeled).
        frontend: the fbank frontend.
        num_classes: C (for multi-hot / mixed labels); 0 when unlabeled.
        multilabel: labels are lists of classes (BCE / mAP tasks).
        augment: training augmentations (None = evaluation).
        on_error: "raise" (DataError naming the file) or "skip" (the next readable clip is used;
            skips are counted across DataLoader workers, as `ImageFiles` does).
        classes: class names (index = label).
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, Any]],
        frontend: Frontend,
        *,
        num_classes: int = 0,
        multilabel: bool = False,
        augment: Augment | None = None,
        on_error: str = "raise",
        classes: Sequence[str] = (),
        root: str | Path = "",
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if not samples:
            raise ValueError(f"no audio files found{f' under {root}' if root else ''}")
        self.samples = list(samples)
        self.frontend = frontend
        self.num_classes = num_classes
        self.multilabel = multilabel
        self.augment = augment or Augment()
        self.on_error = on_error
        self.classes = list(classes)
        self.root = Path(root)
        self._skips = Skips(len(self.samples), "audio file", f"AudioClips({self.root})", on_error, problem="unusable")

    def __len__(self) -> int:
        return len(self.samples)

    @property  # type: ignore[override]
    def labels(self) -> list[int] | None:
        """The class of every clip in index order; None when labels are lists or mixed vectors."""
        return None if self.multilabel or self.soft_labels else [int(label) for _, label in self.samples]

    @property
    def soft_labels(self) -> bool:
        """Labels are C-vectors (multi-label, or mixup on)."""
        return self.num_classes > 0 and (self.multilabel or self.augment.mixup > 0)

    def _target(self, label: Any) -> Tensor:
        """A label -> C-vector (multi-hot for lists, one-hot for an int)."""
        y = torch.zeros(self.num_classes)
        for k in (label if isinstance(label, (list, tuple)) else [label]):
            y[int(k)] = 1.0
        return y

    def _wave(self, j: int) -> Tensor:
        wave, sr = read_audio(self.samples[j][0])
        wave = self.frontend.prepare(wave, sr)
        if self.augment.roll_mag:
            wave = wave * float(np.random.beta(10, 10) + 0.5)
        return wave

    def _load(self, index: int) -> tuple[Tensor, Any]:
        path, label = self.samples[index]
        wave = self._wave(index)
        target: Any = self._target(label) if self.soft_labels else label
        if self.augment.mixup > 0 and random.random() < self.augment.mixup:
            other = random.randint(0, len(self.samples) - 1)
            wave2 = self._wave(other)
            n = wave.shape[1]
            wave2 = torch.nn.functional.pad(wave2, (0, max(0, n - wave2.shape[1])))[:, :n]  # pad / cut to n
            lam = float(np.random.beta(10, 10))
            mixed = lam * wave + (1 - lam) * wave2
            wave = mixed - mixed.mean()
            if self.soft_labels:
                target = lam * target + (1 - lam) * self._target(self.samples[other][1])
        fb = self.frontend.fbank(wave, where=str(path))  # T×F raw
        if self.augment.freqm or self.augment.timem:
            ta = require("torchaudio", "audio", purpose="SpecAugment")
            spec = fb.t().unsqueeze(0)  # 1×F×T (torchaudio's (..., freq, time))
            if self.augment.freqm:
                spec = ta.transforms.FrequencyMasking(self.augment.freqm)(spec)
            if self.augment.timem:
                spec = ta.transforms.TimeMasking(self.augment.timem)(spec)
            fb = spec[0].t()  # T×F
        return self.frontend.norm(fb).unsqueeze(0), target  # 1×T×F

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        return self._skips.get(index, self._load)

    def skipped(self) -> int:
        """How many distinct unusable files were skipped so far, across all workers."""
        return self._skips.count()

    def skip_report(self) -> str:
        """One line: the skip count and the first skipped names."""
        return self._skips.report(lambda j: str(self.samples[j][0]))
