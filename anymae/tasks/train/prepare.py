"""What happens between building a model and training it, when a recipe needs files or data.

    prepare_model(model, dataset, cfg)

1. Teachers from files (`tasks.train.teacher_setup.attach_teacher_files`): the frozen teachers a
   recipe declares are filled from the file the user gives as `teacher.checkpoint=PATH`
   (`PretrainConfig.teacher`).
2. Targets fitted on data (`tasks.train.fit_targets.fit_targets`): a target provider that needs a
   codebook fits one on a sample of the training data when none is given, and saves it in the run
   directory.

Both happen before the engine resumes a run, so a resumed run's checkpoint overwrites what they set
(teachers and codebooks are part of the model's state).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from anymae.tasks.train.fit_targets import fit_targets
from anymae.tasks.train.teacher_setup import attach_teacher_files


def prepare_model(model: nn.Module, dataset: Any, teacher: dict[str, Any], run_dir: str | Path, seed: int) -> None:
    """Fill file-backed teachers and fit data-backed targets of `model` (module doc).

    Args:
        model: the freshly built model.
        dataset: the pretraining dataset (a `datasets.contract.SampleDataset`).
        teacher: the run config's `teacher` section (`checkpoint: PATH`, ...).
        run_dir: the run directory (fitted codebooks are saved there).
        seed: the run's seed (which samples a fit reads).
    """
    attach_teacher_files(model, teacher)
    fit_targets(model, dataset, Path(run_dir), seed)
