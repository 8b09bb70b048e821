"""`anymae export`'s config; the exporters and their formats live in `anymae.tasks.interop`."""

from __future__ import annotations

import sys
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


def run_export(cfg: ExportConfig) -> int:
    """`anymae export`: write the checkpoint's encoder in `cfg.format` (one file per modality for a
    cross-modal model) and say what was written; 2 with a one-line error for a format the model's
    modality does not have."""
    from anymae.tasks.interop.export import export_model, timm_kwargs
    from anymae.tasks.interop.formats import formats_for, official_format
    from anymae.tasks.interop.multimodal import describe, export_encoders
    from anymae.tasks.train.pretrain import load_pretrained

    model = load_pretrained(cfg.checkpoint)
    try:  # the formats come from the model's registered modality (interop/formats.py)
        if cfg.format != "official" and formats_for(model.config, cfg.format).encoders is not None:
            for enc, written in export_encoders(model, cfg.out, cfg.format):  # one encoder per modality
                print(describe(enc, written, cfg.format))
            return 0
        path = export_model(model, cfg.out, cfg.format)
    except ValueError as err:  # a format the modality does not have: the message lists those it has
        print(f"anymae export: error: {err}", file=sys.stderr)
        return 2
    if cfg.format == "official":
        print(f"wrote {path} (official, {official_format(model.config).reference} release layout)")
    else:
        print(f"wrote {path} ({cfg.format})")
        kwargs = ", ".join(f"{k}={v!r}" for k, v in timm_kwargs(model.config).items())
        print(f'load with: timm.create_model("vit_base_patch16_224", pretrained=False, {kwargs})')
    return 0
