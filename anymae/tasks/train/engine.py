"""The training engine, written once for every modality: ``train(model, dataset, objective, ...)``.

One plain loop over optimizer steps. Everything random flows from ``run_cfg.seed``:

- data order: ``ShardedBatchSampler`` — a permutation per (seed, epoch), sharded across ranks;
- per-sample randomness (masks, augmentations): the dataset's per-sample seeds;
- dropout / drop-path: the global torch RNG, re-seeded at every optimizer step from
  (seed, step, rank).

After every optimizer step (not per micro-batch) the engine calls the bare model's
``after_step(step)`` if it has one (``MaskedAutoencoder.after_step``: EMA teachers update there).

The lr is a pure function of the step (``schedule.lr_at`` over ``optim.schedule_steps`` or the
epochs). So a run resumed from ``last.pt`` (model, optimizer, step) continues exactly as if it had
not stopped, with no RNG or sampler state saved.

What makes the run fast is said once at its start (on stderr, rank 0): the precision and why,
the lr schedule, where the loader's processes and the model's threads compute, and the decoded-
file cache (``run.cache``). The loader is one DataLoader for the whole run (``steps.run_batches``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from anymae.core.config import dump_yaml, to_dict
from anymae.core.io import writable_dir
from anymae.datasets.cache import prepare_cache
from anymae.datasets.contract import SampleDataset, as_samples
from anymae.tasks.train.checkpoint import (
    LAST,
    CheckpointError,
    compare_keys,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    step_filename,
)
from anymae.tasks.train.distributed import DistInfo, full_state, init_distributed, load_full_state, mean_over_ranks, unwrap, wrap_model
from anymae.tasks.train.logging import MetricsLogger, progress_bar
from anymae.tasks.train.optim import build_optimizer
from anymae.tasks.train.loader.sampler import mix_seed, steps_per_epoch
from anymae.tasks.train.loader.source_sampler import run_source_sampler, source_items
from anymae.tasks.train.schedule import absolute_lr, lr_at, set_lr
from anymae.tasks.train.steps import Objective, accumulate, choose_precision, compile_model, run_batches
from anymae.tasks.train.loader.workers import choose_workers, thread_placement, worker_nice
from anymae.tasks.train.config import OptimConfig, RunConfig

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN / Inf (with ``on_nan="stop"``), or ``on_nan="skip"`` dropped more than
    ``run.max_skipped_fraction`` of the run's steps; the message names the step."""


def _resume_hint(out_dir: Path) -> str:
    """Where a stopped run can continue from: only a checkpoint that exists is named."""
    path = latest_checkpoint(out_dir)
    if path is None:
        return f"no checkpoint was written to '{out_dir}' yet, so the run must start again"
    return f"'{path}' holds the last saved step (resume with --resume)"


@dataclass
class TrainResult:
    """What a finished ``train`` call did.

    Attributes:
        step: optimizer steps done in total (including those of earlier, resumed runs).
        last_loss: mean loss of the last step (NaN if that step was skipped).
        skipped_steps: updates dropped for a non-finite loss (``on_nan="skip"``), in total.
        checkpoint: the final ``last.pt``.
        out_dir: the run directory.
        model: the trained model (unwrapped from DDP / FSDP; this rank's replica).
    """

    step: int
    last_loss: float
    skipped_steps: int
    checkpoint: Path
    out_dir: Path
    model: nn.Module | None = None


def _batch_maker(
    dataset: SampleDataset, optim_cfg: OptimConfig, run_cfg: RunConfig, info: DistInfo, start: int, total: int
) -> Callable[[int], int] | None:
    """For ``run.num_workers=auto``: ``make(n)`` makes the run's first n micro-batches in this process
    (the same items the loader makes next: they depend on their seeds alone) and returns how many
    it made; None for a stream of shards."""
    if dataset.stream is not None:
        return None

    def make(count: int) -> int:
        here = dataclasses.replace(run_cfg, num_workers=0)
        return sum(1 for _, _ in zip(range(count), run_batches(dataset, optim_cfg, here, info, start, total)))

    return make


def pretrain_objective(model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
    """MAE pretraining: batch ``(x, label, seeds)`` -> ``model(x, seeds=seeds)``'s loss and its parts.

    ``seeds`` holds one mask seed per input of ``x`` (the dataset's ``collate`` gives each of an
    item's repeated clips its own, see ``SeededSamples``). The returned metrics are the model's
    ``MAEOutput.parts`` (every named part of the loss, detached), logged next to ``loss``.
    """
    x, _label, seeds = batch
    out = model(x, seeds=seeds)
    return out.loss, dict(out.parts)


def _save(
    out_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    info: DistInfo,
    keep_step_file: bool,
    **fields: Any,
) -> Path:
    """Gather the full state (a collective under FSDP) and write ``last.pt`` from rank 0."""
    model_state, optim_state = full_state(model, optimizer)
    path = out_dir / LAST
    if info.is_main:
        state = {"model": model_state, "optimizer": optim_state, **fields}
        save_checkpoint(path, state)
        if keep_step_file:
            save_checkpoint(out_dir / step_filename(fields["step"]), state)
    return path


def lr_schedule(optim_cfg: OptimConfig, per_epoch: int, peak_lr: float) -> dict[str, float]:
    """``schedule.lr_at``'s keyword arguments for this run.

    Default: MAE's schedule over ``optim.epochs`` epochs of ``per_epoch`` steps. With
    ``optim.schedule_steps`` = S: the same shape over S steps (warmup ``S × warmup_epochs / epochs``
    steps, then the cosine down to ``min_lr`` at step S), counted in steps.
    """
    common = {"lr": peak_lr, "min_lr": optim_cfg.min_lr}
    if optim_cfg.schedule_steps is None:
        return {**common, "warmup_epochs": optim_cfg.warmup_epochs, "epochs": optim_cfg.epochs,
                "iters_per_epoch": per_epoch}
    steps = optim_cfg.schedule_steps
    return {**common, "warmup_epochs": steps * optim_cfg.warmup_epochs / optim_cfg.epochs, "epochs": steps,
            "iters_per_epoch": 1}


def _schedule_line(schedule: dict[str, float], optim_cfg: OptimConfig, total: int) -> str:
    """The lr schedule in steps, for the start of a run; says when the run stops before its end."""
    steps = schedule["epochs"] * schedule["iters_per_epoch"]
    warmup = schedule["warmup_epochs"] * schedule["iters_per_epoch"]
    source = "optim.schedule_steps" if optim_cfg.schedule_steps is not None else \
        f"optim.epochs={optim_cfg.epochs} × {schedule['iters_per_epoch']:g} steps per epoch"  # fmt: skip
    line = (f"lr schedule: {warmup:g} warmup steps, then cosine to min_lr {schedule['min_lr']:g} at step {steps:g} "
            f"({source}); peak lr {schedule['lr']:.4g}")
    if total < steps:
        line += (f"; this run stops at step {total} (run.max_steps), before the lr decays: set "
                 f"optim.schedule_steps={total} to warm up and decay within it")
    return line


def _restore(
    out_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, run_info: dict[str, Any]
) -> dict[str, Any]:
    """Load the newest checkpoint of ``out_dir`` into model and optimizer; returns the checkpoint."""
    path = latest_checkpoint(out_dir)
    if path is None:
        raise FileNotFoundError(
            f"nothing to resume: run.out_dir '{out_dir}' holds no last.pt or step_*.pt; check the path, "
            "or drop --resume (run.resume=true) to start a new run"
        )
    ckpt = load_checkpoint(path)
    same = {"samples_per_step": "batch_size × accum_iter × world_size", "steps_per_epoch": "the dataset size"}
    for key, what in same.items():
        was, now = ckpt.get("run", {}).get(key), run_info[key]
        if was != now:
            raise CheckpointError(
                f"cannot resume from '{path}': it was trained with {key}={was}, this run has {now} ({what}); "
                "the data order and the lr schedule would differ"
            )
    report = compare_keys(unwrap(model), ckpt["model"])
    if not report.ok:
        raise CheckpointError(f"cannot resume from '{path}': its model does not match:\n{report.describe()}")
    load_full_state(model, optimizer, ckpt["model"], ckpt["optimizer"])
    log.info("resumed from %s at step %d", path, ckpt["step"])
    return ckpt


def train(
    model: nn.Module,
    dataset: Dataset,
    objective: Objective,
    optim_cfg: OptimConfig,
    run_cfg: RunConfig,
    *,
    full_config: Mapping[str, Any] | Any,
) -> TrainResult:
    """Train ``model`` on ``dataset`` by minimizing ``objective`` (one process, or one torchrun rank).

    Under torchrun the process group is created on the first call and kept for later calls;
    end the script with ``anymae.tasks.train.distributed.shutdown()``.

    Args:
        model: the bare model (it is moved to the device and wrapped here).
        dataset: map-style dataset following the dataset contract (``anymae.datasets.contract``;
            a plain torch dataset gets its defaults): ``set_epoch(e)`` is called before the
            items of epoch e are read, in the process that reads them (``sampler.EpochItems``),
            ``collate`` batches the items, and ``decode_cache`` is filled per ``run.cache``.
        objective: ``(model, batch) -> (scalar loss, {name: number})``; e.g. ``pretrain_objective``.
        optim_cfg: optimizer / schedule / batch recipe.
        run_cfg: where and how to run.
        full_config: the resolved config of the whole run (a mapping of plain values or a config
            dataclass); written to ``out_dir/config.yaml`` and into every checkpoint.

    Returns:
        ``TrainResult``; writes ``config.yaml``, ``metrics.csv``, ``last.pt`` (+ ``tensorboard/``).

    Raises:
        NonFiniteLossError: a non-finite loss with ``on_nan="stop"`` (names the step, the
            last finite loss and the checkpoint to resume from, if one exists), or more than
            ``run_cfg.max_skipped_fraction`` of the run's steps skipped with ``on_nan="skip"``.
        FileExistsError: ``out_dir`` already holds a checkpoint and ``resume`` is False.
        FileNotFoundError: ``resume`` is True but ``out_dir`` holds no checkpoint.
        NotADirectoryError, PermissionError: ``out_dir`` is a file or cannot be written.
    """
    info = init_distributed(run_cfg.device)
    return _train(model, as_samples(dataset), objective, optim_cfg, run_cfg, to_dict(full_config), info)


def _train(
    model: nn.Module,
    dataset: SampleDataset,
    objective: Objective,
    optim_cfg: OptimConfig,
    run_cfg: RunConfig,
    config: dict[str, Any],
    info: DistInfo,
) -> TrainResult:
    out_dir = writable_dir(run_cfg.out_dir, "run.out_dir")
    if not run_cfg.resume and latest_checkpoint(out_dir) is not None:
        raise FileExistsError(f"'{out_dir}' already holds a checkpoint; set resume=True or use another out_dir")
    mixed = source_items(dataset)  # several sources, one per batch (data.source: mixed)
    if mixed is not None:
        per_epoch = run_source_sampler(mixed, optim_cfg.batch_size, world_size=info.world_size, rank=info.rank,
                                       accum_iter=optim_cfg.accum_iter, seed=run_cfg.seed).steps
    else:
        per_epoch = steps_per_epoch(len(dataset), optim_cfg.batch_size, info.world_size, optim_cfg.accum_iter)
    total = per_epoch * optim_cfg.epochs
    if run_cfg.max_steps is not None:
        total = min(total, run_cfg.max_steps)
    samples_per_step = optim_cfg.batch_size * optim_cfg.accum_iter * info.world_size
    # a recipe's factor on the blr rule (`MaskedAutoencoder.lr_scale`; DMJD: pred_ratio / mask_ratio); not on optim.lr
    lr_scale = float(getattr(model, "lr_scale", 1.0))
    peak_lr = optim_cfg.lr if optim_cfg.lr is not None else absolute_lr(optim_cfg.blr, samples_per_step) * lr_scale
    amp, precision_why = choose_precision(run_cfg.precision, info.device)
    schedule = lr_schedule(optim_cfg, per_epoch, peak_lr)
    run_info = {  # the engine's resolved settings, saved in every checkpoint
        "world_size": info.world_size,
        "samples_per_step": samples_per_step,
        "steps_per_epoch": per_epoch,
        "total_steps": total,
        "peak_lr": peak_lr,
        "lr_scale": lr_scale,
        "schedule_steps": schedule["epochs"] * schedule["iters_per_epoch"],
        "warmup_steps": schedule["warmup_epochs"] * schedule["iters_per_epoch"],
        "device": str(info.device),
        "precision": "bf16" if amp is not None else "fp32",
        "optim": to_dict(optim_cfg),
        "run": to_dict(run_cfg),
    }

    wrapped = wrap_model(model, info, run_cfg.strategy)
    compiled = compile_model(wrapped, run_cfg.compile)
    optimizer = build_optimizer(
        unwrap(wrapped),
        lr=peak_lr,
        weight_decay=optim_cfg.weight_decay,
        betas=optim_cfg.betas,
        decay_tokens=optim_cfg.decay_tokens,
        layer_decay=optim_cfg.layer_decay,
        optimizer=optim_cfg.optimizer,
        decay_all=optim_cfg.decay_all,
    )
    ckpt = _restore(out_dir, wrapped, optimizer, run_info) if run_cfg.resume else {}
    start, skipped = ckpt.get("step", 0), ckpt.get("skipped_steps", 0)
    header = [f"precision: {run_info['precision']} ({precision_why})", _schedule_line(schedule, optim_cfg, total),
              *([compiled] if compiled else [])]
    batches: Iterator[Any] = iter(())
    if start < total:
        header.append(prepare_cache(dataset, run_cfg.cache, run_cfg.cache_mb))
        maker = _batch_maker(dataset, optim_cfg, run_cfg, info, start, total)
        workers, why = choose_workers(run_cfg.num_workers, maker)
        loader_cfg = dataclasses.replace(run_cfg, num_workers=workers)
        header.append(thread_placement(workers, worker_nice(run_cfg.worker_nice, info.device), why))
        batches = run_batches(dataset, optim_cfg, loader_cfg, info, start, total)  # one loader for the whole run
    if info.is_main:
        print("\n".join(header), file=sys.stderr, flush=True)
        dump_yaml(config, out_dir / "config.yaml")
    metrics = MetricsLogger(out_dir, append=bool(ckpt), keep_until=start, tensorboard=run_cfg.tensorboard,
                            enabled=info.is_main)
    bar = progress_bar(total, start, enabled=info.is_main)
    last_finite: tuple[int, float] | None = None
    loss, tick, ticked_steps = math.nan, time.perf_counter(), 0
    wrapped.train()
    try:
        for it in range(start, total):  # `it` is 0-based; `step` = it + 1 = optimizer steps done
            epoch = it // per_epoch
            torch.manual_seed(mix_seed(run_cfg.seed, it, info.rank))  # dropout / drop-path
            lr = lr_at(it, **schedule)
            set_lr(optimizer, lr)
            values, names = accumulate(wrapped, batches, objective, optim_cfg.accum_iter, info.device, amp)
            stats = dict(zip(names, mean_over_ranks(values).tolist()))
            loss, step = stats["loss"], it + 1
            if math.isfinite(loss):
                if optim_cfg.clip_grad is not None:
                    torch.nn.utils.clip_grad_norm_(wrapped.parameters(), optim_cfg.clip_grad)
                optimizer.step()
                after_step = getattr(unwrap(wrapped), "after_step", None)  # e.g. EMA teachers' update
                if callable(after_step):
                    after_step(step)
                last_finite = (step, loss)
            elif run_cfg.on_nan == "skip":
                skipped += 1
                if skipped > run_cfg.max_skipped_fraction * total:
                    raise NonFiniteLossError(
                        f"on_nan='skip' dropped {skipped} of the run's {total} optimizer steps for a non-finite "
                        f"loss (the last at step {step}), more than run.max_skipped_fraction="
                        f"{run_cfg.max_skipped_fraction:g}; the run is diverging: lower the lr or set clip_grad; "
                        f"{_resume_hint(out_dir)}"
                    )
            else:
                last = f"loss {last_finite[1]:.6g} at step {last_finite[0]}" if last_finite else "none in this run"
                raise NonFiniteLossError(
                    f"non-finite loss ({loss}) at step {step} (epoch {epoch}); last finite: {last}. "
                    f"Lower the lr, set clip_grad, or set run.on_nan=skip; {_resume_hint(out_dir)}"
                )
            optimizer.zero_grad(set_to_none=True)

            ticked_steps += 1
            if step % run_cfg.log_every == 0 or step == total:
                now = time.perf_counter()
                rate = ticked_steps * samples_per_step / max(now - tick, 1e-9)
                metrics.log({"step": step, "epoch": epoch, **stats, "lr": lr, "samples_per_s": rate})
                shown = {name: f"{value:.4f}" for name, value in stats.items()}  # loss and every metric
                bar.set_postfix(**shown, lr=f"{lr:.2e}", samples_s=f"{rate:.1f}", refresh=False)
                tick, ticked_steps = now, 0
            bar.update(1)
            if step % run_cfg.ckpt_every == 0 or step == total:
                fields = {"step": step, "epoch": step // per_epoch, "skipped_steps": skipped}
                _save(out_dir, wrapped, optimizer, info, run_cfg.keep_step_checkpoints,
                      **fields, config=config, run=run_info)
    finally:
        batches = iter(())  # drops the loader's iterator: its worker processes stop
        bar.close()
        metrics.close()
    if skipped and info.is_main:
        log.warning("skipped %d optimizer step(s) with a non-finite loss", skipped)
    return TrainResult(
        step=max(total, start), last_loss=loss, skipped_steps=skipped, checkpoint=out_dir / LAST, out_dir=out_dir,
        model=unwrap(wrapped),
    )
