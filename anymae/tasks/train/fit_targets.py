"""Target providers fitted on the training data (see `tasks.train.prepare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn


def fit_targets(model: nn.Module, dataset: Any, run_dir: Path, seed: int) -> None:
    """Fit every provider of `model` that needs fitting (none yet)."""
