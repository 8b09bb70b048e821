"""torchrun-based data parallelism: one code path for one process, DDP and FSDP.

Launch with ``torchrun --nproc_per_node N script.py``; torchrun sets RANK / WORLD_SIZE /
LOCAL_RANK. Without WORLD_SIZE the same functions run one process with no wrapper.

FSDP uses ``torch.distributed.fsdp.fully_shard`` (FSDP2): every transformer block (each child
of a ``ModuleList`` named ``blocks``) is its own shard unit, then the root. Parameter names stay
unchanged, and it runs on CPU/gloo as well as CUDA/nccl (the older wrapper class crashes when
gathering a full state dict on CPU).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job.

    Attributes:
        rank: global rank (0 in one process).
        world_size: number of processes (1 in one process).
        local_rank: rank on this machine (selects the CUDA device).
        device: the device this process computes on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r}: expected an integer (set by torchrun)") from None


def resolve_device(kind: Literal["auto", "cpu", "cuda"], local_rank: int = 0) -> torch.device:
    """"auto" -> ``cuda:LOCAL_RANK`` when CUDA is available, else CPU."""
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' was asked for, but torch sees no CUDA device")
        return torch.device("cuda", local_rank)
    if kind == "cpu":
        return torch.device("cpu")
    raise ValueError(f"device={kind!r}: expected 'auto', 'cpu' or 'cuda'")


def init_distributed(device_kind: Literal["auto", "cpu", "cuda"] = "auto") -> DistInfo:
    """Join the torchrun job described by RANK / WORLD_SIZE / LOCAL_RANK (gloo on CPU, nccl on CUDA).

    Without WORLD_SIZE (a plain ``python`` run) returns a one-process ``DistInfo``. Idempotent:
    the process group is created once per process and reused by later calls (so one script may
    train several times); ``shutdown()`` destroys it at the end of the script.
    """
    world = _env_int("WORLD_SIZE")
    rank, local_rank = _env_int("RANK") or 0, _env_int("LOCAL_RANK") or 0
    device = resolve_device(device_kind, local_rank)
    if world is None:
        return DistInfo(device=device)
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}")
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def shutdown() -> None:
    """Destroy the process group, if any (call once, at the end of a torchrun script).

    Not done inside ``train``: destroying and re-creating a group in one process races on the
    rendezvous keys (gloo then fails with "Connection closed by peer").
    """
    if dist.is_initialized():
        # every rank arrives before any tears down: a rank that destroys its gloo pairs while
        # another still talks to them aborts the other ("terminate called without an active exception")
        dist.barrier()
        dist.destroy_process_group()


def _block_modules(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks: children of every ``ModuleList`` whose name ends in ``blocks``."""
    return [
        block
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and name.split(".")[-1] == "blocks"
        for block in module
    ]


def wrap_model(model: nn.Module, info: DistInfo, strategy: Literal["ddp", "fsdp"] = "ddp") -> nn.Module:
    """Move ``model`` to ``info.device`` and wrap it for data parallelism (in one process: no wrapper).

    "ddp": ``DistributedDataParallel(find_unused_parameters=False)``; it broadcasts rank 0's
    weights. "fsdp": ``fully_shard`` on every transformer block, then on the root (in place).
    """
    device = info.device
    model.to(device)
    if not info.enabled:
        return model
    if strategy == "ddp":
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in _block_modules(model):
            fully_shard(block)
        fully_shard(model)
        return model
    raise ValueError(f"strategy={strategy!r}: expected 'ddp' or 'fsdp'")


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a DDP wrapper (an FSDP2 model is its own bare model)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


@contextlib.contextmanager
def grad_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Turn off the gradient all-reduce for non-final accumulation micro-steps."""
    if enabled or not dist.is_initialized():
        yield
    elif isinstance(model, DistributedDataParallel):
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def mean_over_ranks(values: Tensor) -> Tensor:
    """The element-wise mean of ``values`` (any shape) over all ranks; a copy in one process."""
    values = values.detach().clone()
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)  # gloo has no AVG
        values /= dist.get_world_size()
    return values


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full (unsharded, CPU) model and optimizer state dicts, keyed by parameter name.

    A collective under FSDP: every rank must call it; the dicts are complete on rank 0.
    """
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_state_dict(model, optimizer, options=options)


def load_full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict[str, Any], optim_state: dict[str, Any]
) -> None:
    """Load ``full_state`` dicts into a (possibly wrapped / sharded) model and its optimizer.

    Every rank passes the full dicts (each reads the checkpoint file); FSDP keeps its shard.
    """
    options = StateDictOptions(full_state_dict=True)
    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optim_state, options=options)
