"""Export a pretrained model in one of its modality's formats (`interop.formats.FORMATS`).

- "timm": the encoder as a timm VisionTransformer state dict (image and audio models);
- "safetensors": the same, with the timm arguments and the anymae config in its metadata;
- "official": the whole MAE in its modality's reference release layout (MAE, Audio-MAE,
  VideoMAE, Point-MAE / Point-CMAE).

A multi-modal model (CAV-MAE, MultiMAE, OmniMAE) is exported as one encoder per modality into the
folder `out` (`interop.multimodal.export_encoders`: `<out>/<modality>.safetensors`, and for "timm"
`<modality>.json` with that encoder's timm kwargs).

    anymae export --checkpoint runs/x/last.pt --format timm --out encoder.pth
    vit = timm.create_model("vit_base_patch16_224", pretrained=False, **timm_kwargs(config))
    vit.load_state_dict(torch.load("encoder.pth"), strict=True)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from safetensors.torch import save_file
from torch import nn

from anymae.core.io import atomic_path
from anymae.tasks.interop.formats import formats_for, to_official_release
from anymae.tasks.interop.mae import export_timm_encoder
from anymae.tasks.interop.multimodal import export_encoders
from anymae.tasks.train.checkpoint import save_checkpoint

ExportFormat = Literal["timm", "safetensors", "official"]


def timm_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """Arguments that make `timm.create_model("vit_base_patch16_224", **kwargs)` hold the model's encoder.

    Raises:
        ValueError: the model's modality has no timm format (the message lists what it has).
    """
    timm_input = formats_for(config, "timm").timm_input
    if timm_input is None:  # a multi-modal row: its timm arguments differ per modality
        raise ValueError(f"model {config.get('name')!r} is exported as one encoder per modality, each with its own "
                         "timm arguments: see anymae.tasks.interop.multimodal.modality_encoders(model)")
    return {
        **timm_input(config),  # img_size, in_chans
        "patch_size": config["patch_size"],
        "embed_dim": config["embed_dim"],
        "depth": config["depth"],
        "num_heads": config["num_heads"],
        "mlp_ratio": config["mlp_ratio"],
        "qkv_bias": config["qkv_bias"],
        "num_classes": 0,
    }


def export_model(model: nn.Module, out: str | os.PathLike[str], fmt: ExportFormat = "timm") -> Path:
    """Write `model`'s weights in `fmt`; returns the path. Every write is atomic.

    A multi-modal model's "timm" / "safetensors" export is a folder of per-modality files
    (`export_encoders`); the folder is returned.

    Raises:
        ValueError: `fmt` is unknown, or the model's modality does not support it (the message
            lists the formats it does support).
    """
    row = formats_for(model.config, fmt)
    if fmt != "official" and row.encoders is not None:
        export_encoders(model, out, fmt)
        return Path(out)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "official":
        return save_checkpoint(out, to_official_release(model))
    kwargs = timm_kwargs(model.config)
    state = export_timm_encoder(model)
    if fmt == "timm":
        return save_checkpoint(out, state)
    meta = {"format": "timm VisionTransformer", "timm_kwargs": json.dumps(kwargs),
            "anymae_config": json.dumps(model.config)}  # fmt: skip
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
    return out
