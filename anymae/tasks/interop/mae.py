"""Import and export of image MAE weights: official MAE, HF transformers ViTMAE, timm.

Every conversion is an explicit key mapping that must account for every key (nothing is
dropped silently): an unmapped key raises with its name. The hub of names is the official MAE
release format (timm VisionTransformer names for the encoder plus `decoder_*`), which anymae's
image model maps to one-to-one:

| official MAE                | anymae                         |
|-----------------------------|--------------------------------|
| patch_embed.proj.*          | tokenizer.patch_embed.proj.*   |
| pos_embed (1×(1+N)×D)       | tokenizer.pos_embed.table (1×N×D, cls slot dropped) |
| cls_token, blocks.*, norm.* | encoder.cls_token, encoder.blocks.*, encoder.norm.* |
| mask_token                  | decoder.mask_token             |
| decoder_embed.*             | decoder.embed.*                |
| decoder_pos_embed           | decoder.pos_embed.table (cls slot dropped) |
| decoder_blocks.*, decoder_norm.*, decoder_pred.* | decoder.blocks.*, decoder.norm.*, decoder.head.* |
"""

from __future__ import annotations

import re
from typing import Mapping

import torch
from torch import Tensor, nn

StateDict = dict[str, Tensor]

# (official MAE prefix, anymae prefix); a prefix without a trailing dot is a whole key.
_PREFIXES: list[tuple[str, str]] = [
    ("patch_embed.", "tokenizer.patch_embed."),
    ("cls_token", "encoder.cls_token"),
    ("blocks.", "encoder.blocks."),
    ("norm.", "encoder.norm."),
    ("mask_token", "decoder.mask_token"),
    ("decoder_embed.", "decoder.embed."),
    ("decoder_blocks.", "decoder.blocks."),
    ("decoder_norm.", "decoder.norm."),
    ("decoder_pred.", "decoder.head."),
]
_POS_TABLES = [("pos_embed", "tokenizer.pos_embed.table"), ("decoder_pos_embed", "decoder.pos_embed.table")]


def _rename(key: str, pairs: list[tuple[str, str]], source: str) -> str:
    for old, new in pairs:
        if key == old or (old.endswith(".") and key.startswith(old)):
            return new + key[len(old):]
    raise KeyError(f"{source}: no mapping for key {key!r}")


def official_mae_to_anymae(state: Mapping[str, Tensor], *, num_prefix: int = 1) -> StateDict:
    """Official MAE state dict (`ckpt["model"]`) -> anymae image MAE state dict."""
    tables = dict(_POS_TABLES)
    out: StateDict = {}
    for key, value in state.items():
        if key in tables:
            out[tables[key]] = value[:, num_prefix:]  # drop the (zero) cls slot
        else:
            out[_rename(key, _PREFIXES, "official MAE checkpoint")] = value
    return out


def anymae_to_official_mae(state: Mapping[str, Tensor]) -> StateDict:
    """The inverse of `official_mae_to_anymae` (a zero cls slot put back into position tables)."""
    tables = {ours: theirs for theirs, ours in _POS_TABLES}
    pairs = [(ours, theirs) for theirs, ours in _PREFIXES]
    out: StateDict = {}
    for key, value in state.items():
        if key in tables:
            out[tables[key]] = torch.cat([value.new_zeros(1, 1, value.shape[-1]), value], dim=1)
        else:
            out[_rename(key, pairs, "anymae state dict")] = value
    return out


# HF transformers ViTMAE -> official MAE names. Both the transformers-5 names (q_proj, mlp.fc1, ...)
# and the older ones (attention.attention.query, intermediate.dense, ...) are accepted.
_HF_LAYER = {
    "layernorm_before": "norm1", "layernorm_after": "norm2",
    "attention.o_proj": "attn.proj", "attention.output.dense": "attn.proj",
    "mlp.fc1": "mlp.fc1", "intermediate.dense": "mlp.fc1",
    "mlp.fc2": "mlp.fc2", "output.dense": "mlp.fc2",
}
_HF_QKV = {"q_proj": 0, "k_proj": 1, "v_proj": 2, "attention.query": 0, "attention.key": 1, "attention.value": 2}
_HF_LAYER_RE = re.compile(r"^(vit\.(?:encoder\.layer|layers)|decoder\.decoder_layers)\.(\d+)\.(.+)\.(weight|bias)$")
_HF_TOP = {
    "vit.embeddings.cls_token": "cls_token",
    "vit.embeddings.position_embeddings": "pos_embed",
    "vit.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "vit.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "vit.layernorm.weight": "norm.weight", "vit.layernorm.bias": "norm.bias",
    "decoder.mask_token": "mask_token", "decoder.decoder_pos_embed": "decoder_pos_embed",
    "decoder.decoder_embed.weight": "decoder_embed.weight", "decoder.decoder_embed.bias": "decoder_embed.bias",
    "decoder.decoder_norm.weight": "decoder_norm.weight", "decoder.decoder_norm.bias": "decoder_norm.bias",
    "decoder.decoder_pred.weight": "decoder_pred.weight", "decoder.decoder_pred.bias": "decoder_pred.bias",
}


def hf_vitmae_to_official_mae(state: Mapping[str, Tensor]) -> StateDict:
    """HF `ViTMAEForPreTraining` state dict -> official MAE names (q, k, v fused into qkv)."""
    out: StateDict = {}
    qkv: dict[tuple[str, str], list[Tensor | None]] = {}
    for key, value in state.items():
        if key in _HF_TOP:
            out[_HF_TOP[key]] = value
            continue
        m = _HF_LAYER_RE.match(key)
        if m is None:
            raise KeyError(f"HF ViTMAE checkpoint: no mapping for key {key!r}")
        stack, idx, part, kind = m.groups()
        prefix = f"blocks.{idx}" if stack.startswith("vit") else f"decoder_blocks.{idx}"
        part = part.removeprefix("attention.") if part.startswith("attention.attention.") else part
        qkv_slot = _HF_QKV.get(part.removeprefix("attention."), _HF_QKV.get(part))
        if qkv_slot is not None:
            qkv.setdefault((f"{prefix}.attn.qkv", kind), [None, None, None])[qkv_slot] = value
        elif part in _HF_LAYER:
            out[f"{prefix}.{_HF_LAYER[part]}.{kind}"] = value
        else:
            raise KeyError(f"HF ViTMAE checkpoint: no mapping for key {key!r}")
    for (name, kind), parts in qkv.items():
        if any(p is None for p in parts):
            raise KeyError(f"HF ViTMAE checkpoint: {name} is missing one of q/k/v {kind}")
        out[f"{name}.{kind}"] = torch.cat(parts, dim=0)  # type: ignore[arg-type]
    return out


def hf_vitmae_to_anymae(state: Mapping[str, Tensor]) -> StateDict:
    return official_mae_to_anymae(hf_vitmae_to_official_mae(state))


def export_timm_encoder(model: nn.Module) -> StateDict:
    """The image encoder as a timm VisionTransformer state dict (global_pool='token', num_classes=0).

    Loads with `strict=True` into `timm.create_model(f"vit_..._patch{p}_{size}", num_classes=0,
    img_size=..., in_chans=...)`; decoder keys are left out.
    """
    state = {k: v.detach().clone() for k, v in model.state_dict().items()
             if k.startswith(("tokenizer.", "encoder."))}
    return anymae_to_official_mae(state)
