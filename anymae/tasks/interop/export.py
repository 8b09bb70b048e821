"""Export a pretrained model: the encoder for timm (state dict or safetensors), or the official MAE format.

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

from anymae.core.io import atomic_path
from anymae.tasks.train.checkpoint import save_checkpoint
from anymae.tasks.interop.mae import anymae_to_official_mae, export_timm_encoder

ExportFormat = Literal["timm", "safetensors", "official"]


def timm_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """Arguments that make `timm.create_model("vit_base_patch16_224", **kwargs)` match an image encoder."""
    if "target_length" in config and "num_mel_bins" in config:  # spectrogram ViT (Audio-MAE): 1×T×F "images"
        config = {**config, "img_size": (config["target_length"], config["num_mel_bins"]), "in_chans": 1}
    if "patch_size" not in config or "img_size" not in config:
        raise ValueError(f"model {config.get('name')!r} is not an image ViT; timm export covers image models")
    size = config["img_size"]
    return {
        "img_size": size if isinstance(size, int) else tuple(size),
        "patch_size": config["patch_size"],
        "in_chans": config["in_chans"],
        "embed_dim": config["embed_dim"],
        "depth": config["depth"],
        "num_heads": config["num_heads"],
        "mlp_ratio": config["mlp_ratio"],
        "qkv_bias": config["qkv_bias"],
        "num_classes": 0,
    }


def export_model(model: Any, out: str | os.PathLike[str], fmt: ExportFormat = "timm") -> Path:
    """Write `model`'s weights in `fmt`; returns the path. Every write is atomic."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "official":
        if "num_group" in model.config:  # a point model: Point-MAE's / Point-CMAE's `base_model` layout
            from anymae.tasks.interop.points import anymae_to_point_cmae, anymae_to_point_mae

            convert = anymae_to_point_cmae if model.config.get("two_mask") else anymae_to_point_mae
            return save_checkpoint(out, {"base_model": convert(model.state_dict())})
        if "tubelet_size" in model.config:  # a video model: VideoMAE's pretraining release layout
            from anymae.tasks.interop.videomae import anymae_to_videomae

            return save_checkpoint(out, {"model": anymae_to_videomae(model.state_dict())})
        return save_checkpoint(out, {"model": anymae_to_official_mae(model.state_dict())})
    kwargs = timm_kwargs(model.config)
    state = export_timm_encoder(model)
    if fmt == "timm":
        return save_checkpoint(out, state)
    if fmt == "safetensors":
        meta = {"format": "timm VisionTransformer", "timm_kwargs": json.dumps(kwargs), "anymae_config": json.dumps(model.config)}
        with atomic_path(out) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
        return out
    raise ValueError(f"unknown export format {fmt!r}; expected timm, safetensors or official")
