"""Reconstruction pictures of a pretrained checkpoint on its own data or on given files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from anymae.core.config import apply_overrides
from anymae.datasets.collate import collate_items
from anymae.core.registry import get_entry
from anymae.datasets.sources import build_dataset, files_section
from anymae.tasks.pictures.figures import save_reconstruction_png
from anymae.tasks.train.checkpoint import load_checkpoint
from anymae.tasks.train.pretrain import model_from_state


def _inputs_section(inputs: str, model_config: dict[str, Any]) -> dict[str, Any]:
    path = Path(inputs)
    if not path.exists():
        raise FileNotFoundError(f"--input {inputs!r} does not exist")
    return files_section(get_entry(model_config["name"]).modality, str(path))


def reconstruct_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    inputs: str | None = None,
    data_overrides: list[str] | None = None,
    num: int = 8,
    seed: int = 0,
    gif: str | Path | None = None,
) -> Path:
    """PNG of the first `num` samples: input | masked | reconstruction (| normalized prediction).

    Data: `inputs` (a file or folder of images), else the checkpoint's own `data` section
    (evaluation transform, test split), changed by `data_overrides` ("data.key=value").
    Masks are drawn from `seed` (sample i gets seed + i), so pictures are reproducible.
    With `gif` (clip modalities) an animated GIF of the same panels is written there too.
    """
    state = load_checkpoint(checkpoint)  # read once: model and the run's own data section
    model = model_from_state(state, str(checkpoint))
    section = _inputs_section(inputs, model.config) if inputs is not None else dict(state["config"].get("data", {}))
    section = apply_overrides({"data": section}, data_overrides or [])["data"]
    data: Dataset = build_dataset(section, split="test", augment=False, model_config=model.config)
    n = min(num, len(data))  # type: ignore[arg-type]
    batch = collate_items(data, [data[i] for i in range(n)])[0]
    if gif is not None:
        from anymae.tasks.pictures.animation import save_reconstruction_gif

        save_reconstruction_gif(gif, model, batch, seeds=torch.arange(seed, seed + n), max_rows=n)
    return save_reconstruction_png(out, model, batch, seeds=torch.arange(seed, seed + n), max_rows=n)
