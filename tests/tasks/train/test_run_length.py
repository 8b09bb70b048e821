"""Run-length model options set to "auto" are computed from the data and the optim section."""

from __future__ import annotations

import pytest

from anymae.tasks.train.config import OptimConfig
from anymae.tasks.train.run_length import auto_options, placeholder, resolve_run_length


def test_auto_options_follow_the_engines_epoch_arithmetic() -> None:
    section = {"name": "hpm_vit_tiny_patch4", "epochs": "auto", "steps_per_epoch": "auto", "mask_ratio": 0.75}
    assert auto_options(section) == ["steps_per_epoch", "epochs"]
    assert placeholder(section)["steps_per_epoch"] == 1 and placeholder(section)["mask_ratio"] == 0.75
    optim = OptimConfig(batch_size=128, epochs=100, accum_iter=2)
    resolved, said = resolve_run_length(section, 1000, optim, world_size=2)
    assert resolved["steps_per_epoch"] == 1000 // (128 * 2 * 2) == 1 and resolved["epochs"] == 100
    resolved, _ = resolve_run_length(section, 5000, optim, world_size=1)
    assert resolved["steps_per_epoch"] == 5000 // 256 == 19
    assert "model.steps_per_epoch=auto -> 19" in resolve_run_length(section, 5000, optim, world_size=1)[1]


def test_ema_steps_is_the_schedule_length_and_schedule_steps_wins() -> None:
    section = {"ema_steps": "auto"}
    assert resolve_run_length(section, 1280, OptimConfig(batch_size=128, epochs=30, warmup_epochs=3), world_size=1)[0] == {
        "ema_steps": 300}
    resolved, said = resolve_run_length(section, 1280, OptimConfig(batch_size=128, schedule_steps=77), world_size=1)
    assert resolved == {"ema_steps": 77} and "optim.schedule_steps=77" in said


def test_a_section_without_auto_is_unchanged() -> None:
    section = {"steps_per_epoch": 7}
    assert resolve_run_length(section, 10, OptimConfig(batch_size=1), world_size=1) == (section, "")


def test_too_little_data_is_named() -> None:
    with pytest.raises(ValueError, match="fewer than one optimizer step"):
        resolve_run_length({"steps_per_epoch": "auto"}, 10, OptimConfig(batch_size=128), world_size=1)
