"""The training loader's worker processes: their priority, how their batches travel, and the log line.

On a CPU the loader's workers and the model's torch threads share the same few cores. torch splits
each operation of the step across its threads and waits for the slowest, so a worker that takes a
core away for a few milliseconds stalls the whole step for that long. Workers at a lower priority
(a higher ``nice``) still make every batch, in the time the model's threads leave idle (Python
between operations, waits on the next batch), instead of pre-empting them. `run.worker_nice`
("auto" = 10 on a CPU device, 0 on an accelerator, whose host threads mostly wait) sets it.

Measured on 2 cores (``benchmarks/end_to_end.py``, README "Speed") this moves the tiny presets'
steady rate closer to the bare step's. On an accelerator the host has cores to spare and other
jobs' loaders may share them, so workers keep the default priority there.

A batch made in a worker reaches the main process pickled; each tensor in it travels through
shared memory, and torch's default sharing strategy hands every tensor's file descriptor over a
socket round trip to the worker (~0.4 ms each). The labels and seeds of a batch are a few hundred
bytes, so `pack_batch` sends tensors of at most `INLINE_NUMEL` elements inside the pickle as
numpy arrays instead, and `unpack_batch` makes them tensors again in the main process (the same
values, dtype and shape): on the tiny audio preset the main process's time per received batch
went from ~2.5 to ~2.0 ms.

What is left still makes workers a loss where batches are cheap: on 2 cores, the tiny audio
preset's 3–4 ms batches cost the model more through workers than in the main process. So
`run.num_workers: auto` (`choose_workers`) times two batches made in the main process once the
decoded-file cache is filled, and loads in the main process when a batch takes under
`AUTO_MAIN_MS`; otherwise it starts workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor

AUTO_CPU_NICE = 10  # CFS weight 110 against the model threads' 1024: ~10% of a contended core
# run.num_workers=auto: batches cheaper than this are made in the main process. Measured on 2 cores
# (README "Speed"): 3–4 ms audio batches gave 0.89–0.94 of the bare step in the main process and
# 0.63–0.84 through workers; 25–30 ms image batches 1.01 through workers, ~0.91 in the main process.
AUTO_MAIN_MS = 10.0
AUTO_MAX_WORKERS = 4
INLINE_NUMEL = 1 << 16  # tensors up to 64 Ki elements travel inside the pickled batch
_NUMPY_DTYPES = frozenset({torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                           torch.float16, torch.float32, torch.float64})  # fmt: skip


class _Inline:
    """A small tensor on its way from a worker, as the numpy array it shares memory with."""

    __slots__ = ("array",)

    def __init__(self, array: Any) -> None:
        self.array = array


def _pack(value: Any) -> Any:
    if isinstance(value, Tensor):
        small = value.numel() <= INLINE_NUMEL and value.dtype in _NUMPY_DTYPES and value.device.type == "cpu"
        return _Inline(value.detach().numpy()) if small and not value.requires_grad else value
    if type(value) in (tuple, list):
        return type(value)(_pack(v) for v in value)
    if type(value) is dict:
        return {k: _pack(v) for k, v in value.items()}
    return value


def unpack_batch(value: Any) -> Any:
    """A batch from `pack_batch` with its small tensors made tensors again (in the main process)."""
    if isinstance(value, _Inline):
        return torch.from_numpy(value.array)
    if type(value) in (tuple, list):
        return type(value)(unpack_batch(v) for v in value)
    if type(value) is dict:
        return {k: unpack_batch(v) for k, v in value.items()}
    return value


def pack_batch(collate: Callable[[Any], Any], items: Any) -> Any:
    """``collate(items)`` with its small CPU tensors (inside tuples, lists and dicts) sent by value:
    a worker's ``collate_fn`` (bind ``collate`` with ``functools.partial``)."""
    return _pack(collate(items))


def cpu_count() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def workers_for(setting: int | str) -> int:
    """``run.num_workers`` without a measurement: the number, or for "auto" one worker per CPU, 1 to 4
    (what an evaluation loader, or a run whose batches are not timed, uses)."""
    return max(1, min(AUTO_MAX_WORKERS, cpu_count())) if setting == "auto" else int(setting)


def choose_workers(
    setting: int | str, make_batches: Callable[[int], int] | None, clock: Callable[[], float] = time.perf_counter
) -> tuple[int, str]:
    """The training loader's worker processes for ``run.num_workers`` = ``setting``, and why (for the log).

    "auto" times ``make_batches(n)`` (makes the run's first n micro-batches in this process and
    returns how many it made): one untimed (first calls are slow; when even that one takes 4 ×
    `AUTO_MAIN_MS` the data is clearly costly and workers are chosen at once), then two timed.
    Under `AUTO_MAIN_MS` per batch the main process makes them (no workers, no transfers);
    otherwise `workers_for` ("auto"). ``make_batches`` None (a stream of shards, read by workers)
    skips the timing. ``clock``: seconds, injected by tests.
    """
    if setting != "auto":
        return int(setting), f"run.num_workers={setting}"
    workers = workers_for("auto")
    if make_batches is None:
        return workers, "run.num_workers=auto: the data is streamed"
    began = clock()
    make_batches(1)
    ms = (clock() - began) * 1e3
    if ms < 4 * AUTO_MAIN_MS:
        began = clock()
        count = make_batches(2)
        ms = (clock() - began) * 1e3 / max(count, 1)
    if ms < AUTO_MAIN_MS:
        return 0, (f"run.num_workers=auto: a batch takes {ms:.1f} ms to make here, under {AUTO_MAIN_MS:g} ms, "
                   "so worker processes would cost more than they save")
    return workers, f"run.num_workers=auto: a batch takes {ms:.1f} ms to make here"


def worker_nice(setting: int | str, device: torch.device) -> int:
    """The ``nice`` increment of the loader's workers: ``setting``, or for "auto" 10 on a CPU, else 0."""
    if setting == "auto":
        return AUTO_CPU_NICE if device.type == "cpu" else 0
    return int(setting)


def _lower_priority(nice: int, worker_id: int) -> None:
    if nice and hasattr(os, "nice"):  # POSIX
        os.nice(nice)  # this worker process only; the main process keeps its priority


def worker_init(nice: int) -> Callable[[int], None] | None:
    """A DataLoader ``worker_init_fn`` that raises each worker's niceness by ``nice`` (None for 0)."""
    return partial(_lower_priority, nice) if nice else None


def thread_placement(num_workers: int, nice: int = 0, why: str = "") -> str:
    """One line for the log: where the loader's processes and the model's threads compute (and why)."""
    model = f"the model computes with {torch.get_num_threads()} torch thread(s) on {cpu_count()} CPU(s)"
    because = f" ({why})" if why else ""
    if num_workers == 0:
        return f"threads: the main process loads the data{because}; {model}"
    priority = f", at nice +{nice} (below the model: run.worker_nice)" if nice else ""
    return (f"threads: {num_workers} loader worker process(es){because}, 1 torch thread each{priority}, kept for "
            f"the whole run; {model}")
