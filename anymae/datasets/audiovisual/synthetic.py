"""Synthetic cross-modal data written as real files (tests, the small real run).

Audio-visual clips (`write_av_folder`): class k of K is a picture AND a sound. The picture: a
background of hue k/K with a bright stripe pattern whose stripe count is (k mod 4) + 1, plus
pixel noise; the sound: a tone at `tone_hz(k, K)` (log-spaced between 300 Hz and 4 kHz) with a
second harmonic, plus white noise. Each clip also draws its own brightness and tone loudness, and
a clip-level "instance" value moves the stripes and detunes the tone together (±3 %), so that the
two modalities share more than the label. Clips are mp4 (h264 + aac), mkv (h264 + flac), webm
(vp9 + opus at 48 kHz) or avi (mpeg4 + pcm), written with PyAV; `audio=False` writes clips
without a sound track (the error / skip tests).

Paired folders (`write_paired_folder`): MultiMAE-style `root/<modality>/<class>/<name>.png`
with an RGB picture and a depth map (8-bit grayscale) of the same scene: a square at a class-
dependent depth on a background ramp.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from anymae.extras import require

AV_CODECS: dict[str, tuple[str, str, int | None]] = {  # extension -> (video codec, audio codec, forced rate)
    ".mp4": ("libx264", "aac", None),
    ".mkv": ("libx264", "flac", None),
    ".webm": ("libvpx-vp9", "libopus", 48000),
    ".avi": ("mpeg4", "pcm_s16le", None),
}


def tone_hz(k: int, num_classes: int) -> float:
    """Class k's tone: log-spaced from 300 Hz to 4 kHz over the classes."""
    return float(300.0 * (4000.0 / 300.0) ** (k / max(1, num_classes - 1)))


def av_example(
    k: int, num_classes: int, rng: np.random.Generator, *, num_frames: int = 16, size: int = 64,
    sr: int = 16000, seconds: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One clip of class k: (T×size×size×3 uint8 frames, L float32 mono waveform at `sr`)."""
    inst = rng.uniform(-1.0, 1.0)  # shared by the picture (stripe phase) and the sound (detune)
    r, g, b = colorsys.hsv_to_rgb(k / num_classes, 0.8, rng.uniform(0.5, 0.9))
    frame = np.empty((size, size, 3), dtype=np.float64)
    frame[:] = (r, g, b)
    stripes = k % 4 + 1
    x = np.arange(size) / size
    band = np.sin(2 * np.pi * (stripes * x + 0.25 * inst)) > 0.6  # size
    frame[:, band] = 1.0
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        noisy = frame + rng.normal(0, 0.05, frame.shape)
        frames[t] = np.clip(noisy * 255, 0, 255).astype(np.uint8)
    t = np.arange(int(seconds * sr)) / sr
    f = tone_hz(k, num_classes) * (1 + 0.03 * inst)
    wave = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t) + rng.normal(0, 0.2, t.shape)
    wave = rng.uniform(0.3, 0.6) * wave / np.abs(wave).max()
    return frames, wave.astype(np.float32)


def write_av_clip(path: str | Path, frames: np.ndarray, wave: np.ndarray | None, *, fps: int = 8,
                  sr: int = 16000) -> Path:
    """Encode T×H×W×3 uint8 frames (H, W even) and a mono waveform (None: no sound track) with the
    codecs of the file's extension (`AV_CODECS`)."""
    av = require("av", "video", purpose="writing video files")
    path = Path(path)
    if path.suffix.lower() not in AV_CODECS:
        raise ValueError(f"cannot write {path}: extension must be one of {', '.join(AV_CODECS)}")
    vcodec, acodec, forced = AV_CODECS[path.suffix.lower()]
    rate = forced or sr
    if wave is not None and rate != sr:
        idx = np.arange(int(len(wave) * rate / sr)) * sr / rate  # linear interpolation to the codec's rate
        wave = np.interp(idx, np.arange(len(wave)), wave).astype(np.float32)
    with av.open(str(path), mode="w") as container:
        vs = container.add_stream(vcodec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        streams = [vs]
        if wave is not None:
            aus = container.add_stream(acodec, rate=rate)
            aus.layout = "mono"
            streams.append(aus)
        for frame in frames:
            for packet in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        if wave is not None:
            fmt = aus.codec_context.codec.audio_formats[0].name if aus.codec_context.codec.audio_formats else "fltp"
            step = aus.codec_context.frame_size or 1024
            for start in range(0, len(wave), step):
                chunk = wave[None, start : start + step]  # 1×n
                if fmt.startswith("s16"):
                    chunk = (np.clip(chunk, -1, 1) * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout="mono")
                frame.sample_rate, frame.pts = rate, start
                for packet in aus.encode(frame):
                    container.mux(packet)
        for stream in streams:
            for packet in stream.encode():
                container.mux(packet)
    return path


def write_av_folder(
    root: str | Path, num_classes: int = 4, per_class: int = 3, *, ext: str = ".mp4", seconds: float = 2.0,
    size: int = 64, fps: int = 8, sr: int = 16000, seed: int = 0, audio: bool = True,
) -> Path:
    """Write root/class_<k>/clip_<i><ext> (a folder per class) of `av_example` clips; returns root."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for k in range(num_classes):
        (root / f"class_{k:02d}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            frames, wave = av_example(k, num_classes, rng, num_frames=max(1, int(seconds * fps)), size=size,
                                      sr=sr, seconds=seconds)
            write_av_clip(root / f"class_{k:02d}" / f"clip_{i:03d}{ext}", frames, wave if audio else None, fps=fps,
                          sr=sr)
    return root


def paired_example(k: int, num_classes: int, rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """One aligned pair of class k: (size×size×3 uint8 RGB, size×size uint8 depth)."""
    depth = np.tile(np.linspace(200, 120, size), (size, 1))  # a background ramp, far to near
    side = size // 3
    y, x = rng.integers(0, size - side, size=2)
    depth[y : y + side, x : x + side] = 20 + 80 * k / max(1, num_classes - 1)
    shade = (255 - depth)[..., None] / 255.0  # nearer is brighter
    r, g, b = colorsys.hsv_to_rgb(k / num_classes, 0.7, 1.0)
    rgb = np.clip(shade * np.array([r, g, b]) * 255 + rng.normal(0, 8, (size, size, 3)), 0, 255)
    return rgb.astype(np.uint8), depth.astype(np.uint8)


def write_paired_folder(
    root: str | Path, num_classes: int = 3, per_class: int = 4, *, size: int = 32, seed: int = 0,
    modalities: tuple[str, ...] = ("rgb", "depth"),
) -> Path:
    """Write root/<modality>/class_<k>/img_<i>.png for each of `modalities` ("rgb", "depth"); returns root."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for k in range(num_classes):
        for i in range(per_class):
            rgb, depth = paired_example(k, num_classes, rng, size)
            for m in modalities:
                folder = root / m / f"class_{k:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rgb if m == "rgb" else depth).save(folder / f"img_{i:03d}.png")
    return root
