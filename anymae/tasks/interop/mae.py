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
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from anymae.tasks.interop.keys import HFNames, StateDict, hf_to_reference, invert, rename_key

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


def official_mae_to_anymae(state: Mapping[str, Tensor], *, num_prefix: int = 1) -> StateDict:
    """Official MAE state dict (`ckpt["model"]`) -> anymae image MAE state dict.

    anymae's position tables have no cls slot. MAE's slot is zero; a supervised ViT's (timm) is
    learned, and timm adds it to the cls token once, so it is folded into `cls_token` (exact for both).
    """
    tables = dict(_POS_TABLES)
    out: StateDict = {}
    if "cls_token" in state and "pos_embed" in state:
        state = {**state, "cls_token": state["cls_token"] + state["pos_embed"][:, :1]}  # 1×1×D
    for key, value in state.items():
        if key in tables:
            out[tables[key]] = value[:, num_prefix:]  # drop the (zero) cls slot
        else:
            out[rename_key(key, _PREFIXES, "official MAE checkpoint")] = value
    return out


def anymae_to_official_mae(state: Mapping[str, Tensor]) -> StateDict:
    """The inverse of `official_mae_to_anymae` (a zero cls slot put back into position tables)."""
    tables = {ours: theirs for theirs, ours in _POS_TABLES}
    pairs = invert(_PREFIXES)
    out: StateDict = {}
    for key, value in state.items():
        if key in tables:
            out[tables[key]] = torch.cat([value.new_zeros(1, 1, value.shape[-1]), value], dim=1)
        else:
            out[rename_key(key, pairs, "anymae state dict")] = value
    return out


# HF transformers ViTMAE -> official MAE names. Both the transformers-5 names (q_proj, mlp.fc1, ...)
# and the older ones (attention.attention.query, intermediate.dense, ...) are accepted.
_HF = HFNames(
    source="HF ViTMAE checkpoint",
    top={
        "vit.embeddings.cls_token": "cls_token",
        "vit.embeddings.position_embeddings": "pos_embed",
        "vit.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
        "vit.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
        "vit.layernorm.weight": "norm.weight", "vit.layernorm.bias": "norm.bias",
        "decoder.mask_token": "mask_token", "decoder.decoder_pos_embed": "decoder_pos_embed",
        "decoder.decoder_embed.weight": "decoder_embed.weight", "decoder.decoder_embed.bias": "decoder_embed.bias",
        "decoder.decoder_norm.weight": "decoder_norm.weight", "decoder.decoder_norm.bias": "decoder_norm.bias",
        "decoder.decoder_pred.weight": "decoder_pred.weight", "decoder.decoder_pred.bias": "decoder_pred.bias",
    },
    block_re=re.compile(r"^(vit\.(?:encoder\.layer|layers)|decoder\.decoder_layers)\.(\d+)\.(.+)\.(weight|bias)$"),
    block_prefix=lambda stack, idx: f"blocks.{idx}" if stack.startswith("vit") else f"decoder_blocks.{idx}",
    parts={
        "layernorm_before": "norm1", "layernorm_after": "norm2",
        "attention.o_proj": "attn.proj", "attention.output.dense": "attn.proj",
        "mlp.fc1": "mlp.fc1", "intermediate.dense": "mlp.fc1",
        "mlp.fc2": "mlp.fc2", "output.dense": "mlp.fc2",
    },
    qkv={"attention.q_proj": 0, "attention.k_proj": 1, "attention.v_proj": 2,
         "attention.attention.query": 0, "attention.attention.key": 1, "attention.attention.value": 2},
)  # fmt: skip


def hf_vitmae_to_official_mae(state: Mapping[str, Tensor]) -> StateDict:
    """HF `ViTMAEForPreTraining` state dict -> official MAE names (q, k, v fused into qkv)."""
    return hf_to_reference(state, _HF)


def hf_vitmae_to_anymae(state: Mapping[str, Tensor]) -> StateDict:
    """HF `ViTMAEForPreTraining` state dict -> anymae image MAE state dict."""
    return official_mae_to_anymae(hf_vitmae_to_official_mae(state))


def is_hf_vitmae(state: Mapping[str, Tensor]) -> bool:
    """Whether `state` uses HF transformers' ViTMAE names (`vit.*`) rather than the official ones."""
    return any(k.startswith("vit.") for k in state)


def mae_release_to_anymae(state: Mapping[str, Tensor]) -> StateDict:
    """An official MAE or HF ViTMAE pretraining state dict (names told apart by `is_hf_vitmae`) -> anymae."""
    return hf_vitmae_to_anymae(state) if is_hf_vitmae(state) else official_mae_to_anymae(state)


def export_timm_encoder(model: nn.Module) -> StateDict:
    """The image encoder as a timm VisionTransformer state dict (global_pool='token', num_classes=0).

    Loads with `strict=True` into `timm.create_model(f"vit_..._patch{p}_{size}", num_classes=0,
    img_size=..., in_chans=...)`; decoder keys are left out.
    """
    state = {k: v.detach().clone() for k, v in model.state_dict().items()
             if k.startswith(("tokenizer.", "encoder."))}
    return anymae_to_official_mae(state)
