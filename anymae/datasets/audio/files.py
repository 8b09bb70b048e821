"""Audio files -> normalized Kaldi fbank, as Audio-MAE's `dataset.py` makes them, plus its augmentations.

Frontend (`Frontend.read`, `Frontend.fbank`): read the beginning of the file with soundfile (wav,
flac, ogg, mp3; float32 in [-1, 1]), mix channels down to mono (the reference keeps only channel 0
of a multi-channel file), resample to `sample_rate` with `torchaudio.functional.resample` when the
file has another rate (the reference does not resample: its frame counts silently change), subtract
the waveform mean, then `torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False, window_type="hanning",
num_mel_bins=128, dither=0.0, frame_shift=10)` (25 ms frames), zero-pad or cut to `target_length`
frames, and normalize `(fbank - mean) / (2 · std)`.

Bounded reads: only the first `MEAN_WINDOWS` × `Frontend.window()` samples (the samples the
`target_length` frames cover, twice over) are decoded (soundfile reads that many frames, whatever
the file's length or its header declares), so an hour-long recording costs what a clip costs. The
mean subtracted is that of the samples read: the whole file's, as in the reference, for every file
up to twice the window (all AudioSet clips at the default 1024 frames); for longer files the mean
of their beginning. Rates whose exact resampling filter bank would be huge (coprime rates such as
44101 Hz) are refused by name instead of allocating gigabytes.

Augmentations (training only, as the reference's dataset applies them):
- `roll_mag_aug` (AS-2M pretraining): the waveform is multiplied by Beta(10, 10) + 0.5. The
  reference also "rolls" by `randint(len(waveform))`, but its waveform is 1×L so that length is 1
  and the roll is always 0; we reproduce the code (magnitude only). Every step of the fbank up to
  the mel energies is linear in the waveform (DC removal, pre-emphasis, window, |FFT|²: energies
  scale by s²), so without mixup the clip's mel energies are computed once (and kept by
  `run.cache`) and the scaled clip's fbank is `log(max(s² · E, eps))`: the same values as
  recomputing the fbank of the scaled waveform, up to float rounding (the order of the products),
  at a fraction of the cost.
- `mixup` (fine-tuning, 0.5): with this probability the clip is mixed with a uniformly drawn
  partner at the waveform level, λ ~ Beta(10, 10), the partner padded / cut to the clip's length,
  the mix mean-subtracted again; labels mix as λ·y1 + (1 - λ)·y2. With on_error="skip" a partner
  that cannot be read is skipped and counted itself (`Skips.get_partner`) and the next one mixed in.
- SpecAugment (fine-tuning): torchaudio `FrequencyMasking(freqm=48)` then `TimeMasking(timem=192)`
  on the raw fbank (masked values are 0 before normalization, as the reference).

Labels: an int class index (single-label without mixup), a float vector of C values (multi-label
multi-hot, or single-label when mixup is on, so that batches stack), or -1 (unlabeled).
Randomness comes from python's `random`, numpy's and torch's global RNGs, which `SeededSamples`
seeds per sample.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.cache import DecodeCache
from anymae.datasets.contract import SampleDataset
from anymae.extras import require
from anymae.datasets.scan import display_name
from anymae.datasets.skips import CountsSkips, DataError, Skips, check_file, reason

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3")
MEAN_WINDOWS = 2  # samples read (and averaged for the mean) = this many fbank windows
RESAMPLE_LIMIT = 2**24  # most (rate / gcd) products resampled: torchaudio's filter bank grows with it
# (mean, std) of the raw fbank per dataset (Audio-MAE main_finetune_as.py); normalize by (x - mean) / (2 std).
NORM_STATS: dict[str, tuple[float, float]] = {
    "audioset": (-4.2677393, 4.5689974),
    "esc50": (-6.6268077, 5.358466),
    "speechcommands": (-6.845978, 5.5654526),
}


def _native(path: str | Path) -> str | bytes:
    """`path` as libsndfile opens it: bytes on POSIX, so that names that are not UTF-8 open too."""
    return os.fsencode(path) if os.name == "posix" else os.fspath(path)


def _decoder_says(text: str) -> str:
    """libsndfile's error text, except its "does not exist" for bytes it cannot decode (mp3): the file
    was checked to be a regular file before it was opened."""
    return "not a decodable audio stream" if "does not exist or is not a regular file" in text else text.strip()


def frames_to_read(span: tuple[int, int], sr: int) -> int:
    """Frames of a file at `sr` Hz that cover `span = (samples, rate)`: the samples scaled to `sr`,
    plus a margin for the resampling filter (about 7 source samples per output sample period)
    when the rates differ."""
    samples, rate = span
    frames = -(-samples * sr // rate)  # ceil
    return frames if sr == rate else frames + math.ceil(7 * sr / min(sr, rate)) + 16


def read_audio(path: str | Path, span: tuple[int, int] | None = None) -> tuple[Tensor, int]:
    """Decode a file (or its beginning) with soundfile -> (1×L float32 mono waveform, sample rate).

    Args:
        path: the file (any name the file system allows, UTF-8 or not).
        span: `(samples, rate)`: decode only the frames covering the first `samples` samples at
            `rate` (`frames_to_read`); memory is bounded by the span, not by the file or its header.
            None decodes the whole file.

    Raises:
        DataError: naming the file: missing, a directory or a broken link, undecodable, no
            samples, or NaN / Inf samples.
    """
    sf = require("soundfile", "audio", purpose="reading audio files")
    check_file(path, "audio file")
    name = display_name(path)
    if os.stat(path).st_size == 0:
        raise DataError(f"audio file {name} is empty (0 bytes)")
    try:
        with sf.SoundFile(_native(path)) as f:
            sr = int(f.samplerate)
            if sr <= 0:
                raise DataError(f"audio file {name} declares a sample rate of {sr} Hz")
            frames = -1 if span is None else frames_to_read(span, sr)
            data = f.read(frames=frames, dtype="float32", always_2d=True)  # L×C
    except DataError:
        raise
    except sf.LibsndfileError as err:  # libsndfile's own words, without its repeat of the (bytes) path
        raise DataError(f"cannot read audio {name}: {_decoder_says(err.error_string)}") from err
    except Exception as err:  # any other decode failure, reported with its type and text
        raise DataError(f"cannot read audio {name}: {reason(err)}") from err
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise DataError(f"audio file {name} is empty (0 samples)")
    if not np.isfinite(data).all():
        raise DataError(f"audio file {name} holds NaN or infinite samples")
    return torch.from_numpy(data.mean(axis=1, dtype=np.float32)).unsqueeze(0), sr  # 1×L mono


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

    def window(self) -> int:
        """Samples at `sample_rate` that `target_length` frames cover: (T - 1) · shift + frame length."""
        shift = int(self.sample_rate * self.frame_shift * 0.001)  # kaldi's frame geometry
        length = int(self.sample_rate * self.frame_length * 0.001)
        return (self.target_length - 1) * shift + length

    def span(self) -> tuple[int, int]:
        """What `read` decodes of a file: `(MEAN_WINDOWS · window() samples, sample_rate)`."""
        return MEAN_WINDOWS * self.window(), self.sample_rate

    def prepare(self, waveform: Tensor, sr: int, *, where: str = "waveform") -> Tensor:
        """1×L waveform at `sr` -> 1×L' at `sample_rate` (resampled if needed; at most the span's
        samples kept), mean subtracted.

        Raises:
            DataError: naming `where`, for a rate whose exact resampling needs a huge filter bank.
        """
        if sr != self.sample_rate:
            g = math.gcd(sr, self.sample_rate)
            if (sr // g) * (self.sample_rate // g) > RESAMPLE_LIMIT:
                raise DataError(
                    f"{where}: a sample rate of {sr} Hz cannot be resampled to {self.sample_rate} Hz in bounded "
                    f"memory (the rates share no large factor); convert the file to a common rate such as 48000 Hz"
                )
            ta = require("torchaudio", "audio", purpose="resampling audio")
            waveform = ta.functional.resample(waveform, sr, self.sample_rate)
        waveform = waveform[:, : self.span()[0]]  # 1×L', L' <= MEAN_WINDOWS · window
        return waveform - waveform.mean()

    def read(self, path: str | Path) -> Tensor:
        """A file -> its first samples (`span`) at `sample_rate`, mean subtracted: 1×L'."""
        wave, sr = read_audio(path, self.span())
        return self.prepare(wave, sr, where=display_name(path))

    def fbank(self, waveform: Tensor, *, where: str = "waveform") -> Tensor:
        """1×L mean-subtracted waveform at `sample_rate` -> T×F raw log-mel fbank (padded / cut)."""
        return self.log_fbank(self.mel_energies(waveform, where=where))

    def log_fbank(self, energies: Tensor, scale: float = 1.0) -> Tensor:
        """T0×F mel energies -> T×F log-mel fbank of the waveform multiplied by `scale`:
        `log(max(scale² · E, eps))` (Kaldi's floor, eps = float32 machine epsilon), zero-padded /
        cut to `target_length` frames."""
        power = energies if scale == 1.0 else energies * (scale * scale)  # T0×F: |FFT|² scales by s²
        fb = torch.clamp_min(power, torch.finfo(torch.float32).eps).log()  # T0×F
        pad = self.target_length - fb.shape[0]
        if pad > 0:
            fb = torch.nn.functional.pad(fb, (0, 0, 0, pad))  # zero frames at the end
        return fb[: self.target_length]  # T×F

    def mel_energies(self, waveform: Tensor, *, where: str = "waveform") -> Tensor:
        """1×L mean-subtracted waveform at `sample_rate` -> T0×F Kaldi mel energies (before the log)."""
        ta = require("torchaudio", "audio", purpose="computing fbank features")
        if waveform.shape[-1] < int(self.sample_rate * self.frame_length / 1000):
            raise DataError(
                f"{where}: {waveform.shape[-1]} samples at {self.sample_rate} Hz is shorter than one "
                f"{self.frame_length:g} ms frame"
            )
        return ta.compliance.kaldi.fbank(
            waveform, htk_compat=True, sample_frequency=self.sample_rate, use_energy=False,
            window_type="hanning", num_mel_bins=self.num_mel_bins, dither=0.0,
            frame_shift=self.frame_shift, frame_length=self.frame_length, use_log_fbank=False,
        )  # fmt: skip  # T0×F

    def norm(self, fbank: Tensor) -> Tensor:
        """(fbank - mean) / (2 · std) when `normalize`, else unchanged."""
        return (fbank - self.mean) / (2 * self.std) if self.normalize else fbank

    def __call__(self, path: str | Path) -> Tensor:
        """A file -> 1×T×F normalized fbank (no augmentation)."""
        return self.norm(self.fbank(self.read(path), where=display_name(path))).unsqueeze(0)


@dataclass
class Augment:
    """Training augmentations (Audio-MAE's fine-tuning: freqm 48, timem 192, mixup 0.5)."""

    freqm: int = 0
    timem: int = 0
    mixup: float = 0.0
    roll_mag: bool = False


class AudioClips(CountsSkips, Dataset, SampleDataset):
    """Audio files with labels; items are `(1×T×F normalized fbank, label)` (label rules: module doc).

    Args:
        samples: (path, label) pairs; label an int class, a sequence of class indices
            (multi-label), or -1 (unlabeled).
        frontend: the fbank frontend.
        num_classes: C (for multi-hot / mixed labels); 0 when unlabeled.
        multilabel: labels are lists of classes (BCE / mAP tasks).
        augment: training augmentations (None = evaluation).
        on_error: "raise" (DataError naming the file) or "skip" (the next readable clip is used;
            skips are counted across DataLoader workers, as `ImageFiles` does, and evaluation
            drops them from its scores: `skipped_indices`).
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
            raise ValueError(f"no audio files found{f' under {display_name(root)}' if root else ''}")
        self.samples = list(samples)
        self.frontend = frontend
        self.num_classes = num_classes
        self.multilabel = multilabel
        self.augment = augment or Augment()
        self.on_error = on_error
        self.classes = list(classes)
        self.root = Path(root)
        self._skips = Skips(len(self.samples), "audio file", f"AudioClips({self.root})", on_error, problem="unusable")
        self.decode_cache = DecodeCache(self._decode, len(self.samples), f"AudioClips({self.root})")

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

    def _scale(self) -> float:
        """roll_mag_aug's magnitude factor s ~ Beta(10, 10) + 0.5 (1 without the augmentation)."""
        return float(np.random.beta(10, 10) + 0.5) if self.augment.roll_mag else 1.0

    def _wave(self, j: int) -> Tensor:
        """Clip j's waveform (1×L at the frontend's rate, mean subtracted), magnitude-augmented
        (mixup only: without it the clip is decoded to mel energies, `_decode`)."""
        return self.decode_cache(j) * self._scale()

    @property
    def _mixes_waves(self) -> bool:
        return self.augment.mixup > 0

    def _decode(self, j: int) -> Tensor:
        """Clip j before augmentation (deterministic: what `run.cache` keeps, see `datasets.cache`):
        its T0×F mel energies, or its 1×L waveform when mixup mixes waveforms."""
        path = self.samples[j][0]
        wave = self.frontend.read(path)
        return wave if self._mixes_waves else self.frontend.mel_energies(wave, where=display_name(path))

    def _load(self, index: int) -> tuple[Tensor, Any]:
        path, label = self.samples[index]
        target: Any = self._target(label) if self.soft_labels else label
        if not self._mixes_waves:
            fb = self.frontend.log_fbank(self.decode_cache(index), self._scale())  # T×F raw
            return self._finish(fb, target)
        wave = self.decode_cache(index) * self._scale()
        if random.random() < self.augment.mixup:
            # a bad partner is flagged itself and the next one drawn (never blamed on this clip)
            other, wave2 = self._skips.get_partner(random.randint(0, len(self.samples) - 1), self._wave)
            n = wave.shape[1]
            wave2 = torch.nn.functional.pad(wave2, (0, max(0, n - wave2.shape[1])))[:, :n]  # pad / cut to n
            lam = float(np.random.beta(10, 10))
            mixed = lam * wave + (1 - lam) * wave2
            wave = mixed - mixed.mean()
            if self.soft_labels:
                target = lam * target + (1 - lam) * self._target(self.samples[other][1])
        return self._finish(self.frontend.fbank(wave, where=display_name(path)), target)  # T×F raw

    def _finish(self, fb: Tensor, target: Any) -> tuple[Tensor, Any]:
        """T×F raw fbank -> (1×T×F normalized, SpecAugment-ed in training, target)."""
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


