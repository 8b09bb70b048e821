"""Timing helpers shared by the step benchmarks (image_step.py, video_step.py, audio_frontend.py).

One way to time a step everywhere: every variant (model × precision) gets a callable doing one
optimizer step; `alternate` runs them in one process, alternating their order every round (A B,
B A, ...: ABBA) so that machine noise hits all alike; `report` prints median s/step with min–max,
achieved GFLOP/s, the share of the matmul ceiling of the variant's precision measured in the same
run (`matmul_ceiling`, fp32 and bf16) and the speed ratio against a base variant. The loader
benchmarks (audio_frontend.py, video_decode.py) put `loader_rate` (items/s through a DataLoader
with N workers) next to `train_rate` (samples/s of the model's step in a precision).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

PRECISIONS = ("fp32", "bf16")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_ceiling(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of an n×n @ n×n matmul in ``dtype`` on ``device`` (the 'physical' ceiling of that precision)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    began = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - began)


def ceilings(device: torch.device, precisions: list[str]) -> dict[str, float]:
    """{precision: 2048² matmul FLOP/s} for each precision named ("fp32" / "bf16")."""
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    return {p: matmul_ceiling(device, dtypes[p]) for p in precisions}


def parse_precisions(value: str) -> list[str]:
    """``--precision`` fp32 | bf16 | all -> the list of precisions to run."""
    if value == "all":
        return list(PRECISIONS)
    if value not in PRECISIONS:
        raise ValueError(f"--precision {value!r}: expected fp32, bf16 or all")
    return [value]


def in_precision(step: Callable[[], float], precision: str, device: torch.device) -> Callable[[], float]:
    """``step`` run under bf16 autocast (``precision == "bf16"``) or as it is (fp32)."""
    if precision == "fp32":
        return step

    def autocast_step() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return step()

    return autocast_step


def step_flops(step: Callable[[], float]) -> int:
    """FLOPs of one call of ``step`` (torch.utils.flop_counter; the call is also a warm-up)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def alternate(
    steps: dict[str, Callable[[], float]], rounds: int, device: torch.device, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds of each call of each step over ``rounds`` timed rounds (after ``warmup`` untimed ones);
    the order flips every round (ABBA)."""
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(warmup):
        for step in steps.values():
            step()
    for r in range(rounds):
        order = list(steps.items()) if r % 2 == 0 else list(reversed(steps.items()))
        for name, step in order:
            sync(device)
            began = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - began)
    return times


def time_variants(
    hf: torch.nn.Module,
    ours: torch.nn.Module,
    precisions: list[str],
    make_step: Callable[[torch.nn.Module, str], Callable[[], float]],
    device: torch.device,
    steps: int,
    compile_backend: str | None = None,
) -> tuple[dict[str, int], dict[str, list[float]]]:
    """HF in fp32 (the reference) and in each asked precision, anymae in each asked precision, every
    variant a copy of the same initial weights; -> (FLOPs per step, alternated step times) by
    "<model> <precision>". `make_step(model, kind)` builds one step of `model` ("hf" or "anymae").

    With ``compile_backend`` every model is compiled in place (``nn.Module.compile``) after its
    FLOPs are counted eagerly; two untimed rounds then compile (and settle any recompile) before
    the timed ones, so the figures are compiled steps against compiled steps."""
    variants = [("hf", prec) for prec in dict.fromkeys(["fp32", *precisions])]
    built: dict[str, Callable[[], float]] = {}
    models: list[torch.nn.Module] = []
    for kind, prec in variants + [("anymae", prec) for prec in precisions]:
        model = copy.deepcopy(hf if kind == "hf" else ours).to(device)
        models.append(model)
        built[f"{kind} {prec}"] = in_precision(make_step(model, kind), prec, device)
    flops = {k: step_flops(s) for k, s in built.items()}  # also the warm-up step
    if compile_backend is not None:
        for model in models:
            model.compile(backend=compile_backend)
        began = time.perf_counter()
        times = alternate(built, steps, device, warmup=2)
        print(f"compiled with backend={compile_backend}; compile + 2 warm-up rounds and the timed steps took "
              f"{time.perf_counter() - began:.0f} s")
        return flops, times
    return flops, alternate(built, steps, device)


def report(
    times: dict[str, list[float]], flops: dict[str, int], ceiling: dict[str, float], batch: int, unit: str, base: str
) -> dict[str, dict[str, Any]]:
    """Print one row per variant (name '<model> <precision>') and return the figures.

    Args:
        times: seconds per step, per variant (``alternate``).
        flops: FLOPs of one step, per variant (``step_flops``).
        ceiling: matmul FLOP/s per precision (``ceilings``); a variant is measured against its own.
        batch: samples per step; ``unit``: what a sample is ("samples", "clips").
        base: the variant the speed ratios divide (e.g. "hf fp32").
    """
    rows: dict[str, dict[str, Any]] = {}
    print(f"{'':14} {'s/step median [min-max]':>25} {unit + '/s':>10} {'GFLOP/' + unit[:-1]:>13} {'GFLOP/s':>9} "
          f"{'of ceiling':>10} {'vs ' + base:>11}")  # fmt: skip
    base_s = statistics.median(times[base])
    for name, t in times.items():
        med = statistics.median(t)
        achieved = flops[name] / med
        precision = name.split()[-1]
        row = {"median_s": med, "min_s": min(t), "max_s": max(t), "gflop_per_s": achieved / 1e9, "all_s": list(t),
               "of_ceiling": achieved / ceiling[precision], "ratio_vs_base": base_s / med}  # fmt: skip
        rows[name] = row
        spread = f"{med:.3f} [{min(t):.3f}-{max(t):.3f}]"
        print(f"{name:14} {spread:>25} {batch / med:10.2f} {flops[name] / batch / 1e9:13.2f} {achieved / 1e9:9.1f} "
              f"{row['of_ceiling']:10.1%} {row['ratio_vs_base']:10.2f}x")  # fmt: skip
    print("matmul ceiling (2048², same run): " + ", ".join(f"{p} {c / 1e9:.1f} GFLOP/s" for p, c in ceiling.items()))
    return rows


def loader_rate(dataset: Any, workers: int, batch: int) -> float:
    """Items per second through a DataLoader with ``workers`` processes, after its first batch
    (worker start-up and first imports are not counted; the dataset needs ≥ 2 batches)."""
    from torch.utils.data import DataLoader

    loader = iter(DataLoader(dataset, batch_size=batch, num_workers=workers))
    next(loader)
    began, n = time.perf_counter(), 0
    for x, *_ in loader:
        n += len(x)
    return n / (time.perf_counter() - began)


def train_rate(model: torch.nn.Module, x: torch.Tensor, steps: int, precision: str) -> float:
    """Samples per second of ``model``'s MAE step on ``x`` (forward + backward + fused AdamW) in
    ``precision`` ("fp32" / "bf16" autocast); one untimed warm-up step, then the median of ``steps``."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    counter = iter(range(10**9))

    def step() -> float:
        loss = model(x, seeds=torch.arange(len(x)) + next(counter)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    times = alternate({"step": in_precision(step, precision, x.device)}, steps, x.device)["step"]
    return len(x) / statistics.median(times)
