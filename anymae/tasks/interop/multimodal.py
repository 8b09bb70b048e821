"""A multi-modal model's encoder exported once per modality, each a plain timm VisionTransformer.

`modality_encoders(model)` gives, per modality `m` of the model's `MultiTokenizer`, the timm
ViT whose `forward_features(x_m)` computes anymae's modality-only features
`model.features(x, modality=m).tokens` (after the cls slot, if any) for that modality's input:

- CAV-MAE ("audio-visual"; audio 1×T×F, video 3×H×W): m's patch embedding; blocks = m's modality
  blocks, then the joint blocks' attention and MLP with m's stream norms; norm = m's final norm
  (norm_a / norm_v); no cls token (`class_token=False, global_pool="avg", fc_norm=False`: timm's
  pooled output is the mean of the normed tokens, CAV-MAE's retrieval embedding before L2).
- MultiMAE ("multi-image"; rgb 3×H×W, depth 1×H×W, ...): m's patch embedding, the shared blocks and
  global token (timm's cls token, zero position slot); no final norm (`final_norm=False`).
- OmniMAE ("image+video"): image 3×H×W is a timm ViT: an image enters as a clip of 2 equal frames
  through the tubelet embedding, which computes the same as the 2-D kernel summed over the tubelet's
  frames (the same function; float rounding differs, ~1e-6). Video
  3×T×H×W is not: timm's ViT has no 3-D patch embedding, so the shared encoder with the video
  tokenizer is written in anymae's own names (the metadata and the printed line say so).

Positions are the modality tokenizer's own (`MultiTokenizer.positions` of a token grid at the
configured geometry) with the learned modality embedding folded in (CAV-MAE: `pos + e_m`; timm
computes `patch + (pos + e_m)` where anymae computes `(patch + e_m) + pos`: equal up to rounding). `export_encoders` writes `<out>/<modality>.safetensors`
(timm names; `timm_kwargs`, modality and anymae config in the metadata) and, for "timm", the
timm arguments next to it as `<modality>.json`:

    vit = timm.models.vision_transformer.VisionTransformer(**json.load(open("out/audio.json")))
    vit.load_state_dict(safetensors.torch.load_file("out/audio.safetensors"))
    tokens = vit.forward_features(fbank)  # B×N×D = model.features({"audio": fbank}, modality="audio").tokens
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from anymae.core.io import atomic_path
from anymae.core.multimodal.encoder import MultiEncoder
from anymae.recipes.crossmodal.omnimae import ImageAsClip
from anymae.tasks.interop.keys import StateDict

WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")


@dataclass(frozen=True)
class ModalityEncoder:
    """One modality's exported encoder.

    Attributes:
        modality: the modality name (the batch key).
        state: timm VisionTransformer names, or anymae's own names when `timm_kwargs` is None.
        timm_kwargs: `VisionTransformer(**timm_kwargs)` holds `state` (strict); None: not a timm ViT.
        note: why a modality is not a timm ViT (empty otherwise).
    """

    modality: str
    state: StateDict
    timm_kwargs: dict[str, Any] | None
    note: str = ""


def _sub(state: dict[str, Tensor], prefix: str, to: str = "") -> StateDict:
    """The keys of `state` under `prefix`, renamed to start with `to` (tensors cloned)."""
    return {to + k[len(prefix) :]: v.detach().clone() for k, v in state.items() if k.startswith(prefix)}


def _patch_embed(tok: nn.Module) -> tuple[Tensor, Tensor, tuple[int, int], int] | None:
    """A modality tokenizer's patch embedding as a 2-D one: (D×C×p×p weight, bias, (H, W), p),
    or None when it is not one (a clip's 3-D tubelet embedding). anymae's patch embeddings have a bias."""
    if isinstance(tok, ImageAsClip):  # the image repeated to `frames` equal frames = one tubelet
        proj = tok.video.patch_embed.proj
        if proj.kernel_size[0] != tok.frames or proj.kernel_size[1] != proj.kernel_size[2]:
            return None
        weight = proj.weight.detach().sum(dim=2)  # D×C×t×p×p -> D×C×p×p: Σ_t W_t * x = (Σ_t W_t) * x
        return weight, proj.bias.detach().clone(), tuple(tok.video.img_size), int(proj.kernel_size[1])
    proj = getattr(getattr(tok, "patch_embed", None), "proj", None)
    if not isinstance(proj, nn.Conv2d) or proj.kernel_size[0] != proj.kernel_size[1] or proj.stride != proj.kernel_size:
        return None
    return proj.weight.detach().clone(), proj.bias.detach().clone(), tuple(tok.img_size), int(proj.kernel_size[0])


@torch.no_grad()
def _positions(model: nn.Module, modality: str) -> Tensor:
    """1×N×D: the modality's encoder positions at its configured geometry, its modality embedding folded in."""
    tokenizer = model.tokenizer
    with torch.random.fork_rng(devices=[]):  # the example's random values are not read; the global RNG stays
        tokens = tokenizer({modality: tokenizer.tokenizers[modality].example(1)})
    pos = tokenizer.positions(tokens)  # 1×N×D
    if modality in tokenizer.modality_embed:
        pos = pos + tokenizer.modality_embed[modality].detach()  # 1×N×D + 1×1×D
    return pos.detach().clone()


def _blocks(model: nn.Module, modality: str) -> tuple[StateDict, int]:
    """(timm `blocks.*` and `norm.*` of the modality-only pass, number of blocks)."""
    encoder, state = model.encoder, model.state_dict()
    if not isinstance(encoder, MultiEncoder):
        shared = {**_sub(state, "encoder.blocks.", "blocks."), **_sub(state, "encoder.norm.", "norm.")}
        return shared, len(encoder.blocks)
    if modality not in encoder.stream_norms:
        raise ValueError("this MultiEncoder has no per-modality norms (stream_norms=False): it has no modality-only "
                         "pass to export")
    md = encoder.modality_depth
    out = _sub(state, f"encoder.modality_blocks.{modality}.", "blocks.")  # blocks 0 .. md-1
    for j in range(len(encoder.blocks)):
        joint = _sub(state, f"encoder.blocks.{j}.", f"blocks.{md + j}.")
        for n in ("norm1", "norm2"):  # the joint block's own norms are the joint pass's; the stream's replace them
            joint.update(_sub(state, f"encoder.stream_norms.{modality}.{j}.{n}.", f"blocks.{md + j}.{n}."))
        out.update(joint)
    out.update(_sub(state, f"encoder.modality_norms.{modality}.", "norm."))
    return out, md + len(encoder.blocks)


def _check_timm_expressible(encoder: nn.Module) -> None:
    """The encoder options a timm ViT built from plain kwargs reproduces; a clear error otherwise."""
    cfg = encoder.cfg
    if cfg.pos_every_block:
        raise ValueError("an encoder that adds positions at every block (pos_every_block) is not a timm ViT")
    if cfg.num_registers:
        raise ValueError(f"an encoder with {cfg.num_registers} register tokens: the per-modality timm export "
                         "supports a cls token only")
    if cfg.norm_eps != 1e-6:
        raise ValueError(f"LayerNorm eps {cfg.norm_eps} differs from timm's ViT (1e-6)")


def modality_encoders(model: nn.Module) -> dict[str, ModalityEncoder]:
    """Every modality's encoder of a multi-modal MAE (module doc), in the tokenizer's modality order.

    Raises:
        ValueError: not a multi-modal model, or an encoder option a timm ViT does not have.
    """
    tokenizer = getattr(model, "tokenizer", None)
    if not hasattr(tokenizer, "tokenizers") or not hasattr(tokenizer, "modalities"):
        raise ValueError("the per-modality export needs a multi-modal model (a MultiTokenizer)")
    encoder = model.encoder
    _check_timm_expressible(encoder)
    block = encoder.blocks[0]
    dim = int(block.norm1.normalized_shape[0])
    common: dict[str, Any] = {
        "embed_dim": dim, "num_heads": int(block.attn.num_heads),
        "mlp_ratio": block.mlp.fc1.out_features / dim, "qkv_bias": block.attn.qkv.bias is not None,
        "num_classes": 0,
    }  # fmt: skip
    if not isinstance(block.ls1, nn.Identity):
        common["init_values"] = 1.0  # any value: LayerScale's gamma is loaded
    if isinstance(encoder.norm, nn.Identity) and not isinstance(encoder, MultiEncoder):
        common["final_norm"] = False  # MultiMAE: no final LayerNorm
    # a MultiEncoder's modality-only pass runs without prefix tokens
    has_cls = not isinstance(encoder, MultiEncoder) and getattr(encoder, "cls_token", None) is not None
    if not has_cls:  # pool the mean of the tokens, final norm before pooling (anymae's order)
        common |= {"class_token": False, "global_pool": "avg", "fc_norm": False}
    own = model.state_dict()
    out: dict[str, ModalityEncoder] = {}
    for m in tokenizer.modalities:
        patch = _patch_embed(tokenizer.tokenizers[m])
        if patch is None:  # the whole encoder in anymae's names, with this modality's tokenizer
            keys = (f"tokenizer.tokenizers.{m}.", f"tokenizer.modality_embed.{m}", "encoder.")
            note = (f"{m}: timm's VisionTransformer has no 3-D (tubelet) patch embedding, so this modality's "
                    f"encoder is written in anymae's own names (tokenizer.tokenizers.{m}.*, encoder.*): load it with "
                    "strict=False into anymae.create_model(name, **rest) of the metadata's anymae_config")
            state = {k: v.detach().clone() for k, v in own.items() if k.startswith(keys)}
            out[m] = ModalityEncoder(m, state, None, note)
            continue
        weight, bias, img_size, p = patch
        blocks, depth = _blocks(model, m)
        pos = _positions(model, m)  # 1×N×D
        state = {"patch_embed.proj.weight": weight, "patch_embed.proj.bias": bias, **blocks}
        if has_cls:  # timm adds pos_embed[:, :1] to the cls token: anymae's global token has no position
            state["cls_token"] = encoder.cls_token.detach().clone()
            pos = torch.cat([pos.new_zeros(1, 1, dim), pos], dim=1)  # 1×(1+N)×D
        state["pos_embed"] = pos
        kwargs = {"img_size": list(img_size), "patch_size": p, "in_chans": int(weight.shape[1]), "depth": depth,
                  **common}  # fmt: skip
        out[m] = ModalityEncoder(m, state, kwargs)
    return out


def encoder_dir(out: str | os.PathLike[str]) -> Path:
    """The folder the per-modality files go to; a path that names a weight file is refused."""
    path = Path(out)
    if path.is_file() or path.suffix in WEIGHT_SUFFIXES:
        raise ValueError(f"out={str(out)!r}: a multi-modal model is exported as one file per modality; give a "
                         "folder (it gets <modality>.safetensors for each modality)")
    return path


def export_encoders(
    model: nn.Module, out: str | os.PathLike[str], fmt: str = "timm"
) -> list[tuple[ModalityEncoder, Path]]:
    """Write `<out>/<modality>.safetensors` per modality (+ `<modality>.json`, the timm kwargs, for "timm").

    Every write is atomic. Returns (encoder, path of its weights) per modality.

    Raises:
        ValueError: `fmt` is not "timm" / "safetensors", `out` names a file, or `modality_encoders` refuses.
    """
    if fmt not in ("timm", "safetensors"):
        raise ValueError(f"per-modality encoder export writes 'timm' or 'safetensors', not {fmt!r}")
    folder = encoder_dir(out)
    encoders = modality_encoders(model)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for m, enc in encoders.items():
        meta = {"modality": m, "anymae_config": json.dumps(getattr(model, "config", {}))}
        if enc.timm_kwargs is not None:
            meta |= {"format": "timm VisionTransformer", "timm_kwargs": json.dumps(enc.timm_kwargs)}
        else:
            meta |= {"format": "anymae", "note": enc.note}
        path = folder / f"{m}.safetensors"
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in enc.state.items()}, str(tmp), metadata=meta)
        if fmt == "timm" and enc.timm_kwargs is not None:
            with atomic_path(folder / f"{m}.json") as tmp:
                Path(tmp).write_text(json.dumps(enc.timm_kwargs, indent=2) + "\n")
        written.append((enc, path))
    return written


def describe(enc: ModalityEncoder, path: Path, fmt: str) -> str:
    """The line `anymae export` prints for one written file."""
    if enc.timm_kwargs is None:
        return f"wrote {path} (anymae layout, not timm) -- {enc.note}"
    kwargs = ", ".join(f"{k}={v!r}" for k, v in enc.timm_kwargs.items())
    where = f"kwargs in {path.with_suffix('.json')}" if fmt == "timm" else "kwargs in its metadata"
    return (f"wrote {path} ({enc.modality}-only encoder, timm VisionTransformer; {where}): "
            f"VisionTransformer({kwargs})")


__all__ = ["ModalityEncoder", "describe", "encoder_dir", "export_encoders", "modality_encoders"]
