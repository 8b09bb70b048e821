"""Clip decoding throughput: decord vs PyAV on the same generated mp4 files, 1 and N workers.

A clip = 16 frames at sampling rate 4 from a random start (VideoMAE's dense sampling), decoded
to RGB, then resized (short side) and centre-cropped to 224² as a float C×T×224×224 tensor.
decord seeks and decodes the requested frames (`get_batch`); PyAV decodes sequentially up to
the last requested frame (its seeks land on key frames). Files are written first with PyAV
(h264, yuv420p, keyframe interval 12 by default).

    python benchmarks/video_decode.py                  # 8 files of 160 frames at 320×256, 4 workers
    python benchmarks/video_decode.py --quick          # tiny sizes, < 1 minute
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import av  # before decord (decord's bundled FFmpeg breaks PyAV's encoders otherwise)
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from anymae.datasets.video.sampling import dense_train_indices
from anymae.datasets.video.transforms import short_side_crops, to_float_clip


def write_files(folder: Path, n: int, frames: int, h: int, w: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"v{i}.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.gop_size = 12
            base = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
            for t in range(frames):
                img = np.roll(base, 3 * t, axis=1)  # a moving texture
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        paths.append(path)
    return paths


def decode_decord(path: Path, ids: list[int]) -> np.ndarray:
    import decord

    vr = decord.VideoReader(str(path), num_threads=1)
    return vr.get_batch(ids).asnumpy()


def decode_pyav(path: Path, ids: list[int]) -> np.ndarray:
    wanted, last, got = set(ids), max(ids), {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    return np.stack([got[i] for i in ids])


def one_clip(task: tuple[str, str, int, int]) -> int:
    backend, path, frames, seed = task
    np.random.seed(seed)
    ids = dense_train_indices(frames, 16, 4)
    arr = (decode_decord if backend == "decord" else decode_pyav)(Path(path), ids)
    clip = short_side_crops(to_float_clip(torch.from_numpy(arr)), 224)[0]
    assert clip.shape == (3, 16, 224, 224)
    return 1


def measure(backend: str, paths: list[Path], frames: int, clips: int, workers: int) -> float:
    """Clips per second; worker processes are started and warmed up before the clock starts."""
    tasks = [(backend, str(paths[i % len(paths)]), frames, i) for i in range(clips)]
    if workers == 1:
        one_clip(tasks[0])  # warm-up (imports, first open)
        t = time.perf_counter()
        done = sum(one_clip(task) for task in tasks)
        return done / (time.perf_counter() - t)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(one_clip, tasks[:workers], chunksize=1)  # warm-up in every worker
        t = time.perf_counter()
        done = sum(pool.map(one_clip, tasks, chunksize=1))
        return done / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--frames", type=int, default=160)
    p.add_argument("--size", type=int, nargs=2, default=(256, 320), metavar=("H", "W"))
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="4 files of 72 frames at 128×160, 8 clips, 2 workers")
    args = p.parse_args()
    if args.quick:
        args.files, args.frames, args.size, args.clips, args.workers = 4, 72, (128, 160), 8, 2
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), args.files, args.frames, *args.size)
        print(f"{args.files} mp4 files (h264), {args.frames} frames at {args.size[0]}×{args.size[1]}; "
              f"clips of 16 frames at rate 4 -> 3×16×224², {args.clips} clips per measurement")
        print(f"{'backend':8} {'workers':>7} {'clips/s':>8}")
        rates = {}
        for backend in ("decord", "pyav"):
            for workers in (1, args.workers):
                rates[backend, workers] = measure(backend, paths, args.frames, args.clips, workers)
                print(f"{backend:8} {workers:7d} {rates[backend, workers]:8.2f}")
        for workers in (1, args.workers):
            print(f"decord / PyAV at {workers} worker(s): {rates['decord', workers] / rates['pyav', workers]:.2f}x")


if __name__ == "__main__":
    main()
