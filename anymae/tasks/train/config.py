"""Configs of the training engine: the optimizer recipe and how a run is executed.

Every command keeps how it executes under one section, `run`: `RunConfig` for the commands that write
a run directory (pretrain, finetune, fewshot's fine-tuning folds), `EvalRunConfig` (its `device` and
`num_workers` keys only) for those that read data and write at most a results file (probe,
probe-nodes, channel-subsets, stats). So `run.device` and `run.num_workers` mean the same everywhere.

All are plain dataclasses (`anymae.core.config.from_dict` / `to_dict` read and write them);
their defaults are MAE's pretraining recipe (blr 1.5e-4, AdamW (0.9, 0.95), wd 0.05,
40 warmup epochs of 800).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from anymae.core.config import alternatives, check_field


Device = Literal["auto", "cpu", "cuda"]


_check = check_field  # a FieldError: the config loader blames the field's own key


def _check_execution(device: str, num_workers: int) -> None:
    """The keys `RunConfig` and `EvalRunConfig` share."""
    _check(device in ("auto", "cpu", "cuda"), "device", device, "'auto', 'cpu' or 'cuda'")
    _check(type(num_workers) is int and num_workers >= 0, "num_workers", num_workers,
           "an int >= 0 (training: or 'auto')")


@dataclass
class OptimConfig:
    """AdamW, lr scaling and the warmup + half-cycle cosine schedule.

    Attributes:
        blr: base lr; the absolute lr is ``blr * eff_batch / 256`` with
            ``eff_batch = batch_size * accum_iter * world_size``.
        lr: absolute lr; when set it overrides ``blr``. ``blr`` and ``lr`` are alternatives: the one
            given on the command line wins, and clears the other one set in the config file (an
            info line says so); giving both on the command line is an error.
        min_lr: lr at the end of the cosine.
        weight_decay: AdamW decoupled weight decay (biases and 1-D params get 0).
        betas: AdamW betas.
        epochs: length of the schedule in epochs.
        warmup_epochs: linear warmup from 0, in epochs.
        schedule_steps: length of the lr schedule in optimizer steps; None = ``epochs`` × steps per
            epoch. Set it to ``run.max_steps`` for a short run to warm up and decay within the run
            (warmup then lasts ``schedule_steps × warmup_epochs / epochs`` steps). The engine prints
            the schedule (warmup steps, total steps, peak lr) at the start.
        batch_size: samples per micro-batch per process.
        accum_iter: micro-batches accumulated per optimizer step.
        clip_grad: max global grad norm; None = no clipping.
        decay_tokens: True = MAE pretraining (cls / mask tokens decayed); False also excludes the
            names in ``model.no_weight_decay()`` from weight decay.
        layer_decay: layer-wise lr decay (fine-tuning); None = off.
        optimizer: "adamw" (decoupled weight decay, MAE) or "adam" (``torch.optim.Adam``: L2 weight
            decay added to the gradient, GraphMAE's ``create_optimizer("adam", ...)``).
        decay_all: True = every parameter is decayed, biases and 1-D params included (GraphMAE
            passes ``model.parameters()`` to Adam as one group).
    """

    blr: float = field(default=1.5e-4, metadata=alternatives("lr"))
    lr: float | None = field(default=None, metadata=alternatives("blr"))
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    epochs: int = 800
    warmup_epochs: int = 40
    schedule_steps: int | None = None
    batch_size: int = 64
    accum_iter: int = 1
    clip_grad: float | None = None
    decay_tokens: bool = True
    layer_decay: float | None = None
    optimizer: Literal["adamw", "adam"] = "adamw"
    decay_all: bool = False

    def __post_init__(self) -> None:
        _check(self.blr > 0, "blr", self.blr, "> 0")
        _check(self.lr is None or self.lr > 0, "lr", self.lr, "None or > 0")
        _check(self.min_lr >= 0, "min_lr", self.min_lr, ">= 0")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas", self.betas,
               "two values in [0, 1)")
        _check(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        _check(0 <= self.warmup_epochs <= self.epochs, "warmup_epochs", self.warmup_epochs,
               f"between 0 and epochs={self.epochs}")
        _check(self.schedule_steps is None or self.schedule_steps >= 1, "schedule_steps", self.schedule_steps,
               "None or >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        _check(self.accum_iter >= 1, "accum_iter", self.accum_iter, ">= 1")
        _check(self.clip_grad is None or self.clip_grad > 0, "clip_grad", self.clip_grad, "None or > 0")
        _check(self.layer_decay is None or 0 < self.layer_decay <= 1, "layer_decay", self.layer_decay,
               "None or in (0, 1]")
        _check(self.optimizer in ("adamw", "adam"), "optimizer", self.optimizer, "'adamw' or 'adam'")


@dataclass
class RunConfig:
    """Where and how a training run executes.

    Attributes:
        out_dir: run directory (config.yaml, metrics.csv, last.pt, tensorboard/).
        seed: the one seed of data order, masks (via per-sample seeds) and dropout.
        ckpt_every: write ``last.pt`` every this many optimizer steps (and at the end).
        log_every: append a metrics row every this many optimizer steps.
        max_steps: stop after this many optimizer steps; the lr schedule still spans
            ``optim.epochs`` unless ``optim.schedule_steps`` says otherwise (so a stopped run can be
            resumed with a larger ``max_steps`` and continue exactly).
        precision: "auto" = bf16 autocast where the device computes bf16 natively (a CUDA device
            that supports it; a CPU with AMX-BF16 or AVX512-BF16), else fp32; the choice and its
            reason are logged (see ``steps.choose_precision``).
        device: "auto" = CUDA when available (``cuda:LOCAL_RANK``), else CPU.
        compile: ``torch.compile`` the model's step: false (default), true (= "inductor": C++ on
            a CPU, Triton on CUDA; needs a compiler), or a backend, "aot_eager" / "eager" (no code
            generation: checks that the model traces). The first steps pay the compile.
        num_workers: DataLoader worker processes, started once and kept for the whole run; "auto"
            (default) makes a few batches at the start and loads in the main process when one
            takes under 5 ms (worker processes cost more than they save there), else one worker
            per CPU (1 to 4). The choice and its reason are logged.
        worker_nice: how far the workers' priority is lowered below the model's threads (0–19,
            as ``nice``); "auto" = 10 on a CPU device (workers then fill the time the model's
            threads leave idle instead of pre-empting them), 0 on an accelerator. Logged.
        cache: keep the dataset's decoded files (images, waveforms, point clouds, channel arrays:
            what its reader decodes before any random augmentation) in memory, decoded once at the
            start: true (YAML also reads ``on``), false (``off``), or "auto" = true when the decoded
            size, estimated from the first items, is at most ``cache_mb`` (see
            ``anymae.datasets.cache``). The decision is logged either way.
        cache_mb: the size limit of ``cache="auto"``, in MiB.
        on_nan: "stop" raises on a non-finite loss; "skip" drops that update and counts it.
        max_skipped_fraction: with on_nan="skip", the largest share of the run's optimizer steps
            that may be dropped; the run fails (``NonFiniteLossError``) as soon as more were, so a
            diverged run never ends "successfully" with unusable weights. Default 0.1 (10%).
        resume: continue from ``out_dir/last.pt`` when it exists.
        tensorboard: also write scalars to ``out_dir/tensorboard``.
        strategy: multi-process wrapper, "ddp" or "fsdp" (ignored in one process).
        keep_step_checkpoints: also keep ``step_XXXXXX.pt`` beside the rolling ``last.pt``.
    """

    out_dir: str
    seed: int = 0
    ckpt_every: int = 1000
    log_every: int = 10
    max_steps: int | None = None
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    device: Device = "auto"
    compile: bool | Literal["inductor", "aot_eager", "eager"] = False
    num_workers: int | Literal["auto"] = "auto"
    worker_nice: int | Literal["auto"] = "auto"
    cache: bool | Literal["auto"] = "auto"
    cache_mb: float = 512.0
    on_nan: Literal["stop", "skip"] = "stop"
    max_skipped_fraction: float = 0.1
    resume: bool = False
    tensorboard: bool = True
    strategy: Literal["ddp", "fsdp"] = "ddp"
    keep_step_checkpoints: bool = False

    def __post_init__(self) -> None:
        _check(bool(str(self.out_dir)), "out_dir", self.out_dir, "a directory path")
        _check(self.ckpt_every >= 1, "ckpt_every", self.ckpt_every, ">= 1")
        _check(self.log_every >= 1, "log_every", self.log_every, ">= 1")
        _check(self.max_steps is None or self.max_steps >= 1, "max_steps", self.max_steps, "None or >= 1")
        _check(self.precision in ("auto", "fp32", "bf16"), "precision", self.precision,
               "'auto', 'fp32' or 'bf16'")
        _check_execution(self.device, 0 if self.num_workers == "auto" else self.num_workers)
        nice = self.worker_nice
        _check(nice == "auto" or (type(nice) is int and 0 <= nice <= 19), "worker_nice", nice,
               "'auto' or an int in [0, 19]")
        _check(self.compile in (True, False, "inductor", "aot_eager", "eager"), "compile", self.compile,
               "true, false, 'inductor', 'aot_eager' or 'eager'")
        _check(self.cache in (True, False, "auto"), "cache", self.cache, "true, false or 'auto'")
        _check(self.cache_mb >= 0, "cache_mb", self.cache_mb, ">= 0")
        _check(self.on_nan in ("stop", "skip"), "on_nan", self.on_nan, "'stop' or 'skip'")
        _check(0 <= self.max_skipped_fraction <= 1, "max_skipped_fraction", self.max_skipped_fraction,
               "a fraction in [0, 1]")
        _check(self.strategy in ("ddp", "fsdp"), "strategy", self.strategy, "'ddp' or 'fsdp'")


@dataclass
class EvalRunConfig:
    """The `run` section of commands that read data but write no run directory (probe, probe-nodes,
    channel-subsets, stats): the keys they share with `RunConfig`.

    Attributes:
        device: "auto" = CUDA when available, else CPU.
        num_workers: DataLoader worker processes.
    """

    device: Device = "auto"
    num_workers: int = 0

    def __post_init__(self) -> None:
        _check_execution(self.device, self.num_workers)
