"""End-to-end pretraining rate vs the bare model step, per modality's tiny preset (and ViT-B images).

What a user waits for is the whole run: start-up, loader, engine, logging, checkpoints, and the
model. For each case this script writes real files with the project's synthetic writers (PNG
images, WAV clips, MP4 videos, PLY point clouds), then

- **run**: runs `anymae pretrain --config configs/<preset>.yaml` on them in a fresh process, as a
  user would, for `--steps` optimizer steps, and reads its rate two ways: steps / wall time of the
  whole process (start-up included) and the steady rate the engine logged after its first rows;
- **bare**: builds the same model (same config and seed) and the same batches (the run's data
  order and per-sample seeds, read once into memory), and times bare steps (forward + backward +
  the engine's fused AdamW, in the run's precision) in this process, before and after each run.

It prints steps/s of both and the ratio run / bare (1.0 = the run costs nothing beyond the model),
each run against the mean of the bare rates timed just before and just after it (the load of a
shared host drifts), the seconds of the run spent outside its steady steps (start-up, first
batches, shutdown), and the loader's work: the CPU time of making one step's batches on one
thread (as in a worker), from the decoded-file cache the run also fills. The bare rate is a mean
over the timed steps, as the run's logged rate is (a median would flatter it by dropping the
slow steps). With ``--repeat N`` every figure is the median [min–max] of N runs.

    python benchmarks/end_to_end.py --quick                  # the tiny image preset, few steps
    python benchmarks/end_to_end.py                          # every modality's tiny preset
    python benchmarks/end_to_end.py --vit-b                  # also ViT-B/16 images (224², batch 8)
    python benchmarks/end_to_end.py --cases image audio --repeat 3   # 3 runs each, median [min–max]
    python benchmarks/end_to_end.py --set run.num_workers=0 --set run.cache=false   # any run setting
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anymae.datasets.audio.synthetic import write_audio_folder  # noqa: E402
from anymae.datasets.cache import prepare_cache  # noqa: E402
from anymae.datasets.image.synthetic import write_image_folder  # noqa: E402
from anymae.datasets.points.synthetic import synthetic_shape, write_cloud  # noqa: E402
from anymae.datasets.seeding import SeededSamples  # noqa: E402
from anymae.datasets.sources import build_dataset  # noqa: E402
from anymae.datasets.video.synthetic import moving_square, write_video  # noqa: E402
from anymae.tasks.train.config import RunConfig  # noqa: E402
from anymae.tasks.train.distributed import DistInfo  # noqa: E402
from anymae.tasks.train.logging import read_metrics  # noqa: E402
from anymae.tasks.train.optim import build_optimizer  # noqa: E402
from anymae.tasks.train.pretrain import build_model, load_pretrain_config  # noqa: E402
from anymae.tasks.train.steps import choose_precision, run_batches, to_device  # noqa: E402


def _images(root: Path, n: int, size: int, fmt: str) -> Path:
    return write_image_folder(root, n // 10, 10, size=size, fmt=fmt)  # 10 class folders


def _clips(root: Path, n: int) -> Path:
    return write_audio_folder(root, n // 4, seconds=1.3)  # 4 kinds of 16 kHz WAV clips (128 fbank frames)


def _videos(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_video(root / f"clip_{i:04d}.mp4", moving_square(24, 40, i % 4, rng))
    return root


def _clouds(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    kinds = ("sphere", "cube", "torus", "cylinder", "cone")
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_cloud(root / f"{kinds[i % 5]}_{i:04d}.ply", synthetic_shape(kinds[i % 5], 1024, rng))
    return root


def _stacks(root: Path, n: int) -> Path:
    """``n`` 5-channel float32 stacks (C×40×40 .npy) in a flat folder, for the ChA-MAEViT preset."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        np.save(root / f"stack_{i:04d}.npy", rng.standard_normal((5, 40, 40)).astype(np.float32))
    return root


@dataclass
class Case:
    """One benchmark: a preset config, the files it reads, and overrides that point it at them."""

    config: str
    items: int
    write: Callable[[Path, int], Path] | None  # None: the preset's own data (generated in memory, no files)
    overrides: list[str] = field(default_factory=list)
    data: dict[str, object] | None = None  # replaces the preset's data section (root: the files)
    steps: int | None = None  # default: --steps


CASES: dict[str, Case] = {
    "image": Case("configs/mae_vit_tiny_cpu.yaml", 560, lambda r, n: _images(r, n, 32, "png")),
    "audio": Case("configs/audiomae_tiny_cpu.yaml", 96, _clips, steps=100),  # its full length; 40 steps last 2 s
    "video": Case("configs/videomae_vit_tiny_cpu.yaml", 48, _videos),
    "points": Case("configs/pointmae_tiny_cpu.yaml", 128, _clouds, data={"source": "point_files"}),
    "graph": Case("configs/graphmae_gat_tiny_cpu.yaml", 1, None),  # one generated 210-node graph per step
    "multichannel": Case("configs/chamaevit_tiny_cpu.yaml", 256, _stacks),
    "image_vit_b": Case("configs/mae_vit_base_in1k.yaml", 80, lambda r, n: _images(r, n, 256, "jpg"),
                        ["optim.batch_size=8", "optim.accum_iter=1", "run.num_workers=2"], steps=12),
}


def run_cli(config: str, overrides: list[str], out_dir: Path, steps: int) -> dict[str, float]:
    """`anymae pretrain` in a fresh process: steps/s over its wall time, and the steady logged rate."""
    cmd = [sys.executable, "-m", "anymae", "pretrain", "--config", config, *overrides]
    began = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    rows = read_metrics(out_dir / "metrics.csv")
    header = [line for line in done.stderr.splitlines() if line.split(":")[0] in ("precision", "lr schedule", "cache",
                                                                                     "threads")]  # fmt: skip
    return {"wall_s": wall, "steps_per_s": steps / wall, "rows": rows, "header": header}  # type: ignore[dict-item]


@dataclass
class Bare:
    """The same model, optimizer and batches as a run, held in this process for timing bare steps."""

    cfg: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batches: list[Any]
    amp: torch.dtype | None
    load_s: float  # CPU time of making one step's batches on one thread, after the run's cache is filled


def prepare_bare(config: str, overrides: list[str], steps: int) -> Bare:
    """Build the run's model (same config and seed) and its first batches (its data order, per-sample
    seeds and decoded-file cache, `run.cache`), and time making them on one thread."""
    cfg = load_pretrain_config(config, overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.run.seed)
        model = build_model(cfg.model)
    dataset = build_dataset(cfg.data, split="pretrain", model_config=model.config)
    prepare_cache(dataset, cfg.run.cache, cfg.run.cache_mb)  # as the engine does before its loader starts
    data = SeededSamples(dataset, cfg.run.seed)
    device = torch.device("cpu")
    loader_cfg = RunConfig(out_dir="unused", seed=cfg.run.seed, num_workers=0)
    held = min(steps, 16)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a loader worker: the CPU time of making one step's batches
    list(run_batches(data, cfg.optim, loader_cfg, DistInfo(device=device), 0, 1))  # first touch of the cache
    began = time.perf_counter()
    batches = list(run_batches(data, cfg.optim, loader_cfg, DistInfo(device=device), 0, held))
    load_s = (time.perf_counter() - began) / held
    torch.set_num_threads(threads)
    amp, _ = choose_precision(cfg.run.precision, device)
    optimizer = build_optimizer(model, lr=1e-4, weight_decay=cfg.optim.weight_decay, betas=cfg.optim.betas,
                                optimizer=cfg.optim.optimizer, decay_all=cfg.optim.decay_all)  # fmt: skip
    return Bare(cfg, model, optimizer, batches, amp, load_s)


def bare_rate(bare: Bare, steps: int, warmup: int = 2) -> dict[str, float]:
    """Bare steps (forward + backward + the engine's fused AdamW, in the run's precision) on the held
    batches: steps/s as a mean over the timed steps (as the run's rate is) and as their median."""
    accum = bare.cfg.optim.accum_iter
    bare.model.train()
    times = []
    for i in range(warmup + steps):
        began = time.perf_counter()
        for micro in range(accum):
            x, _label, seeds = to_device(bare.batches[(i * accum + micro) % len(bare.batches)], torch.device("cpu"))
            with torch.autocast("cpu", dtype=bare.amp, enabled=bare.amp is not None):
                loss = bare.model(x, seeds=seeds).loss
            (loss / accum).backward()
        bare.optimizer.step()
        bare.optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - began)
    timed = times[warmup:]
    return {"steps_per_s": len(timed) / sum(timed), "median_steps_per_s": 1 / statistics.median(timed)}


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]" if len(values) > 1 else \
        f"{values[0]:.2f}"


def bench(name: str, case: Case, args: argparse.Namespace, work: Path) -> dict[str, object]:
    """``--repeat`` rounds of bare steps, then the CLI run, then bare steps again: each run is compared
    with the mean of the bare rates measured just before and just after it (load on a shared host
    drifts)."""
    steps = args.steps or (8 if args.quick else case.steps or 40)  # --steps, else the case's own length
    items = case.items if not args.quick else max(case.items // 2, 16)
    preset = yaml.safe_load((ROOT / case.config).read_text())
    if case.write is not None:
        root = case.write(work / f"{name}_files", items)
        preset["data"] = {**(case.data or preset["data"]), "root": str(root)}  # the preset, reading the files
    config = work / f"{name}.yaml"
    config.write_text(yaml.safe_dump(preset))
    common = [*case.overrides, f"run.max_steps={steps}", f"run.log_every={max(1, steps // 6)}",
              "run.tensorboard=false", "run.device=cpu", *args.set]  # fmt: skip
    bare = prepare_bare(str(config), [*common, "run.out_dir=unused"], steps)
    bare_steps = min(steps, 200)
    rates = [bare_rate(bare, bare_steps)]
    runs = []
    for r in range(args.repeat):
        out_dir = work / f"{name}_run{r}"
        runs.append(run_cli(str(config), [*common, f"run.out_dir={out_dir}"], out_dir, steps))
        rates.append(bare_rate(bare, bare_steps))
    samples = bare.cfg.optim.batch_size * bare.cfg.optim.accum_iter
    rounds = []
    for r, run in enumerate(runs):
        rows = run["rows"]
        steady_rows = [row["samples_per_s"] for row in rows[1:]] or [rows[0]["samples_per_s"]]  # type: ignore[index]
        steady = statistics.median(steady_rows) / samples
        around = (rates[r]["steps_per_s"] + rates[r + 1]["steps_per_s"]) / 2  # the bare rate around this run
        rounds.append({"run_steps_per_s": run["steps_per_s"], "run_steady_steps_per_s": steady,
                       "run_wall_s": run["wall_s"], "bare_steps_per_s": around, "ratio": run["steps_per_s"] / around,
                       "steady_ratio": steady / around, "outside_steps_s": run["wall_s"] - steps / steady})  # fmt: skip
    return {"case": name, "config": case.config, "files": items, "steps": steps, "rounds": rounds,
            "bare_rates": rates, "run_header": runs[-1]["header"], "load_s_per_step": bare.load_s}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the tiny image preset only, half the files, few steps")
    parser.add_argument("--cases", nargs="*", help=f"cases to run, of {', '.join(CASES)} (default: the tiny ones)")
    parser.add_argument("--vit-b", action="store_true", help="also ViT-B/16 images (224², batch 8): minutes on a CPU")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps per run (default: 40, audio 100, ViT-B 12; --quick 8)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra run setting")
    parser.add_argument("--repeat", type=int, default=1, help="CLI runs per case, each between two bare timings "
                        "(median [min–max] printed)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    tiny = [name for name in CASES if name != "image_vit_b"]
    names = args.cases or (["image"] if args.quick else tiny)
    names += ["image_vit_b"] if args.vit_b and "image_vit_b" not in names else []
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; expected some of {', '.join(CASES)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; settings: {' '.join(args.set) or '-'}")
    results = []
    with tempfile.TemporaryDirectory(prefix="anymae_e2e_") as tmp:
        for name in names:
            result = bench(name, CASES[name], args, Path(tmp))
            results.append(result)
            print(f"\n{name} ({result['config']}, {result['files']} files, {result['steps']} steps)")
            for line in result["run_header"]:  # type: ignore[union-attr]
                print(f"  | {line}")
            rounds = result["rounds"]  # type: ignore[assignment]
            pick = {key: [r[key] for r in rounds] for key in rounds[0]}  # type: ignore[index]
            print(f"  run   {_spread(pick['run_steps_per_s'])} steps/s over {_spread(pick['run_wall_s'])} s (start-up "
                  f"included), steady {_spread(pick['run_steady_steps_per_s'])} steps/s")
            bare_mean = [r["steps_per_s"] for r in result["bare_rates"]]  # type: ignore[union-attr]
            bare_median = [r["median_steps_per_s"] for r in result["bare_rates"]]  # type: ignore[union-attr]
            print(f"  bare  {_spread(bare_mean)} steps/s (mean over the timed steps; their median "
                  f"{_spread(bare_median)}), forward + backward + AdamW on batches in memory, before and after "
                  "each run")
            load, step = result["load_s_per_step"], 1 / statistics.median(bare_mean)  # type: ignore[operator]
            print(f"  loader work: {load:.3f} s per step on 1 thread (decoded files cached as in the run) = "
                  f"{load / step:.0%} of a bare step")
            print(f"  ratio run/bare {_spread(pick['ratio'])}; steady/bare {_spread(pick['steady_ratio'])} over "
                  f"{len(rounds)} run(s); outside the steps (start-up, first batches, shutdown): "
                  f"{_spread(pick['outside_steps_s'])} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
