"""Frozen teachers from the file given as `teacher.checkpoint=PATH` (see `tasks.train.prepare`)."""

from __future__ import annotations

from typing import Any

from torch import nn


def attach_teacher_files(model: nn.Module, teacher: dict[str, Any]) -> None:
    """Load `teacher["checkpoint"]` into the model's frozen teachers (not written yet: a no-op
    unless a section is given, which is an error until it is)."""
    if teacher:
        from anymae.core.config import ConfigError

        raise ConfigError(f"teacher: this model has no frozen teacher to load {teacher!r} into")
