"""Clip decoding throughput: decord vs PyAV on the same generated mp4 files, 1 and N workers.

A clip = 16 frames at sampling rate 4 from a random start (VideoMAE's dense sampling), decoded
to RGB, then resized (short side) and centre-cropped to 224² as a float C×T×224×224 tensor.
decord seeks and decodes the requested frames (`get_batch`); PyAV decodes sequentially up to
the last requested frame (its seeks land on key frames). Files are written first with the
project's writer (`anymae.datasets.video.synthetic.write_video`: h264, yuv420p, 25 fps), a moving
random texture at 320×256 (Kinetics-like: short side 256).

Then the project's own loader next to the step: the `video_files` source of the VideoMAE ViT-B
preset (decord, dense sampling, multi-scale crop to 16×224²) through a DataLoader with
`--loader-workers` processes (clips/s after the first batch), and the ViT-B VideoMAE training step
on a batch of the same size, in the precision `run.precision: auto` picks here (clips/s).

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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import loader_rate, train_rate

import anymae
from anymae.datasets.sources import build_dataset
from anymae.datasets.video.sampling import dense_train_indices
from anymae.datasets.video.synthetic import write_video
from anymae.datasets.video.transforms import short_side_crops, to_float_clip
from anymae.tasks.train.steps import choose_precision


def write_files(folder: Path, n: int, frames: int, h: int, w: int) -> list[Path]:
    """``n`` mp4 files of ``frames`` frames at h×w: a random texture moving 3 px per frame, 25 fps."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        clip = np.stack([np.roll(base, 3 * t, axis=1) for t in range(frames)])  # T×H×W×3
        paths.append(write_video(folder / f"v{i}.mp4", clip, fps=25))
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


def loader_vs_step(folder: Path, args: argparse.Namespace) -> None:
    """The project's video loader (clips/s at each worker count) next to the ViT-B step (clips/s)."""
    name = "videomae_vit_tiny_patch8" if args.quick else "videomae_vit_base_patch16"
    model = anymae.create_model(name)
    dtype, why = choose_precision("auto", torch.device("cpu"))
    precision = "bf16" if dtype is torch.bfloat16 else "fp32"
    data = build_dataset({"source": "video_files", "root": str(folder), "layout": "flat"}, split="pretrain",
                         model_config=model.config)  # fmt: skip
    print(f"the project's loader (video_files, {name}: {model.config['num_frames']}×{model.config['img_size']}²), "
          f"batch {args.batch}, {len(data)} files; clips/s after the first batch")  # fmt: skip
    torch.set_num_threads(args.threads)
    rates = {w: loader_rate(data, w, args.batch) for w in args.loader_workers}
    x = model.tokenizer.example(args.batch)
    step = train_rate(model, x, args.steps, precision)
    for w, rate in rates.items():
        print(f"  loader, {w} worker(s): {rate:7.2f} clips/s = {rate / step:6.1f}x the step")
    print(f"  {name} step ({precision}: {why}; {args.threads} threads): {step:.3f} clips/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--frames", type=int, default=160)
    p.add_argument("--size", type=int, nargs=2, default=(256, 320), metavar=("H", "W"))
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--loader-workers", type=int, nargs="*", default=[0, 1, 2], help="none: skip loader vs step")
    p.add_argument("--batch", type=int, default=2, help="clips per loader batch and per step")
    p.add_argument("--steps", type=int, default=2, help="timed model steps")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads of the step")
    p.add_argument("--no-backends", action="store_true", help="skip decord vs PyAV")
    p.add_argument("--quick", action="store_true", help="4 files of 72 frames at 128×160, 8 clips, 2 workers")
    args = p.parse_args()
    if args.quick:
        args.files, args.frames, args.size, args.clips, args.workers = 4, 72, (128, 160), 8, 2
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), args.files, args.frames, *args.size)
        print(f"{args.files} mp4 files (h264), {args.frames} frames at {args.size[0]}×{args.size[1]}")
        if args.loader_workers:
            loader_vs_step(Path(tmp), args)
        if args.no_backends:
            return
        torch.set_num_threads(1)
        print(f"\ndecord vs PyAV: clips of 16 frames at rate 4 -> 3×16×224², {args.clips} clips per measurement")
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
