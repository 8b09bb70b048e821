"""Where the training loader's worker processes compute: their priority and the log line saying so.

On a CPU the loader's workers and the model's torch threads share the same few cores. torch splits
each operation of the step across its threads and waits for the slowest, so a worker that takes a
core away for a few milliseconds stalls the whole step for that long. Workers at a lower priority
(a higher ``nice``) still make every batch, in the time the model's threads leave idle (Python
between operations, waits on the next batch), instead of pre-empting them. `run.worker_nice`
("auto" = 10 on a CPU device, 0 on an accelerator, whose host threads mostly wait) sets it.

Measured on 2 cores (``benchmarks/end_to_end.py``, README "Speed") this moves the tiny presets'
steady rate closer to the bare step's. On an accelerator the host has cores to spare and other
jobs' loaders may share them, so workers keep the default priority there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

import torch

AUTO_CPU_NICE = 10  # CFS weight 110 against the model threads' 1024: ~10% of a contended core


def worker_nice(setting: int | str, device: torch.device) -> int:
    """The ``nice`` increment of the loader's workers: ``setting``, or for "auto" 10 on a CPU, else 0."""
    if setting == "auto":
        return AUTO_CPU_NICE if device.type == "cpu" else 0
    return int(setting)


def _lower_priority(nice: int, worker_id: int) -> None:
    if nice:
        os.nice(nice)  # this worker process only; the main process keeps its priority


def worker_init(nice: int) -> Callable[[int], None] | None:
    """A DataLoader ``worker_init_fn`` that raises each worker's niceness by ``nice`` (None for 0)."""
    return partial(_lower_priority, nice) if nice else None


def thread_placement(num_workers: int, nice: int = 0) -> str:
    """One line for the log: where the loader's processes and the model's threads compute."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    model = f"the model computes with {torch.get_num_threads()} torch thread(s) on {cpus} CPU(s)"
    if num_workers == 0:
        return f"threads: the main process loads the data; {model}"
    priority = f", at nice +{nice} (below the model: run.worker_nice)" if nice else ""
    return (f"threads: {num_workers} loader worker process(es), 1 torch thread each{priority}, kept for the whole "
            f"run; {model}")
