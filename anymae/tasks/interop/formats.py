"""Which weight formats each registered modality has, and the converters of its official release.

Export and import both look the model's modality up in the registry (`config["name"]` -> its
preset's `modality`) and take what `FORMATS[modality]` says; nothing is guessed from config keys.

| modality     | timm / safetensors (encoder)      | official release (file key)                      |
|--------------|-----------------------------------|--------------------------------------------------|
| image        | ViT, img_size × in_chans          | MAE `model` (import also takes HF ViTMAE names)  |
| audio        | ViT on 1×T×F spectrograms         | Audio-MAE `model` (tau <-> logit_scale)          |
| video        | -                                 | VideoMAE / V2 `model` (import also takes HF's)   |
| points       | -                                 | Point-MAE / Point-CMAE `base_model`              |
| graph        | -                                 | -                                                |
| multichannel | -                                 | -                                                |
| audio-visual | one ViT per modality (audio, video) | -                                              |
| multi-image  | one ViT per modality (rgb, depth, ...) | -                                           |
| image+video  | image: ViT; video: anymae layout  | -                                                |

The three multi-modal rows export one encoder per modality (`interop.multimodal.modality_encoders`:
each a timm ViT computing that modality's modality-only features; written as
`<out>/<modality>.safetensors`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from anymae.core.registry import get_entry
from anymae.tasks.interop.audiomae import anymae_to_official_audiomae, audiomae_release_to_anymae
from anymae.tasks.interop.keys import StateDict, unwrap_release
from anymae.tasks.interop.mae import anymae_to_official_mae, mae_release_to_anymae
from anymae.tasks.interop.multimodal import ModalityEncoder, modality_encoders
from anymae.tasks.interop.points import anymae_to_point_release, point_release_to_anymae
from anymae.tasks.interop.videomae import anymae_to_videomae, videomae_release_to_anymae
from anymae.tasks.train.checkpoint import CheckpointError

EXPORT_FORMATS: tuple[str, ...] = ("timm", "safetensors", "official")
# (state dict, the MAE's config) -> state dict in the other naming
Converter = Callable[[Mapping[str, Tensor], Mapping[str, Any]], StateDict]


@dataclass(frozen=True)
class OfficialFormat:
    """One reference release format.

    Attributes:
        reference: the release it follows (named in messages).
        file_key: the release file is `{file_key: state dict}`.
        to_official: anymae MAE state dict -> release names.
        from_official: release state dict -> anymae names (an MAE's, or a Classifier's for a
            fine-tuned release).
        not_stored: shell patterns of model keys that a release does not hold (left as they are
            when importing, e.g. fixed position tables).
    """

    reference: str
    file_key: str
    to_official: Converter
    from_official: Converter
    not_stored: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModalityFormats:
    """The formats of one modality: `timm_input(config)` gives the `img_size` / `in_chans` of the
    timm ViT that holds its encoder (None: no timm / safetensors export); `official` its release;
    `encoders(model)` (multi-modal rows) the encoder once per modality, {modality: ModalityEncoder}
    (timm kwargs + state dict), in place of `timm_input`."""

    modality: str
    timm_input: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    official: OfficialFormat | None = None
    encoders: Callable[[nn.Module], dict[str, ModalityEncoder]] | None = None

    @property
    def formats(self) -> tuple[str, ...]:
        timm = self.timm_input is not None or self.encoders is not None
        return (("timm", "safetensors") if timm else ()) + (("official",) if self.official else ())


def _image_input(config: Mapping[str, Any]) -> dict[str, Any]:
    size = config["img_size"]
    return {"img_size": size if isinstance(size, int) else tuple(size), "in_chans": config["in_chans"]}


def _spectrogram_input(config: Mapping[str, Any]) -> dict[str, Any]:
    return {"img_size": (config["target_length"], config["num_mel_bins"]), "in_chans": 1}  # 1×T×F "images"


def _two_mask(config: Mapping[str, Any]) -> bool:
    return bool(config.get("two_mask"))


FORMATS: dict[str, ModalityFormats] = {
    "image": ModalityFormats("image", _image_input, OfficialFormat(
        "MAE (facebookresearch/mae)", "model",
        lambda state, config: anymae_to_official_mae(state), lambda state, config: mae_release_to_anymae(state),
    )),
    "audio": ModalityFormats("audio", _spectrogram_input, OfficialFormat(
        "Audio-MAE (facebookresearch/AudioMAE)", "model",
        lambda state, config: anymae_to_official_audiomae(state),
        lambda state, config: audiomae_release_to_anymae(state),
    )),
    "video": ModalityFormats("video", None, OfficialFormat(
        "VideoMAE / VideoMAE V2 (MCG-NJU/VideoMAE, OpenGVLab/VideoMAEv2)", "model",
        lambda state, config: anymae_to_videomae(state), lambda state, config: videomae_release_to_anymae(state),
        # fixed sinusoid tables are not stored; a fine-tuned release has no decoder (and no final norm
        # when it mean-pools)
        not_stored=("*pos_embed.table", "decoder.*", "encoder.norm.*"),
    )),
    "points": ModalityFormats("points", None, OfficialFormat(
        "Point-MAE / Point-CMAE (Pang-Yatian/Point-MAE, Amazingren/Point-CMAE)", "base_model",
        lambda state, config: anymae_to_point_release(state, two_mask=_two_mask(config)),
        lambda state, config: point_release_to_anymae(state, two_mask=_two_mask(config)),
    )),
    "graph": ModalityFormats("graph"),
    "multichannel": ModalityFormats("multichannel"),
    # no official release format to convert to (anymae checkpoints only)
    "volume": ModalityFormats("volume"),
    "features": ModalityFormats("features"),
    # one encoder per modality (interop/multimodal.py); OmniMAE's video path is not a timm ViT
    "audio-visual": ModalityFormats("audio-visual", encoders=modality_encoders),
    "multi-image": ModalityFormats("multi-image", encoders=modality_encoders),
    "image+video": ModalityFormats("image+video", encoders=modality_encoders),
}  # fmt: skip


def mae_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The MAE's config inside `config`: a Classifier's `config["model"]`, else `config` itself."""
    inner = config.get("model")
    return inner if isinstance(inner, Mapping) else config


def modality_of(config: Mapping[str, Any]) -> str:
    """The registered modality of the preset that built a model with this config (`config["name"]`)."""
    name = mae_config(config).get("name")
    if not isinstance(name, str):
        raise ValueError(
            f"model config has no preset name (config['name'] = {name!r}); weight formats are chosen by the "
            "registered modality of the preset, so build the model with anymae.create_model"
        )
    return get_entry(name).modality


def formats_for(config: Mapping[str, Any], fmt: str | None = None) -> ModalityFormats:
    """The formats of the model with this config; with `fmt`, checks that its modality has that format.

    Raises:
        ValueError: `fmt` is not one of `EXPORT_FORMATS`, or the modality lacks it (the message lists
            what the modality supports).
    """
    modality = modality_of(config)
    if modality not in FORMATS:
        raise ValueError(f"modality {modality!r} has no entry in the interop format table; known: {sorted(FORMATS)}")
    entry = FORMATS[modality]
    if fmt is not None and fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown weight format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    if fmt is not None and fmt not in entry.formats:
        supported = ", ".join(entry.formats) or "none"
        raise ValueError(
            f"model {mae_config(config).get('name')!r} (modality {modality}) has no {fmt!r} format; "
            f"{modality} supports: {supported}"
        )
    return entry


def official_format(config: Mapping[str, Any]) -> OfficialFormat:
    """The official release format of the model with this config (ValueError if its modality has none)."""
    official = formats_for(config, "official").official
    assert official is not None  # formats_for checked it
    return official


def to_official_release(model: nn.Module) -> dict[str, StateDict]:
    """An anymae MAE as its official release file's content: `{file_key: state dict in release names}`."""
    official = official_format(model.config)
    return {official.file_key: official.to_official(model.state_dict(), mae_config(model.config))}


def load_official_weights(
    model: nn.Module, source: str | Path | Mapping[str, Any], *, strict: bool = True
) -> list[str]:
    """Fill an anymae model (MaskedAutoencoder or Classifier) from its modality's official release.

    Args:
        model: the model to fill in place; its registered modality picks the importer
            (`FORMATS[modality].official.from_official`).
        source: a file path (read with `torch.load(weights_only=True)`) or an already-read
            checkpoint / state dict (the state dict may sit under "model", "module" or "base_model").
        strict: every key of `model` except those the release does not store (`not_stored`) must
            be provided; with False, any model key may be left as it is.

    Returns:
        The model keys left as they were (sorted).

    Raises:
        ValueError: the model's modality has no official format.
        CheckpointError: a release key has no mapping, does not fit the model (unknown key, other
            shape), or a key the model needs is missing; the message names the source and keys.
    """
    official = official_format(model.config)
    name = str(source) if isinstance(source, (str, Path)) else "state dict"
    ckpt = torch.load(source, map_location="cpu", weights_only=True) if isinstance(source, (str, Path)) else source
    try:
        ours = official.from_official(unwrap_release(ckpt, name), mae_config(model.config))
    except (KeyError, CheckpointError) as e:
        raise CheckpointError(f"{name} ({official.reference}): {e.args[0]}") from e
    own = model.state_dict()
    unknown = sorted(set(ours) - set(own))
    shapes = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in ours.items()
              if k in own and v.shape != own[k].shape]  # fmt: skip
    if unknown or shapes:
        raise CheckpointError(
            f"{name}: does not fit this model; unexpected keys {unknown[:8]}, shape mismatches {shapes[:8]}"
        )
    untouched = sorted(k for k in own if k not in ours)
    missing = [k for k in untouched if strict and not any(fnmatch.fnmatchcase(k, p) for p in official.not_stored)]
    if missing:
        raise CheckpointError(f"{name}: lacks keys this model needs: {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    model.load_state_dict({**own, **ours}, strict=True)
    return untouched
