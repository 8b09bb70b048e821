"""Reading a frozen teacher's weights from a file the user gives (`teacher.checkpoint=PATH`).

    load_teacher(path, teacher)  # fills a `core.skeleton.teacher.FrozenTeacher` in place

The teacher module is built first with the expected sizes (tokenizer: patch size, channels,
positions; `TransformerEncoder`: depth, width, heads); the file must fit it exactly. Accepted
files (never unpickled: `torch.load(weights_only=True)`, or safetensors):

| file                                              | told apart by               | converter                  |
|---------------------------------------------------|-----------------------------|----------------------------|
| an anymae pretraining checkpoint (`last.pt`)      | `model` with `encoder.*`    | none (anymae names)        |
| a timm VisionTransformer / official MAE state dict | `blocks.*`, `patch_embed.*` | `mae.official_mae_to_anymae` |
| an HF ViT / ViTMAE state dict (any of their classes) | `vit.*` or `embeddings.*`  | `mae.hf_vitmae_to_official_mae`, then as timm |

A timm / HF position table's cls slot (learned in supervised ViTs, zero in MAE) is folded into the
cls token first (`interop.mae.official_mae_to_anymae`), so the teacher's features equal the source model's.

Only the encoder side is kept (`tokenizer.*`, `encoder.*`); the parts a teacher has no use for
are left out by name: decoders and `mask_token` (MAE, ViTMAE), classifier heads (timm `head.*`,
HF `classifier.*`, `pooler.*`) and HF ViT's `embeddings.mask_token`. Everything else must match
the teacher key for key and shape for shape, else one line names the file, the expected and
found depth / width, and the first differing keys with their shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from anymae.tasks.interop.keys import StateDict, unwrap_release
from anymae.tasks.interop.mae import hf_vitmae_to_official_mae, official_mae_to_anymae
from anymae.tasks.train.checkpoint import CheckpointError, load_checkpoint

KEPT = ("tokenizer.", "encoder.")  # the teacher's side of an anymae state dict
# release keys a teacher has no use for: classifier heads and the HF ViT's optional [MASK] embedding
_HEADS = ("head.", "classifier.", "pooler.", "vit.pooler.", "embeddings.mask_token", "vit.embeddings.mask_token")
_HF_BARE = ("embeddings.", "encoder.layer.", "layernorm.")  # HF ViTModel / ViTMAEModel without "vit."
_BLOCK = re.compile(r"^encoder\.blocks\.(\d+)\.")


def read_weights(path: str | Path) -> dict[str, Any]:
    """The file's content as a dict (a checkpoint or a state dict), read without unpickling.

    Raises:
        FileNotFoundError / CheckpointError: missing, empty, truncated or non-plain file (named).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        return load_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher file '{path}' does not exist")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read teacher file '{path}' as safetensors ({e})") from e


def teacher_state(content: Mapping[str, Any], source: str) -> tuple[StateDict, str]:
    """(the encoder side of a teacher file in anymae names, the file's kind), see the module table.

    Args:
        content: what `read_weights` gave.
        source: names the file in errors.

    Raises:
        CheckpointError: no tensors, or a key no converter knows (named).
    """
    model = content.get("model")
    if isinstance(model, Mapping) and any(str(k).startswith(("encoder.blocks.", "encoder.norm.")) for k in model):
        state, kind = {k: v for k, v in model.items() if isinstance(v, Tensor)}, "anymae checkpoint"
    else:
        raw = {k: v for k, v in unwrap_release(content, source).items() if not k.startswith(_HEADS)}
        hf = any(k.startswith(("vit.", *_HF_BARE)) for k in raw)
        if hf:
            raw = {(k if k.startswith(("vit.", "decoder.")) else f"vit.{k}"): v for k, v in raw.items()}
        kind = "HF ViT / ViTMAE state dict" if hf else "timm ViT / MAE state dict"
        try:
            state = official_mae_to_anymae(hf_vitmae_to_official_mae(raw) if hf else raw)
        except KeyError as e:
            raise CheckpointError(f"teacher file {source} ({kind}): {e.args[0]}") from e
    return {k: v for k, v in state.items() if k.startswith(KEPT)}, kind


def _sizes(state: Mapping[str, Tensor]) -> str:
    """'depth D, width W' of an anymae encoder state dict (from its block indices and final norm)."""
    depth = len({m.group(1) for k in state if (m := _BLOCK.match(k))})
    norm = state.get("encoder.norm.weight")
    width = norm.shape[0] if norm is not None else "?"
    return f"depth {depth}, width {width}"


def load_teacher(path: str | Path, teacher: nn.Module) -> str:
    """Fill `teacher` (a `FrozenTeacher`: `tokenizer.*` / `encoder.*` keys) from a teacher file.

    Args:
        path: an anymae checkpoint, a timm ViT / official MAE state dict, or an HF ViT / ViTMAE
            state dict (`.pt` / `.pth` / `.bin` read with `weights_only=True`, or `.safetensors`).
        teacher: the teacher built with the expected sizes; filled in place, left frozen.

    Returns:
        The file's kind (as the module table names it).

    Raises:
        FileNotFoundError: no file at `path` (named).
        CheckpointError: unreadable, or keys / shapes that do not fit `teacher`: one line naming
            the file, expected vs found depth / width, and the first differing keys with shapes.
    """
    source = f"'{path}'"
    state, kind = teacher_state(read_weights(path), source)
    own = teacher.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        problems = [f"{k}: expected {list(own[k].shape)}, found {list(state[k].shape)}" for k in shapes]
        problems += [f"{k}: expected {list(own[k].shape)}, not in the file" for k in missing]
        problems += [f"{k}: not expected, found {list(state[k].shape)}" for k in unexpected]
        more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
        raise CheckpointError(
            f"teacher file {source} ({kind}) does not fit the teacher: expected {_sizes(own)}, found "
            f"{_sizes(state)}; {'; '.join(problems[:4])}{more}"
        )
    with torch.no_grad():
        teacher.load_state_dict(state, strict=True)
    return kind
