"""Video files with a sound track -> `{"audio": 1×T×F fbank, "video": 3×S×S frame}` items (CAV-MAE's data).

Decoding (PyAV, one container per item): the first audio stream is decoded (only the samples the
audio frontend reads, `Frontend.span`), converted to float and mixed down to mono, then goes
through the audio modality's frontend (`datasets.audio.files.Frontend`: resampling to 16 kHz,
mean subtraction, Kaldi fbank with 128 mel bins, 10 ms shift, hanning window, zero-pad / cut to
`target_length` frames), normalized CAV-MAE's way: `(x - mean) / std` with AudioSet's
-5.081 / 4.4849 (`CAVMAE_NORM`, no factor 2, unlike Audio-MAE's `(x - mean) / (2 std)`).

Frames follow CAV-MAE's preprocessing (`src/preprocess/extract_video_frame.py`, `dataloader.py`):
`total_frames` (10) frames at indices `int(i · N / 10)`, where N is the number of frames in the
first `frame_seconds` (10 s); training uses a random one of the 10, evaluation frame
`frame_use` (default the middle: index 5). The frame is resized on its short side to `img_size`
(bicubic), centre-cropped and ImageNet-normalized (the image modality's `eval_transform` with
crop_pct 1: CAV-MAE has no crop augmentation).

Pretraining augmentation (`noise=True` in CAV-MAE's pretraining scripts), after normalization:
`fbank + U(0, 1)^{T×F} · u / 10` with one u ~ U(0, 1) per clip, then a roll along time by an
integer drawn uniformly from [-T, T). Draws come from torch's generator, which `SeededSamples`
seeds per sample.

The deterministic part of an item (the clip's mel energies and its 10 resized, centre-cropped
frames) is decoded in one pass per container and kept by `run.cache` (`datasets.cache`); the
log, normalization, noise and the frame choice are applied per sample.

Errors: a file without an audio track (the reference crashes on such VGGSound / K400 videos),
without a video stream, empty or undecodable raises `DataError` naming the file; with
`on_error="skip"` it is replaced by the next usable clip and counted (`datasets.skips`).

Deviations: the reference extracts 16-kHz audio with ffmpeg and keeps channel 1 (`sox remix 1`);
here all channels are averaged (the audio modality's rule) and torchaudio resamples. Its frames
are extracted once to JPEG files; here they are decoded from the container on every read (no
JPEG round trip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import transforms as T

from anymae.datasets.audio.files import Frontend, frames_to_read
from anymae.datasets.cache import DecodeCache
from anymae.datasets.contract import SampleDataset
from anymae.datasets.image.transforms import eval_transform
from anymae.datasets.scan import display_name
from anymae.datasets.skips import CountsSkips, DataError, Skips, check_file, reason
from anymae.extras import require

AV_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi", ".mov")
CAVMAE_NORM: tuple[float, float] = (-5.081, 4.4849)  # CAV-MAE's AudioSet fbank mean / std


@dataclass
class CavFrontend(Frontend):
    """The audio frontend with CAV-MAE's normalization `(fbank - mean) / std` (no factor 2)."""

    mean: float = CAVMAE_NORM[0]
    std: float = CAVMAE_NORM[1]

    def norm(self, fbank: Tensor) -> Tensor:
        """(fbank - mean) / std when `normalize`, else unchanged."""
        return (fbank - self.mean) / self.std if self.normalize else fbank


def _open(path: Path) -> Any:
    """The PyAV container of `path`; DataError naming the file when it is no readable container."""
    av = require("av", "video", purpose="decoding audio-visual files")
    check_file(path, "video")
    if path.stat().st_size == 0:
        raise DataError(f"video {display_name(path)} is empty (0 bytes)")
    try:
        return av.open(str(path))
    except Exception as err:
        raise DataError(f"cannot read video {display_name(path)}: {reason(err)}") from err


def read_track(path: str | Path, frontend: Frontend) -> Tensor:
    """The sound of a container: 1×L mono float waveform at `frontend.sample_rate`, mean subtracted,
    at most `frontend.span()` samples (only those are decoded).

    Raises:
        DataError: naming the file: no audio track, or the track cannot be decoded / is empty.
    """
    av = require("av", "video", purpose="decoding audio-visual files")
    path = Path(path)
    name = display_name(path)
    with _open(path) as container:
        if not container.streams.audio:
            raise DataError(f"video {name} has no audio track (an audio-visual model needs the sound of every clip; "
                            "data.on_error=skip skips such clips and counts them)")
        stream = container.streams.audio[0]
        sr = int(stream.rate or stream.codec_context.sample_rate or 0)
        if sr <= 0:
            raise DataError(f"video {name}: its audio track declares no sample rate")
        need = frames_to_read(frontend.span(), sr)
        resampler = av.AudioResampler(format="fltp")  # planar float, the track's own layout and rate
        chunks, got = [], 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray()  # C×n float32
                    chunks.append(chunk)
                    got += chunk.shape[1]
                if got >= need:
                    break
        except Exception as err:
            raise DataError(f"cannot decode the audio track of video {name}: {reason(err)}") from err
    if got == 0:
        raise DataError(f"video {name}: its audio track holds no samples")
    wave = np.concatenate(chunks, axis=1)[:, :need]  # C×L
    if not np.isfinite(wave).all():
        raise DataError(f"video {name}: its audio track holds NaN or infinite samples")
    mono = torch.from_numpy(wave.mean(axis=0, dtype=np.float32)).unsqueeze(0)  # 1×L
    return frontend.prepare(mono, sr, where=name)


def frame_indices(num_frames: int, total: int = 10) -> list[int]:
    """CAV-MAE's `total` frame positions over `num_frames` frames: `int(i · num_frames / total)`."""
    return [int(i * num_frames / total) for i in range(total)]


def read_frames(path: str | Path, *, total: int = 10, seconds: float = 10.0) -> list[np.ndarray]:
    """The `total` frames uniformly spaced over the first `seconds` (`frame_indices`): H×W×3 uint8 each.

    The frames of the window are counted from the demuxed packets (no decoding), then the stream
    is decoded once up to the last frame needed.

    Raises:
        DataError: naming the file: no video stream, no frames, or undecodable.
    """
    path = Path(path)
    name = display_name(path)
    with _open(path) as container:
        if not container.streams.video:
            raise DataError(f"file {name} has no video stream")
        stream = container.streams.video[0]
        base = stream.time_base
        try:
            count = 0
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the flush packet
                if packet.pts is not None and base is not None and float(packet.pts * base) >= seconds:
                    continue
                count += 1
            if count == 0:
                raise DataError(f"video {name} has no frames")
            wanted = frame_indices(count, total)
            container.seek(0)
            found: dict[int, np.ndarray] = {}
            last = None
            for k, frame in enumerate(container.decode(stream)):
                if k in wanted:
                    found[k] = last = frame.to_ndarray(format="rgb24")  # H×W×3
                if k >= wanted[-1]:
                    break
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"cannot decode the frames of video {name}: {reason(err)}") from err
    if last is None:
        raise DataError(f"video {name}: no frame could be decoded")
    out, prev = [], found.get(wanted[0], last)
    for k in wanted:  # a slot past the decodable frames (a packet count that overshot) repeats the last one
        prev = found.get(k, prev)
        out.append(prev)
    return out


class AudioVisualClips(CountsSkips, Dataset, SampleDataset):
    """Clips with sound; items `({"audio": 1×T×F, "video": 3×S×S}, label)` (module doc).

    Args:
        samples: (path, label) pairs; label an int class, a list of class indices (multi-label)
            or -1 (unlabeled).
        frontend: the audio frontend (`CavFrontend` for CAV-MAE's normalization).
        img_size: the frame side S.
        train: a random frame of `total_frames` and the fbank noise (`noise`); else frame `frame_use`.
        noise: CAV-MAE's pretraining fbank noise and time roll (training only).
        total_frames, frame_seconds: the frame grid (10 frames over the first 10 s).
        frame_use: the evaluation frame (default `total_frames // 2`, CAV-MAE's middle frame).
        mean, std: the frame normalization.
        num_classes, multilabel: label vectors (multi-hot) for multi-label lists.
        on_error: "raise" or "skip".
        classes: class names (index = label).
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, Any]],
        frontend: Frontend,
        *,
        img_size: int = 224,
        train: bool = False,
        noise: bool = False,
        total_frames: int = 10,
        frame_seconds: float = 10.0,
        frame_use: int | None = None,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        num_classes: int = 0,
        multilabel: bool = False,
        on_error: str = "raise",
        classes: Sequence[str] = (),
        root: str | Path = "",
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if total_frames < 1 or frame_seconds <= 0:
            raise ValueError(f"total_frames must be >= 1 and frame_seconds > 0, got {total_frames}, {frame_seconds}")
        frame_use = total_frames // 2 if frame_use is None else frame_use
        if not 0 <= frame_use < total_frames:
            raise ValueError(f"frame_use={frame_use}: expected 0 <= frame_use < total_frames={total_frames}")
        if not samples:
            raise ValueError(f"no audio-visual files found{f' under {display_name(root)}' if root else ''}")
        self.samples = list(samples)
        self.frontend = frontend
        self.img_size, self.train, self.noise = int(img_size), bool(train), bool(noise)
        self.total_frames, self.frame_seconds, self.frame_use = int(total_frames), float(frame_seconds), int(frame_use)
        steps = eval_transform(self.img_size, crop_pct=1.0, mean=mean, std=std).transforms  # CAV-MAE's frame transform
        self.resize, self.to_tensor = T.Compose(steps[:2]), T.Compose(steps[2:])  # resize + crop | ToTensor + Normalize
        self.num_classes, self.multilabel = int(num_classes), bool(multilabel)
        self.classes = list(classes)
        self.root = Path(root)
        self._skips = Skips(len(self.samples), "video", f"AudioVisualClips({self.root})", on_error, problem="unusable")
        self.decode_cache = DecodeCache(self._decode, len(self.samples), f"AudioVisualClips({self.root})")

    def __len__(self) -> int:
        return len(self.samples)

    @property  # type: ignore[override]
    def labels(self) -> list[int] | None:
        """Every clip's class in index order; None for multi-label lists."""
        return None if self.multilabel else [int(label) for _, label in self.samples]

    def _target(self, label: Any) -> Any:
        if not self.multilabel:
            return label
        y = torch.zeros(self.num_classes)
        for k in label:
            y[int(k)] = 1.0
        return y

    def _decode(self, j: int) -> tuple[Tensor, np.ndarray]:
        """Clip j before augmentation (deterministic: what `run.cache` keeps, `datasets.cache`):
        its T0×F mel energies and its `total_frames` frames resized and centre-cropped (K×S×S×3 uint8)."""
        path = self.samples[j][0]
        energies = self.frontend.mel_energies(read_track(path, self.frontend), where=display_name(path))  # T0×F
        frames = read_frames(path, total=self.total_frames, seconds=self.frame_seconds)
        return energies, np.stack([np.asarray(self.resize(Image.fromarray(f))) for f in frames])  # K×S×S×3

    def _load(self, index: int) -> tuple[dict[str, Tensor], Any]:
        energies, frames = self.decode_cache(index)
        fb = self.frontend.norm(self.frontend.log_fbank(energies))  # T×F normalized
        if self.train and self.noise:  # CAV-MAE's pretraining noise and time roll
            t = fb.shape[0]
            fb = fb + torch.rand(fb.shape) * float(torch.rand(())) / 10  # T×F
            fb = torch.roll(fb, int(torch.randint(-t, t, ())), dims=0)
        slot = int(torch.randint(0, self.total_frames, ())) if self.train else self.frame_use
        frame = self.to_tensor(frames[slot])  # 3×S×S
        return {"audio": fb.unsqueeze(0), "video": frame}, self._target(self.samples[index][1])  # 1×T×F, 3×S×S

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Any]:
        return self._skips.get(index, self._load)


