"""End-to-end pretraining rate vs the bare model step, per modality's tiny preset (and ViT-B images).

What a user waits for is the whole run: start-up, loader, engine, logging, checkpoints, and the
model. For each case this script writes real files with the project's synthetic writers (PNG
images, WAV clips, MP4 videos, PLY point clouds), then

- **run**: runs `anymae pretrain --config configs/<preset>.yaml` on them in a fresh process, as a
  user would, for `--steps` optimizer steps, and reads its rate two ways: steps / wall time of the
  whole process (start-up included) and the steady rate the engine logged after its first rows;
- **bare**: builds the same model (same config and seed) and the same batches (the run's data
  order and per-sample seeds, read once into memory), and times the same number of bare steps
  (forward + backward + the engine's fused AdamW, in the run's precision) in this process.

It prints steps/s of both and the ratio run / bare (1.0 = the run costs nothing beyond the model),
the seconds of the run spent outside its steady steps (start-up, first batches, shutdown), and
the loader's work: the CPU time of making one step's batches on one thread (as in a worker). On
a machine whose cores the loader workers share with the model, the steady ratio cannot pass
step / (step + loader work / cores).

    python benchmarks/end_to_end.py --quick                  # the tiny image preset, few steps
    python benchmarks/end_to_end.py                          # every modality's tiny preset
    python benchmarks/end_to_end.py --vit-b                  # also ViT-B/16 images (224², batch 8)
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anymae.datasets.audio.synthetic import write_audio_folder  # noqa: E402
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
    "audio": Case("configs/audiomae_tiny_cpu.yaml", 96, _clips),
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


def bare_rate(config: str, overrides: list[str], steps: int, warmup: int = 2) -> dict[str, float]:
    """The same model's bare steps on the run's batches held in memory: steps/s (median of steps)."""
    cfg = load_pretrain_config(config, overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.run.seed)
        model = build_model(cfg.model)
    data = SeededSamples(build_dataset(cfg.data, split="pretrain", model_config=model.config), cfg.run.seed)
    device = torch.device("cpu")
    loader_cfg = RunConfig(out_dir="unused", seed=cfg.run.seed, num_workers=0)
    held = min(steps, 16) * cfg.optim.accum_iter
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a loader worker: the CPU time of making one step's batches
    began = time.perf_counter()
    batches = list(run_batches(data, cfg.optim, loader_cfg, DistInfo(device=device), 0, held // cfg.optim.accum_iter))
    load_s = (time.perf_counter() - began) / (held // cfg.optim.accum_iter)
    torch.set_num_threads(threads)
    amp, _ = choose_precision(cfg.run.precision, device)
    optimizer = build_optimizer(model, lr=1e-4, weight_decay=cfg.optim.weight_decay, betas=cfg.optim.betas,
                                optimizer=cfg.optim.optimizer, decay_all=cfg.optim.decay_all)  # fmt: skip
    model.train()
    times = []
    for i in range(warmup + steps):
        began = time.perf_counter()
        for micro in range(cfg.optim.accum_iter):
            x, _label, seeds = to_device(batches[(i * cfg.optim.accum_iter + micro) % len(batches)], device)
            with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                loss = model(x, seeds=seeds).loss
            (loss / cfg.optim.accum_iter).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - began)
    step_s = statistics.median(times[warmup:])
    return {"steps_per_s": 1 / step_s, "samples_per_step": cfg.optim.batch_size * cfg.optim.accum_iter,
            "load_s": load_s}  # fmt: skip


def bench(name: str, case: Case, args: argparse.Namespace, work: Path) -> dict[str, object]:
    steps = case.steps if case.steps is not None and not args.quick else args.steps
    items = case.items if not args.quick else max(case.items // 2, 16)
    out_dir = work / f"{name}_run"
    preset = yaml.safe_load((ROOT / case.config).read_text())
    if case.write is not None:
        root = case.write(work / f"{name}_files", items)
        preset["data"] = {**(case.data or preset["data"]), "root": str(root)}  # the preset, reading the files
    config = work / f"{name}.yaml"
    config.write_text(yaml.safe_dump(preset))
    overrides = [*case.overrides, f"run.out_dir={out_dir}", f"run.max_steps={steps}",
                 f"run.log_every={max(1, steps // 6)}", "run.tensorboard=false", "run.device=cpu", *args.set]
    bare = bare_rate(str(config), overrides, min(steps, 60))  # a median over ≤ 60 steps
    run = run_cli(str(config), overrides, out_dir, steps)
    rows = run["rows"]
    steady_rows = [r["samples_per_s"] for r in rows[1:]] or [rows[0]["samples_per_s"]]  # type: ignore[index]
    steady = statistics.median(steady_rows) / bare["samples_per_step"]
    return {"case": name, "config": case.config, "files": items, "steps": steps,
            "run_steps_per_s": run["steps_per_s"], "run_steady_steps_per_s": steady, "run_wall_s": run["wall_s"],
            "bare_steps_per_s": bare["steps_per_s"], "ratio": run["steps_per_s"] / bare["steps_per_s"],
            "steady_ratio": steady / bare["steps_per_s"], "run_header": run["header"],
            "outside_steps_s": run["wall_s"] - steps / steady, "load_s_per_step": bare["load_s"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the tiny image preset only, half the files, few steps")
    parser.add_argument("--cases", nargs="*", help=f"cases to run, of {', '.join(CASES)} (default: the tiny ones)")
    parser.add_argument("--vit-b", action="store_true", help="also ViT-B/16 images (224², batch 8): minutes on a CPU")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 40, --quick 8)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra run setting")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    args.steps = args.steps or (8 if args.quick else 40)
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
            print(f"  run   {result['run_steps_per_s']:.3f} steps/s over {result['run_wall_s']:.1f} s (start-up "
                  f"included), steady {result['run_steady_steps_per_s']:.3f} steps/s")
            print(f"  bare  {result['bare_steps_per_s']:.3f} steps/s (forward + backward + AdamW, batches in memory)")
            load, step = result["load_s_per_step"], 1 / result["bare_steps_per_s"]  # type: ignore[operator]
            cores = torch.get_num_threads()  # the loader's work and the model's share these cores
            print(f"  loader work: {load:.3f} s per step on 1 thread = {load / step:.0%} of a bare step; on "
                  f"{cores} cores shared, steady ≤ {step / (step + load / cores):.2f}")
            print(f"  ratio run/bare {result['ratio']:.2f} (steady {result['steady_ratio']:.2f}); outside the steps "
                  f"(start-up, first batches, shutdown): {result['outside_steps_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
