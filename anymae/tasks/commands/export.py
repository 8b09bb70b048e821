"""`anymae export`'s config; the exporters and their formats live in `anymae.tasks.interop`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from anymae.core.config import load_config


@dataclass
class ExportConfig:
    """`anymae export`: a pretraining checkpoint, the format, and the file written.

    Attributes:
        checkpoint: the pretraining checkpoint (`last.pt`).
        out: the file written (a multi-modal model: a folder that gets one file per modality).
        format: "timm" (encoder state dict for timm's VisionTransformer), "safetensors" (the same,
            config in the metadata) or "official" (the model's reference release format).
    """

    checkpoint: str
    out: str
    format: Literal["timm", "safetensors", "official"] = "timm"


def load_export_config(path: str | None, overrides: list[str]) -> ExportConfig:
    return load_config(ExportConfig, path, overrides)
