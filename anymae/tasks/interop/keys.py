"""The pieces every key mapping shares: prefix renaming, q/k/v fusion, HF transformers' block names,
reading a release file's state dict.

Every converter in this folder is an explicit key mapping that accounts for every key; these
helpers raise with the key's name (and the source it came from) when one has no mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from anymae.tasks.train.checkpoint import CheckpointError

StateDict = dict[str, Tensor]
# (old prefix, new prefix); a prefix without a trailing dot is a whole key.
Pairs = Sequence[tuple[str, str]]


def rename_key(key: str, pairs: Pairs, source: str) -> str:
    """`key` with the first matching prefix of `pairs` replaced.

    Raises:
        KeyError: no pair matches; the message names `source` and the key.
    """
    for old, new in pairs:
        if key == old or (old.endswith(".") and key.startswith(old)):
            return new + key[len(old):]
    raise KeyError(f"{source}: no mapping for key {key!r}")


def invert(pairs: Pairs) -> list[tuple[str, str]]:
    """The pairs of the reverse mapping (new prefix -> old prefix), in the same order."""
    return [(new, old) for old, new in pairs]


def strip_module(state: Mapping[str, Tensor]) -> StateDict:
    """`state` without the `module.` prefix that DDP / DeepSpeed wrappers add to every key."""
    return {k.removeprefix("module."): v for k, v in state.items()}


RELEASE_KEYS: tuple[str, ...] = ("model", "module", "base_model")


def unwrap_release(ckpt: Mapping[str, Any], source: str) -> StateDict:
    """The state dict inside a release file, `module.` prefixes removed.

    Args:
        ckpt: `torch.load(path)` of a release: a dict holding the state dict under one of
            `RELEASE_KEYS` ("model": MAE, VideoMAE, Audio-MAE; "module": DeepSpeed;
            "base_model": Point-MAE), or the state dict itself. Non-tensor entries of the
            state dict (e.g. an epoch counter) are left out.
        source: names the file in errors.

    Raises:
        CheckpointError: no tensors found.
    """
    for key in RELEASE_KEYS:
        if isinstance(ckpt.get(key), Mapping):
            ckpt = ckpt[key]
            break
    state = strip_module({k: v for k, v in ckpt.items() if isinstance(v, Tensor)})
    if not state:
        raise CheckpointError(
            f"{source}: no tensors found; expected a state dict, or one under {' / '.join(RELEASE_KEYS)}, "
            f"got keys {sorted(ckpt)[:8]}"
        )
    return state


class QKVFusion:
    """Collects separate q, k, v tensors and fuses each triple into one timm `qkv` tensor.

    `add(name, slot, value)` files q (slot 0), k (1) or v (2) under the fused key `name`;
    `fused()` concatenates along dim 0: three D_out×D_in weights -> 3·D_out×D_in (biases: 3·D_out).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._parts: dict[str, list[Tensor | None]] = {}

    def add(self, name: str, slot: int, value: Tensor) -> None:
        if slot not in (0, 1, 2):
            raise ValueError(f"{self.source}: q/k/v slot {slot!r} for {name!r}: expected 0, 1 or 2")
        self._parts.setdefault(name, [None, None, None])[slot] = value

    def fused(self) -> StateDict:
        """{fused key: q;k;v concatenated}; raises KeyError naming a key that lacks one of q / k / v."""
        out: StateDict = {}
        for name, parts in self._parts.items():
            missing = [qkv for qkv, p in zip("qkv", parts) if p is None]
            if missing:
                raise KeyError(f"{self.source}: {name} is missing its {' and '.join(missing)} part")
            out[name] = torch.cat(parts, dim=0)  # type: ignore[arg-type]  (3·D_out × ...)
        return out


@dataclass(frozen=True)
class HFNames:
    """How an HF transformers ViT checkpoint names its tensors, and the reference names they take.

    Attributes:
        source: names the checkpoint kind in errors ("HF ViTMAE checkpoint").
        top: whole HF keys -> reference keys (embeddings, final norms, decoder projections, ...).
        block_re: matches a block tensor; groups (stack, block index, part, "weight" | "bias").
        block_prefix: (stack, index) -> the reference prefix of that block ("blocks.3").
        parts: HF part -> timm part of a block ("layernorm_before" -> "norm1", ...).
        qkv: HF part of the query / key / value projection -> its slot 0 / 1 / 2 in timm's fused `qkv`.
        qv_bias: True: the q and v biases stay separate as `attn.q_bias` / `attn.v_bias` (BEiT /
            VideoMAE; there is no k bias); False: biases are fused like the weights.
    """

    source: str
    top: Mapping[str, str]
    block_re: re.Pattern[str]
    block_prefix: Callable[[str, str], str]
    parts: Mapping[str, str]
    qkv: Mapping[str, int]
    qv_bias: bool = False


def hf_to_reference(state: Mapping[str, Tensor], names: HFNames) -> StateDict:
    """An HF transformers state dict -> the reference release names (q, k, v fused into timm's qkv).

    Raises:
        KeyError: a key with no mapping, or a block lacking one of q / k / v; names the key.
    """
    out: StateDict = {}
    qkv = QKVFusion(names.source)
    for key, value in state.items():
        if key in names.top:
            out[names.top[key]] = value
            continue
        m = names.block_re.match(key)
        if m is None:
            raise KeyError(f"{names.source}: no mapping for key {key!r}")
        stack, idx, part, kind = m.groups()
        prefix = names.block_prefix(stack, idx)
        slot = names.qkv.get(part)
        if slot is not None and names.qv_bias and kind == "bias":
            if slot == 1:
                raise KeyError(f"{names.source}: no mapping for key {key!r} (the reference has no k bias)")
            out[f"{prefix}.attn.{'q' if slot == 0 else 'v'}_bias"] = value
        elif slot is not None:
            qkv.add(f"{prefix}.attn.qkv.{kind}", slot, value)
        elif part in names.parts:
            out[f"{prefix}.{names.parts[part]}.{kind}"] = value
        else:
            raise KeyError(f"{names.source}: no mapping for key {key!r}")
    return {**out, **qkv.fused()}
