"""Model options that describe the run's length, filled from the data when set to "auto".

Recipes whose schedules are written in epochs (HPM's easy -> hard ramp and EMA decay, AttMask's
EMA, SelectiveMAE's expansion stages, LUT's EMA cosine) take the run's geometry as model options,
because a model is built before it sees its data. Set to `auto` (as the CPU configs do), they are
computed here from the dataset size and the `optim` section, the same way the engine computes its
lr schedule (`engine.lr_schedule`), and the model is built with the numbers (which its saved config
then holds, so a checkpoint rebuilds the same model):

| option            | auto value                                                               |
|-------------------|--------------------------------------------------------------------------|
| `steps_per_epoch` | floor(samples / (batch_size × ranks × accum_iter)); 1 with `optim.schedule_steps` |
| `epochs`          | `optim.epochs`; `optim.schedule_steps` when that is set                  |
| `ema_steps`       | epochs × steps_per_epoch: the length of the lr schedule, in optimizer steps |
"""

from __future__ import annotations

import os
from typing import Any

from anymae.tasks.train.config import OptimConfig
from anymae.tasks.train.loader.sampler import steps_per_epoch

AUTO = "auto"
RUN_LENGTH_OPTIONS: tuple[str, ...] = ("steps_per_epoch", "epochs", "ema_steps")


def auto_options(section: dict[str, Any]) -> list[str]:
    """The run-length options of a model section set to "auto"."""
    return [k for k in RUN_LENGTH_OPTIONS if section.get(k) == AUTO]


def placeholder(section: dict[str, Any]) -> dict[str, Any]:
    """The section with every "auto" run-length option set to 1 (a model to read the data with)."""
    return {k: (1 if k in auto_options(section) else v) for k, v in section.items()}


def resolve_run_length(
    section: dict[str, Any], num_samples: int, optim: OptimConfig, world_size: int | None = None
) -> tuple[dict[str, Any], str]:
    """(the section with its "auto" options computed, one line saying what they became and why)."""
    auto = auto_options(section)
    if not auto:
        return dict(section), ""
    world = world_size if world_size is not None else int(os.environ.get("WORLD_SIZE", "1"))
    if optim.schedule_steps is not None:
        per_epoch, epochs = 1, int(optim.schedule_steps)
        why = f"optim.schedule_steps={epochs}"
    else:
        per_epoch = steps_per_epoch(num_samples, optim.batch_size, world, optim.accum_iter)
        epochs = int(optim.epochs)
        why = (f"{num_samples} samples / (batch {optim.batch_size} × {world} rank(s) × accum {optim.accum_iter}), "
               f"optim.epochs={epochs}")
    values = {"steps_per_epoch": per_epoch, "epochs": epochs, "ema_steps": epochs * per_epoch}
    resolved = {**section, **{k: values[k] for k in auto}}
    said = ", ".join(f"model.{k}=auto -> {values[k]}" for k in auto)
    return resolved, f"{said} ({why})"
