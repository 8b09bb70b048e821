"""Tar shards against folders: loader throughput for images and video, and the stream's peak memory.

1. Throughput: the same files read by the engine's two loaders at the same batch size and
   workers (`steps.run_batches`): map-style over the folder (`image_folder` / `video_files`) and
   streamed from shards of it (`data.source: shards`, decoded as one-sample folders); samples/s
   of each and their ratio (streaming / folder). The first batch (worker start-up) is not timed.
2. Memory: streaming shard sets of N and 4N samples (each several times the shuffle buffer) in a
   fresh process each, peak RSS and peak traced Python/numpy allocations; flat means the stream
   holds the buffer, not the data.

    python benchmarks/shards.py --quick          # small sets, about a minute on 2 CPUs
    python benchmarks/shards.py --images 2048 --videos 128 --batch 64 --workers 8
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from data_loading import write_jpegs  # noqa: E402  (shared benchmark helper)

from anymae.datasets.seeding import SeededSamples  # noqa: E402
from anymae.datasets.shards.writer import write_shards  # noqa: E402
from anymae.datasets.sources import build_dataset  # noqa: E402
from anymae.tasks.train.config import OptimConfig, RunConfig  # noqa: E402
from anymae.tasks.train.distributed import DistInfo  # noqa: E402
from anymae.tasks.train.steps import run_batches  # noqa: E402


def write_videos(root: Path, n: int, frames: int, side: int) -> Path:
    """n mp4 clips of `frames` frames of side × side (moving squares)."""
    from anymae.datasets.video.synthetic import moving_square, write_video

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        write_video(root / f"clip_{i:04d}.mp4", moving_square(frames, side, i % 4, rng))
    return root


def throughput(section: dict[str, Any], model: dict[str, Any], batch: int, workers: int) -> float:
    """Samples/s of one epoch through the engine's loader for `section` (the first batch not timed)."""
    data = SeededSamples(build_dataset(section, split="pretrain", model_config=model), 0)
    steps = len(data) // batch
    run = RunConfig(out_dir="unused", num_workers=workers)
    batches = run_batches(data, OptimConfig(batch_size=batch), run, DistInfo(), 0, steps)
    next(batches)
    start = time.perf_counter()
    done = sum(1 for _ in batches)
    return done * batch / (time.perf_counter() - start)


def compare(name: str, folder: dict[str, Any], out: Path, model: dict[str, Any], batch: int, workers: int) -> None:
    start = time.perf_counter()
    manifest = write_shards(folder, out, max_count=64, progress=False, model_config=model)
    written = manifest.num_samples / (time.perf_counter() - start)
    shards = {"source": "shards", "root": str(out), "shuffle_buffer": 4 * batch}
    a = throughput(folder, model, batch, workers)
    b = throughput(shards, model, batch, workers)
    print(f"{name}: {manifest.num_samples} samples in {len(manifest.shards)} shards (written at {written:.0f}/s); "
          f"batch {batch}, {workers} workers: folder {a:.1f} samples/s, shards {b:.1f} samples/s, "
          f"streaming/folder = {b / a:.2f}")


def _stream_peak(root: str, buffer: int, batch: int) -> tuple[int, float, float]:
    """In a fresh process: stream every sample once; (samples, peak RSS MiB, peak traced MiB)."""
    data = SeededSamples(build_dataset({"source": "shards", "root": root, "shuffle_buffer": buffer},
                                       split="pretrain", model_config={"img_size": 64}), 0)  # fmt: skip
    tracemalloc.start()
    n = 0
    for x, _, _ in run_batches(data, OptimConfig(batch_size=batch), RunConfig(out_dir="unused", num_workers=0),
                               DistInfo(), 0, len(data) // batch):  # fmt: skip
        n += x.shape[0]
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, traced


def memory(base: Path, images: Path, n: int, buffer: int, batch: int) -> None:
    files = sorted(images.glob("*.jpg"))
    for size in (n, 4 * n):
        folder = base / f"mem_{size}"
        folder.mkdir()
        for i in range(size):  # links to the same JPEGs: a big set without writing big files
            (folder / f"img_{i:06d}.jpg").symlink_to(files[i % len(files)])
        write_shards({"source": "image_folder", "root": str(folder)}, base / f"mem_shards_{size}", max_count=64,
                     progress=False)  # fmt: skip
        data_mib = sum(p.stat().st_size for p in (base / f"mem_shards_{size}").glob("*.tar")) / 2**20
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            seen, rss, traced = pool.submit(_stream_peak, str(base / f"mem_shards_{size}"), buffer, batch).result()
        print(f"memory: streamed {seen} samples ({data_mib:.0f} MiB of shards, {size / buffer:.0f}x the shuffle "
              f"buffer of {buffer}): peak RSS {rss:.0f} MiB, peak traced allocations {traced:.1f} MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sets (about a minute on 2 CPUs)")
    p.add_argument("--images", type=int, default=1024, help="JPEGs of 500×375")
    p.add_argument("--videos", type=int, default=64, help="mp4 clips")
    p.add_argument("--frames", type=int, default=64, help="frames per clip")
    p.add_argument("--side", type=int, default=224, help="clip frame side")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--memory-n", type=int, default=512, help="the smaller streamed set (the larger is 4x)")
    p.add_argument("--buffer", type=int, default=64, help="shuffle buffer of the memory runs")
    args = p.parse_args()
    if args.quick:
        args.images, args.videos, args.frames, args.side = 128, 16, 32, 96
        args.batch, args.workers, args.memory_n, args.buffer = 16, 2, 128, 32
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "images").mkdir()
        images = write_jpegs(base / "images", args.images)
        compare("images", {"source": "image_folder", "root": str(images), "img_size": 224}, base / "img_shards", {},
                args.batch, args.workers)  # fmt: skip
        videos = write_videos(base / "videos", args.videos, args.frames, args.side)
        compare("video", {"source": "video_files", "root": str(videos), "num_frames": 16, "img_size": 112},
                base / "video_shards", {}, max(1, args.batch // 4), args.workers)  # fmt: skip
        memory(base, images, args.memory_n, args.buffer, args.batch)


if __name__ == "__main__":
    main()
