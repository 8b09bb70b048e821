"""One optimizer step's worth of work: this rank's micro-batches, and forward + backward over them.

Used by ``engine.train``; kept apart so the loop there reads top to bottom.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from anymae.datasets.contract import SampleDataset
from anymae.tasks.train.distributed import DistInfo, grad_sync
from anymae.tasks.train.sampler import ShardedBatchSampler, mix_seed
from anymae.tasks.train.config import OptimConfig, RunConfig

Objective = Callable[[nn.Module, Any], tuple[Tensor, Mapping[str, Any]]]
# Columns the engine writes itself; an objective's metrics must be named otherwise.
ENGINE_COLUMNS = ("step", "epoch", "loss", "lr", "samples_per_s")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for "bf16", or for "auto" on a CUDA device that supports it; None = fp32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return None


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


def epoch_batches(
    dataset: SampleDataset, optim_cfg: OptimConfig, run_cfg: RunConfig, info: DistInfo, epoch: int, start_step: int
) -> Iterator[Any]:
    """This rank's micro-batches of ``epoch`` from optimizer step ``start_step`` (within the epoch) on."""
    dataset.set_epoch(epoch)
    sampler = ShardedBatchSampler(
        len(dataset),
        optim_cfg.batch_size,
        world_size=info.world_size,
        rank=info.rank,
        accum_iter=optim_cfg.accum_iter,
        seed=run_cfg.seed,
        epoch=epoch,
        start_step=start_step,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=dataset.collate,
        num_workers=run_cfg.num_workers,
        pin_memory=info.device.type == "cuda",
        generator=torch.Generator().manual_seed(mix_seed(run_cfg.seed, epoch, info.rank)),  # worker seeds
    )
    return iter(loader)


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
