"""One optimizer step's worth of work: the run's micro-batches, forward + backward over them, and
the precision they run in.

Used by ``engine.train``; kept apart so the loop there reads top to bottom.

Precision ``"auto"``: bf16 autocast where the hardware computes bf16 natively, fp32 elsewhere.
On a CUDA device that is ``torch.cuda.is_bf16_supported()``; on a CPU it is a capability flag in
``/proc/cpuinfo`` (``CPU_BF16_FLAGS``: Intel AMX-BF16, AVX512-BF16 on Intel or AMD): a 2048² bf16
matmul ran 4.4x the fp32 rate on an AMX Xeon and 2x on an AVX512-BF16 EPYC, while on a CPU
without them (AVX2 only) bf16 is emulated and a ViT step ran 30x slower. Arm CPUs and machines
without ``/proc/cpuinfo`` keep fp32 (not measured). The environment variable ``ANYMAE_CPU_BF16``
(``1`` / ``0``) overrides the flag check. The decision is a fixed property of the machine (no
timing), so a resumed run on the same machine computes in the same precision.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Mapping
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from anymae.datasets.contract import SampleDataset
from anymae.tasks.train.distributed import DistInfo, grad_sync
from anymae.tasks.train.loader.sampler import EpochItems, RunBatchSampler, mix_seed
from anymae.tasks.train.loader.source_sampler import run_source_sampler, source_items
from anymae.tasks.train.loader.stream import stream_batches
from anymae.tasks.train.loader.workers import pack_batch, unpack_batch, worker_init, worker_nice
from anymae.tasks.train.config import OptimConfig, RunConfig

Objective = Callable[[nn.Module, Any], tuple[Tensor, Mapping[str, Any]]]
# Columns the engine writes itself; an objective's metrics must be named otherwise.
ENGINE_COLUMNS = ("step", "epoch", "loss", "lr", "samples_per_s")
# CPU flags (as /proc/cpuinfo spells them) of native bf16 matrix arithmetic.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPU_BF16_ENV = "ANYMAE_CPU_BF16"


@lru_cache(maxsize=1)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of this machine's CPU (the first ``flags`` / ``Features`` line); empty if unreadable."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_bf16(flags: Collection[str] | None = None, env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Whether the CPU computes bf16 natively, and why (for the log).

    Args:
        flags: the CPU's feature flags (default: ``cpu_flags()``).
        env: the environment (default: ``os.environ``); ``ANYMAE_CPU_BF16`` = ``1`` / ``0`` decides.

    Raises:
        ValueError: ``ANYMAE_CPU_BF16`` is set to something else than 1 or 0.
    """
    value = (os.environ if env is None else env).get(CPU_BF16_ENV)
    if value is not None:
        if value not in ("0", "1"):
            raise ValueError(f"{CPU_BF16_ENV}={value!r}: expected 1 (the CPU computes bf16 natively) or 0")
        return value == "1", f"{CPU_BF16_ENV}={value}"
    flags = cpu_flags() if flags is None else flags
    found = [flag for flag in CPU_BF16_FLAGS if flag in flags]
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    return False, f"the CPU has no native bf16 ({' / '.join(CPU_BF16_FLAGS)})"


def choose_precision(
    precision: str, device: torch.device, *, cpu: tuple[bool, str] | None = None
) -> tuple[torch.dtype | None, str]:
    """The autocast dtype of ``precision`` on ``device`` (None = fp32) and the reason, for the log.

    Args:
        precision: "fp32", "bf16" or "auto" (see the module doc).
        device: where the model computes.
        cpu: ``cpu_bf16()``'s answer, injected by tests (default: asked).
    """
    if precision == "bf16":
        return torch.bfloat16, "precision=bf16"
    if precision != "auto":
        return None, f"precision={precision}"
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
        return (torch.bfloat16 if native else None), f"auto: the CUDA device {'supports' if native else 'lacks'} bf16"
    if device.type == "cpu":
        native, why = cpu_bf16() if cpu is None else cpu
        return (torch.bfloat16 if native else None), f"auto: {why}"
    return None, f"auto: fp32 on a {device.type} device"


COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")  # run.compile: true = "inductor"


def compile_model(model: nn.Module, setting: bool | str) -> str | None:
    """``torch.compile`` the model's forward (and so its backward) in place, per ``run.compile``.

    ``nn.Module.compile`` keeps the module and its state-dict keys as they are, so checkpoints,
    EMA teachers and DDP (compiled around its wrapper, so that its bucket boundaries split the
    graph) see the same model. Returns the line for the log, or None when ``setting`` is false.
    """
    if setting is False:
        return None
    backend = "inductor" if setting is True else str(setting)
    model.compile(backend=backend)
    return (f"compile: torch.compile(backend={backend}) of the model's step (run.compile); the first steps "
            f"compile, and a new input shape compiles again")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for "bf16", or for "auto" where ``device`` computes bf16 natively (``choose_precision``); None = fp32."""
    return choose_precision(precision, device)[0]


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor (inside tuples / lists / dicts, or any object with ``.to``) moved to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if callable(getattr(batch, "to", None)):  # e.g. a torch_geometric Batch
        return batch.to(device)
    return batch


def run_batches(
    dataset: SampleDataset, optim_cfg: OptimConfig, run_cfg: RunConfig, info: DistInfo, start: int, stop: int
) -> Iterator[Any]:
    """This rank's micro-batches of optimizer steps ``[start, stop)`` (0-based over the run), across epochs.

    One DataLoader for the whole run: its ``num_workers`` processes start once and live until the
    iterator is dropped (see ``sampler.RunBatchSampler``). Each worker computes with one torch
    thread (torch sets it) at a lower priority on a CPU (``workers``); the main process keeps its
    threads for the model. Worker RNG seeds
    come from (seed, start, rank); the items' own randomness comes from the dataset's per-sample
    seeds, whichever process reads them. A dataset with a ``stream`` (tar shards) is read as a
    stream instead (``stream.stream_batches``).
    """
    if dataset.stream is not None:
        return stream_batches(dataset, optim_cfg, run_cfg, info, start, stop)
    mixed = source_items(dataset)  # data.source: mixed -> every batch from one source
    sampler: Any = run_source_sampler(
        mixed, optim_cfg.batch_size, world_size=info.world_size, rank=info.rank, accum_iter=optim_cfg.accum_iter,
        seed=run_cfg.seed, start=start, stop=stop,
    ) if mixed is not None else RunBatchSampler(
        len(dataset),
        optim_cfg.batch_size,
        world_size=info.world_size,
        rank=info.rank,
        accum_iter=optim_cfg.accum_iter,
        seed=run_cfg.seed,
        start=start,
        stop=stop,
    )
    workers = run_cfg.num_workers
    loader = DataLoader(
        EpochItems(dataset),
        batch_sampler=sampler,
        collate_fn=partial(pack_batch, dataset.collate) if workers else dataset.collate,  # small tensors by value
        num_workers=workers,
        pin_memory=info.device.type == "cuda",
        generator=torch.Generator().manual_seed(mix_seed(run_cfg.seed, start, info.rank)),  # worker seeds
        worker_init_fn=worker_init(worker_nice(run_cfg.worker_nice, info.device)),
    )
    return map(unpack_batch, loader) if workers else iter(loader)


def accumulate(
    model: nn.Module,
    batches: Iterator[Any],
    objective: Objective,
    accum_iter: int,
    device: torch.device,
    amp: torch.dtype | None,
) -> tuple[Tensor, list[str]]:
    """Forward + backward ``accum_iter`` micro-batches; grads are synced on the last one only.

    Returns:
        (values [1 + M]: loss then the objective's M metrics, each averaged over micro-batches;
        their names)

    Raises:
        ValueError: a metric is named like one of the engine's own columns (``ENGINE_COLUMNS``).
    """
    total: Tensor | None = None
    names: list[str] = []
    for micro in range(accum_iter):
        batch = to_device(next(batches), device)
        with grad_sync(model, enabled=micro == accum_iter - 1):
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss, metrics = objective(model, batch)
            (loss / accum_iter).backward()
        clash = [name for name in metrics if name in ENGINE_COLUMNS]
        if clash:
            raise ValueError(f"objective metric(s) {clash} clash with the engine's columns {ENGINE_COLUMNS}; rename them")
        names = ["loss", *metrics]
        extra = [torch.as_tensor(v, dtype=torch.float32, device=device).detach() for v in metrics.values()]
        values = torch.stack([loss.detach().float(), *extra])  # [1 + M]
        total = values if total is None else total + values
    assert total is not None
    return total / accum_iter, names
