"""MAE pretraining from a run config, and loading a pretrained model back from its checkpoint.

A run config has four sections: `model` (a registered preset name plus options), `data` (a data
source, see `anymae.datasets.sources`), `optim` (`OptimConfig`) and `run` (`RunConfig`), plus
`teacher` for recipes that distil from a file (`teacher.checkpoint=PATH`, see `tasks.train.prepare`). The
resolved config, with the model section expanded to every option of the preset, is saved in
`out_dir/config.yaml` and in every checkpoint, so a checkpoint alone rebuilds its model.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from anymae.core.config import ConfigError, FieldError, load_config
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import create_model
from anymae.datasets.seeding import SeededSamples
from anymae.datasets.sources import build_dataset
from anymae.tasks.train.checkpoint import load_checkpoint, load_state_dict_checked
from anymae.tasks.train.engine import TrainResult, pretrain_objective, train
from anymae.tasks.train.prepare import prepare_model
from anymae.tasks.train.run_length import auto_options, placeholder, resolve_run_length
from anymae.tasks.train.config import OptimConfig, RunConfig


@dataclass
class PretrainConfig:
    """The whole pretraining run (see configs/*.yaml)."""

    model: dict[str, Any]
    data: dict[str, Any]
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/pretrain"))
    teacher: dict[str, Any] = field(default_factory=dict)


def _blamed_options(err: FieldError, options: dict[str, Any]) -> list[str]:
    """The model options a value error is about: its named field, else the options set to its value."""
    if err.field in options:
        return [err.field]
    return [k for k, v in options.items() if type(v) is type(err.value) and v == err.value]


def build_model(section: dict[str, Any]) -> MaskedAutoencoder:
    """`{"name": preset, **options}` -> model; unknown names/options fail listing the valid ones, and
    a value the model refuses (`model.mask_ratio=1.5`) is a `ConfigError` naming the option."""
    options = dict(section)
    name = options.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError("model.name: expected a registered model name (see `anymae info`)")
    try:
        return create_model(name, **options)  # type: ignore[return-value]
    except TypeError as err:  # unknown option: re-raise as a config error naming the section
        raise ConfigError(f"model: {err}") from None
    except FieldError as err:  # a value checked deep in the model (a mask ratio): name the option set to it
        keys = " / ".join(f"'model.{k}'" for k in _blamed_options(err, options)) or f"'model' ({name})"
        raise ConfigError(f"config key {keys}: expected {err.expected}, got {err.value!r}") from None
    except ValueError as err:  # another value the model cannot be built with
        raise ConfigError(f"model ({name}): {err}") from None


def load_pretrain_config(path: str | None, overrides: list[str]) -> PretrainConfig:
    return load_config(PretrainConfig, path, overrides)


def run_pretrain(cfg: PretrainConfig) -> TrainResult:
    """Build the model and the data, then train (one process or one torchrun rank).

    The model's initial weights are drawn from `run.seed` (the same on every rank), so a run is
    reproducible from its config.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.run.seed)
        model = build_model(placeholder(cfg.model))
    dataset = build_dataset(cfg.data, split="pretrain", model_config=model.config)
    if auto_options(cfg.model):  # run-length options ("auto"): computed from the data, then the real model
        section, said = resolve_run_length(cfg.model, len(dataset), cfg.optim)
        if os.environ.get("RANK", "0") == "0":
            print(said)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.run.seed)
            model = build_model(section)
    prepare_model(model, dataset, cfg.teacher, cfg.run.out_dir, cfg.run.seed)
    resolved = dataclasses.replace(cfg, model=dict(model.config))
    data = SeededSamples(dataset, cfg.run.seed)
    result = train(model, data, pretrain_objective, cfg.optim, cfg.run, full_config=resolved)
    if data.skipped():
        print(data.skip_report())  # counted skips of unreadable files (data.on_error=skip), never silent
    return result


def load_pretrained(checkpoint: str | Path, **overrides: Any) -> MaskedAutoencoder:
    """The model saved in an anymae checkpoint (`last.pt` of a pretraining run), keys checked.

    Args:
        checkpoint: path to a checkpoint written by the engine.
        overrides: model options to change on the rebuilt model (e.g. `drop_path=0.1`);
            options that change parameter shapes make the key check fail, by name.
    """
    return model_from_state(load_checkpoint(checkpoint), str(checkpoint), **overrides)


def model_from_state(state: dict[str, Any], source: str, **overrides: Any) -> MaskedAutoencoder:
    """Rebuild and load the model of an already-read checkpoint (`source` names it in errors)."""
    try:
        section = dict(state["config"]["model"])
    except (KeyError, TypeError):
        raise ConfigError(f"{source}: no model config inside; is it an anymae pretraining checkpoint?") from None
    model = build_model({**section, **overrides})
    load_state_dict_checked(model, state["model"])
    return model.eval()
