"""Point-MAE checkpoints (Pang-Yatian/Point-MAE `models/Point_MAE.py`) <-> anymae point models.

Pretraining format (`Point_MAE`, saved as `ckpt["base_model"]`, keys maybe prefixed `module.`):

| Point-MAE                                | anymae                               |
|------------------------------------------|--------------------------------------|
| MAE_encoder.encoder.{first,second}_conv.* | tokenizer.pointnet.{first,second}_conv.* |
| MAE_encoder.pos_embed.{0,2}.*            | tokenizer.pos_embed.mlp.{0,2}.*      |
| MAE_encoder.blocks.blocks.{i}.*          | encoder.blocks.{i}.*                 |
| MAE_encoder.norm.*                       | encoder.norm.*                       |
| mask_token                               | decoder.mask_token                   |
| decoder_pos_embed.{0,2}.*                | decoder.pos_embed.mlp.{0,2}.*        |
| MAE_decoder.blocks.{i}.*, MAE_decoder.norm.* | decoder.blocks.{i}.*, decoder.norm.* |
| increase_dim.0.weight (3K×D×1), .bias    | decoder.head.weight (3K×D), .bias    |

Fine-tuned format (`PointTransformer`): `encoder.*` -> `tokenizer.pointnet.*`, `pos_embed.*` ->
`tokenizer.pos_embed.mlp.*`, `blocks.blocks.{i}.*` -> `encoder.blocks.{i}.*`, `norm.*` ->
`encoder.norm.*`, `cls_token` / `cls_pos` -> the classifier's (pool "cls_max"),
`cls_head_finetune.*` -> `head.*` (head "mlp"). Block parameter names (norm1, attn.qkv,
attn.proj, norm2, mlp.fc1, mlp.fc2) are timm's on both sides. Every key must map; an unmapped
key raises with its name.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from anymae.tasks.interop.keys import StateDict, invert, rename_key, strip_module

_PRETRAIN: list[tuple[str, str]] = [
    ("MAE_encoder.encoder.", "tokenizer.pointnet."),
    ("MAE_encoder.pos_embed.", "tokenizer.pos_embed.mlp."),
    ("MAE_encoder.blocks.blocks.", "encoder.blocks."),
    ("MAE_encoder.norm.", "encoder.norm."),
    ("mask_token", "decoder.mask_token"),
    ("decoder_pos_embed.", "decoder.pos_embed.mlp."),
    ("MAE_decoder.blocks.", "decoder.blocks."),
    ("MAE_decoder.norm.", "decoder.norm."),
    ("increase_dim.0.", "decoder.head."),
]
_FINETUNED: list[tuple[str, str]] = [
    ("encoder.", "tokenizer.pointnet."),
    ("pos_embed.", "tokenizer.pos_embed.mlp."),
    ("blocks.blocks.", "encoder.blocks."),
    ("norm.", "encoder.norm."),
    ("cls_token", "cls_token"),
    ("cls_pos", "cls_pos"),
    ("cls_head_finetune.", "head."),
]


def point_mae_to_anymae(state: Mapping[str, Tensor]) -> StateDict:
    """Point-MAE pretraining state dict -> anymae `point_mae` state dict (load with strict=True)."""
    out: StateDict = {}
    for key, value in strip_module(state).items():
        new = rename_key(key, _PRETRAIN, "Point-MAE checkpoint")
        out[new] = value.squeeze(-1) if new == "decoder.head.weight" else value  # Conv1d k=1 -> Linear
    return out


def anymae_to_point_mae(state: Mapping[str, Tensor]) -> StateDict:
    """The inverse of `point_mae_to_anymae` (the official `base_model` layout)."""
    pairs = invert(_PRETRAIN)
    out: StateDict = {}
    for key, value in state.items():
        old = rename_key(key, pairs, "anymae point model")
        out[old] = value.unsqueeze(-1) if key == "decoder.head.weight" else value
    return out


def point_transformer_to_anymae(state: Mapping[str, Tensor]) -> StateDict:
    """Point-MAE fine-tuned `PointTransformer` state dict -> anymae Classifier (pool cls_max, head mlp)."""
    return {rename_key(k, _FINETUNED, "Point-MAE fine-tuned checkpoint"): v for k, v in strip_module(state).items()}


def anymae_to_point_transformer(state: Mapping[str, Tensor]) -> StateDict:
    """anymae Classifier (pool cls_max, head mlp) state dict -> Point-MAE's `PointTransformer` names."""
    pairs = invert(_FINETUNED)
    return {rename_key(k, pairs, "anymae point classifier"): v for k, v in state.items()}


# Point-CMAE (Amazingren/Point-CMAE `models/Point_CMAE.py`): two decoders; the encoder's per-branch
# cls tokens and cls projection are not part of anymae's model (unused in the released loss).
_CMAE: list[tuple[str, str]] = [
    ("MAE_encoder.encoder.", "tokenizer.pointnet."),
    ("MAE_encoder.pos_embed.", "tokenizer.pos_embed.mlp."),
    ("MAE_encoder.blocks.blocks.", "encoder.blocks."),
    ("MAE_encoder.norm.", "encoder.norm."),
    ("mask_token1", "decoder.mask_token"),
    ("mask_token2", "decoder2.mask_token"),
    ("decoder_pos_embed1.", "decoder.pos_embed.mlp."),
    ("decoder_pos_embed2.", "decoder2.pos_embed.mlp."),
    ("MAE_decoder_.blocks.", "decoder2.blocks."),
    ("MAE_decoder_.norm.", "decoder2.norm."),
    ("MAE_decoder.blocks.", "decoder.blocks."),
    ("MAE_decoder.norm.", "decoder.norm."),
    ("increase_dim_.0.", "decoder2.head."),
    ("increase_dim.0.", "decoder.head."),
]
CMAE_DROPPED: tuple[str, ...] = ("MAE_encoder.cls_token", "MAE_encoder.cls_pos", "MAE_encoder.proj_cls")


def point_cmae_to_anymae(state: Mapping[str, Tensor]) -> StateDict:
    """Point-CMAE pretraining state dict -> anymae `point_cmae` (its cls tokens / projection are dropped, by name)."""
    out: StateDict = {}
    for key, value in strip_module(state).items():
        if key.startswith(CMAE_DROPPED):
            continue
        new = rename_key(key, _CMAE, "Point-CMAE checkpoint")
        out[new] = value.squeeze(-1) if new.endswith("head.weight") else value
    return out


def anymae_to_point_cmae(state: Mapping[str, Tensor]) -> StateDict:
    """anymae `point_cmae` state dict -> Point-CMAE names (without the unused cls tokens)."""
    pairs = invert(_CMAE)
    return {rename_key(k, pairs, "anymae two-mask point model"): (v.unsqueeze(-1) if k.endswith("head.weight") else v)
            for k, v in state.items()}


def point_release_to_anymae(state: Mapping[str, Tensor], *, two_mask: bool) -> StateDict:
    """A Point-MAE / Point-CMAE release state dict -> anymae names.

    A fine-tuned `PointTransformer` (it holds `cls_head_finetune.*`) maps to a Classifier; a
    pretraining one to `point_cmae` when the model it fills is two-mask, else to `point_mae`.
    """
    if any(k.startswith("cls_head_finetune.") for k in strip_module(state)):
        return point_transformer_to_anymae(state)
    return point_cmae_to_anymae(state) if two_mask else point_mae_to_anymae(state)


def anymae_to_point_release(state: Mapping[str, Tensor], *, two_mask: bool) -> StateDict:
    """An anymae point MAE state dict -> the pretraining release names (Point-CMAE's when two-mask)."""
    return anymae_to_point_cmae(state) if two_mask else anymae_to_point_mae(state)
