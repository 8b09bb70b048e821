from __future__ import annotations

import pytest
import torch

from anymae.tasks.train.optim import build_optimizer, layer_id, param_groups
from tests.tasks.train._train_script import tiny_model


def _names(model: torch.nn.Module, group: dict) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_pretraining_groups_decay_tokens_but_not_biases_or_norms():
    model = tiny_model()
    groups = {g["name"]: g for g in param_groups(model, 0.05)}
    assert set(groups) == {"decay", "no_decay"}
    decay, no_decay = _names(model, groups["decay"]), _names(model, groups["no_decay"])
    assert groups["decay"]["weight_decay"] == 0.05 and groups["no_decay"]["weight_decay"] == 0.0
    # MAE pretraining (timm add_weight_decay): tokens are decayed
    assert {"encoder.cls_token", "decoder.mask_token", "tokenizer.patch_embed.proj.weight"} <= decay
    assert {"encoder.blocks.0.attn.qkv.weight", "decoder.head.weight"} <= decay
    assert all(n.endswith(".bias") or "norm" in n for n in no_decay)
    assert {"encoder.blocks.1.norm2.weight", "encoder.norm.bias", "tokenizer.patch_embed.proj.bias"} <= no_decay
    assert decay | no_decay == {n for n, _ in model.named_parameters()}
    assert not decay & no_decay


def test_decay_tokens_false_exempts_no_weight_decay_names():
    model = tiny_model()
    groups = {g["name"]: g for g in param_groups(model, 0.05, decay_tokens=False)}
    no_decay = _names(model, groups["no_decay"])
    assert set(model.no_weight_decay()) <= no_decay
    assert {"encoder.cls_token", "decoder.mask_token"} <= no_decay
    assert "tokenizer.patch_embed.proj.weight" in _names(model, groups["decay"])


def test_layer_decay_ids_and_scales_hand_computed():
    model = tiny_model()  # encoder depth 2 -> num_layers 3
    groups = param_groups(model, 0.05, layer_decay=0.5)
    scale = {n: g["lr_scale"] for g in groups for n in _names(model, g)}
    wd = {n: g["weight_decay"] for g in groups for n in _names(model, g)}
    assert scale["tokenizer.patch_embed.proj.weight"] == pytest.approx(0.125)  # 0.5 ** (3 - 0)
    assert scale["encoder.cls_token"] == pytest.approx(0.125)
    assert scale["encoder.blocks.0.attn.qkv.weight"] == pytest.approx(0.25)  # layer 1
    assert scale["encoder.blocks.1.mlp.fc2.bias"] == pytest.approx(0.5)  # layer 2
    assert scale["encoder.norm.weight"] == 1.0 and scale["decoder.head.weight"] == 1.0  # layer 3
    assert wd["encoder.blocks.0.attn.qkv.weight"] == 0.05 and wd["encoder.blocks.1.mlp.fc2.bias"] == 0.0
    names = [g["name"] for g in groups]
    assert "layer0_decay" in names and "layer2_no_decay" in names and "layer3_decay" in names


def test_layer_id_rules_and_errors():
    assert layer_id("encoder.reg_token", 13) == 0
    assert layer_id("encoder.blocks.11.attn.proj.weight", 13) == 12
    assert layer_id("fc_norm.weight", 13) == 13 and layer_id("head.weight", 13) == 13
    with pytest.raises(ValueError, match="'encoder.blocks.5.norm1.weight' is in encoder block 5.*num_layers=3"):
        layer_id("encoder.blocks.5.norm1.weight", 3)
    with pytest.raises(ValueError, match="no encoder.depth"):
        param_groups(torch.nn.Linear(2, 2), 0.05, layer_decay=0.75)


def test_build_optimizer_is_adamw_with_the_recipe():
    model = tiny_model()
    opt = build_optimizer(model, lr=2.4e-3, weight_decay=0.05, betas=(0.9, 0.95))
    assert isinstance(opt, torch.optim.AdamW)
    assert all(g["betas"] == (0.9, 0.95) and g["lr"] == 2.4e-3 for g in opt.param_groups)
    frozen = tiny_model()
    frozen.encoder.cls_token.requires_grad_(False)
    counted = sum(len(g["params"]) for g in param_groups(frozen, 0.05))
    assert counted == sum(1 for p in frozen.parameters() if p.requires_grad)
