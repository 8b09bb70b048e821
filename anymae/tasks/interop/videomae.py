"""Import and export of VideoMAE / VideoMAE V2 weights: official releases and HF transformers.

The hub of names is the official release format (MCG-NJU/VideoMAE and OpenGVLab/VideoMAEv2
`modeling_pretrain.py` / `modeling_finetune.py`); every conversion is an explicit key mapping that
must account for every key (an unmapped key raises with its name).

| official pretraining (`ckpt["model"]`)  | anymae                                      |
|-----------------------------------------|---------------------------------------------|
| encoder.patch_embed.proj.*              | tokenizer.patch_embed.proj.*                |
| encoder.blocks.{i}.attn.q_bias / v_bias | encoder.blocks.{i}.attn.qkv.q_bias / v_bias |
| encoder.blocks.{i}.* (other), encoder.norm.* | encoder.blocks.{i}.*, encoder.norm.*    |
| encoder_to_decoder.weight               | decoder.embed.weight                        |
| mask_token                              | decoder.mask_token                          |
| decoder.blocks.{i}.*, decoder.norm.*, decoder.head.* | decoder.blocks.{i}.* (q/v bias as above), decoder.norm.*, decoder.head.* |

Fine-tuned checkpoints (`ckpt["module"]` or `ckpt["model"]`) use `patch_embed.*`, `blocks.*`,
`norm.*` (without mean pooling), `fc_norm.*`, `head.*`; they map to the classifier's
`tokenizer.*`, `encoder.*`, `fc_norm.*`, `head.*`. Position tables are fixed and not stored by
the releases; loaders take them from the model they fill.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from anymae.tasks.interop.keys import HFNames, StateDict, hf_to_reference
from anymae.tasks.train.checkpoint import CheckpointError

_BLOCK_RE = re.compile(r"^(encoder\.blocks|decoder\.blocks|blocks)\.(\d+)\.(.+)$")
_TOP_PRETRAIN = {
    "encoder.patch_embed.proj.weight": "tokenizer.patch_embed.proj.weight",
    "encoder.patch_embed.proj.bias": "tokenizer.patch_embed.proj.bias",
    "encoder.norm.weight": "encoder.norm.weight",
    "encoder.norm.bias": "encoder.norm.bias",
    "encoder_to_decoder.weight": "decoder.embed.weight",
    "mask_token": "decoder.mask_token",
    "decoder.norm.weight": "decoder.norm.weight",
    "decoder.norm.bias": "decoder.norm.bias",
    "decoder.head.weight": "decoder.head.weight",
    "decoder.head.bias": "decoder.head.bias",
}
_TOP_FINETUNE = {
    "patch_embed.proj.weight": "tokenizer.patch_embed.proj.weight",
    "patch_embed.proj.bias": "tokenizer.patch_embed.proj.bias",
    "norm.weight": "encoder.norm.weight",
    "norm.bias": "encoder.norm.bias",
    "fc_norm.weight": "fc_norm.weight",
    "fc_norm.bias": "fc_norm.bias",
    "head.weight": "head.weight",
    "head.bias": "head.bias",
}
_BIAS = {"attn.q_bias": "attn.qkv.q_bias", "attn.v_bias": "attn.qkv.v_bias"}


def videomae_to_anymae(state: Mapping[str, Tensor], *, source: str = "VideoMAE checkpoint") -> StateDict:
    """Official VideoMAE / V2 state dict (pretraining or fine-tuned) -> anymae names."""
    out: StateDict = {}
    for key, value in state.items():
        if key in _TOP_PRETRAIN:
            out[_TOP_PRETRAIN[key]] = value
        elif key in _TOP_FINETUNE:
            out[_TOP_FINETUNE[key]] = value
        elif (m := _BLOCK_RE.match(key)) is not None:
            stack, idx, rest = m.groups()
            prefix = "decoder.blocks" if stack == "decoder.blocks" else "encoder.blocks"
            out[f"{prefix}.{idx}.{_BIAS.get(rest, rest)}"] = value
        elif key.endswith("pos_embed"):
            raise CheckpointError(
                f"{source}: key {key!r} is a learned position table (use_learnable_pos_emb); anymae's "
                "VideoMAE presets use the fixed sinusoid table"
            )
        else:
            raise CheckpointError(f"{source}: no mapping for key {key!r}")
    return out


def anymae_to_videomae(state: Mapping[str, Tensor]) -> StateDict:
    """anymae video MAE state dict -> the official pretraining format (position tables left out)."""
    top = {ours: theirs for theirs, ours in _TOP_PRETRAIN.items()}
    bias = {ours: theirs for theirs, ours in _BIAS.items()}
    out: StateDict = {}
    for key, value in state.items():
        if key.endswith("pos_embed.table"):
            continue  # fixed, recomputed by the official model
        if key in top:
            out[top[key]] = value
            continue
        m = re.match(r"^(encoder|decoder)\.blocks\.(\d+)\.(.+)$", key)
        if m is None:
            raise KeyError(f"anymae video state dict: no official VideoMAE name for key {key!r}")
        stack, idx, rest = m.groups()
        out[f"{stack}.blocks.{idx}.{bias.get(rest, rest)}"] = value
    return out


_HF = HFNames(
    source="HF VideoMAE checkpoint",
    top={
        "videomae.embeddings.patch_embeddings.projection.weight": "encoder.patch_embed.proj.weight",
        "videomae.embeddings.patch_embeddings.projection.bias": "encoder.patch_embed.proj.bias",
        "videomae.layernorm.weight": "encoder.norm.weight", "videomae.layernorm.bias": "encoder.norm.bias",
        "encoder_to_decoder.weight": "encoder_to_decoder.weight", "mask_token": "mask_token",
        "decoder.norm.weight": "decoder.norm.weight", "decoder.norm.bias": "decoder.norm.bias",
        "decoder.head.weight": "decoder.head.weight", "decoder.head.bias": "decoder.head.bias",
        "fc_norm.weight": "fc_norm.weight", "fc_norm.bias": "fc_norm.bias",
        "classifier.weight": "head.weight", "classifier.bias": "head.bias",
    },
    block_re=re.compile(r"^(videomae\.encoder\.layer|decoder\.decoder_layers)\.(\d+)\.(.+)\.(weight|bias)$"),
    block_prefix=lambda stack, idx: f"{'encoder' if stack.startswith('videomae') else 'decoder'}.blocks.{idx}",
    parts={
        "attention.output.dense": "attn.proj", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
        "layernorm_before": "norm1", "layernorm_after": "norm2",
    },
    qkv={"attention.attention.query": 0, "attention.attention.key": 1, "attention.attention.value": 2},
    qv_bias=True,
)  # fmt: skip


def hf_videomae_to_videomae(state: Mapping[str, Tensor]) -> StateDict:
    """HF `VideoMAEForPreTraining` / `VideoMAEForVideoClassification` state dict -> official names.

    q, k, v weights are fused into `attn.qkv.weight`; the q / v biases become `attn.q_bias` /
    `attn.v_bias` (HF has no k bias either). Encoder keys get the pretraining `encoder.` prefix
    when a decoder is present, else the fine-tuned names (`blocks.*`, `patch_embed.*`).
    """
    pretrain = any(k.startswith("decoder.") for k in state)
    out = hf_to_reference(state, _HF)
    if not pretrain:  # the fine-tuned release names
        out = {k.removeprefix("encoder.") if k.startswith(("encoder.blocks.", "encoder.patch_embed.")) else k: v
               for k, v in out.items()}  # fmt: skip
        if "encoder.norm.weight" in out:
            out["norm.weight"], out["norm.bias"] = out.pop("encoder.norm.weight"), out.pop("encoder.norm.bias")
    return out


def is_hf_videomae(state: Mapping[str, Tensor]) -> bool:
    """Whether `state` uses HF transformers' VideoMAE names rather than the official ones."""
    return any(k.startswith(("videomae.", "decoder.decoder_layers")) for k in state)


def videomae_release_to_anymae(state: Mapping[str, Tensor], *, source: str = "VideoMAE checkpoint") -> StateDict:
    """An official or HF VideoMAE / V2 state dict (pretraining or fine-tuned) -> anymae names."""
    return videomae_to_anymae(hf_videomae_to_videomae(state) if is_hf_videomae(state) else state, source=source)


def load_videomae_weights(
    model: nn.Module, source: str | Path | Mapping[str, Any], *, strict: bool = True
) -> list[str]:
    """`interop.formats.load_official_weights` for a video model (MaskedAutoencoder or Classifier).

    Kept under this name for the callers of the VideoMAE importer; the format is chosen by the
    model's registered modality, so a non-video model gets its own modality's importer.
    """
    from anymae.tasks.interop.formats import load_official_weights  # formats imports this module

    return load_official_weights(model, source, strict=strict)
