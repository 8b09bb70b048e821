"""The shared key helpers: prefix renaming, q/k/v fusion, reading a release's state dict."""

from __future__ import annotations

import re

import pytest
import torch

from anymae.tasks.interop.keys import (
    HFNames,
    QKVFusion,
    hf_to_reference,
    invert,
    rename_key,
    strip_module,
    unwrap_release,
)
from anymae.tasks.train.checkpoint import CheckpointError

PAIRS = [("blocks.", "encoder.blocks."), ("cls_token", "encoder.cls_token"), ("norm.", "encoder.norm.")]


def test_rename_key_prefixes_whole_keys_and_inverse() -> None:
    assert rename_key("blocks.3.attn.qkv.weight", PAIRS, "src") == "encoder.blocks.3.attn.qkv.weight"
    assert rename_key("cls_token", PAIRS, "src") == "encoder.cls_token"
    with pytest.raises(KeyError, match="src: no mapping for key 'cls_token_extra'"):
        rename_key("cls_token_extra", PAIRS, "src")  # a whole-key pair matches only the whole key
    back = invert(PAIRS)
    assert back[0] == ("encoder.blocks.", "blocks.")
    assert rename_key("encoder.norm.bias", back, "src") == "norm.bias"


def test_qkv_fusion_concatenates_q_k_v_in_order() -> None:
    q, k, v = torch.full((2, 3), 1.0), torch.full((2, 3), 2.0), torch.full((2, 3), 3.0)
    fusion = QKVFusion("test checkpoint")
    fusion.add("blocks.0.attn.qkv.weight", 2, v)  # any order of arrival
    fusion.add("blocks.0.attn.qkv.weight", 0, q)
    fusion.add("blocks.0.attn.qkv.weight", 1, k)
    fused = fusion.fused()["blocks.0.attn.qkv.weight"]
    assert fused.shape == (6, 3) and fused[:, 0].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    partial = QKVFusion("test checkpoint")
    partial.add("blocks.1.attn.qkv.bias", 0, torch.zeros(2))
    with pytest.raises(KeyError, match="test checkpoint: blocks.1.attn.qkv.bias is missing its k and v part"):
        partial.fused()


def test_unwrap_release_finds_the_state_dict() -> None:
    t = torch.zeros(1)
    assert unwrap_release({"base_model": {"module.a": t}, "epoch": 3}, "f") == {"a": t}
    assert unwrap_release({"module": {"b": t}}, "f") == {"b": t}
    assert unwrap_release({"c": t, "step": 5}, "f") == {"c": t}
    assert strip_module({"module.x.y": t}) == {"x.y": t}
    with pytest.raises(CheckpointError, match="f: no tensors found"):
        unwrap_release({"optimizer": {"lr": 0.1}}, "f")


def test_hf_names_fuse_weights_and_keep_q_v_biases_apart() -> None:
    names = HFNames(
        source="toy HF checkpoint", top={"emb.weight": "patch_embed.proj.weight"},
        block_re=re.compile(r"^layer\.(enc)\.(\d+)\.(.+)\.(weight|bias)$"),
        block_prefix=lambda stack, idx: f"blocks.{idx}", parts={"ln1": "norm1"},
        qkv={"q": 0, "k": 1, "v": 2}, qv_bias=True,
    )  # fmt: skip
    w = [torch.full((2, 2), float(i)) for i in range(3)]
    state = {"emb.weight": w[0], "layer.enc.0.ln1.bias": w[1][0], "layer.enc.0.q.bias": torch.ones(2),
             "layer.enc.0.v.bias": torch.zeros(2), **{f"layer.enc.0.{p}.weight": w[i] for i, p in enumerate("qkv")}}
    out = hf_to_reference(state, names)
    assert set(out) == {"patch_embed.proj.weight", "blocks.0.norm1.bias", "blocks.0.attn.q_bias",
                        "blocks.0.attn.v_bias", "blocks.0.attn.qkv.weight"}
    assert out["blocks.0.attn.qkv.weight"][:, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    with pytest.raises(KeyError, match="'layer.enc.0.k.bias' \\(the reference has no k bias\\)"):
        hf_to_reference({**state, "layer.enc.0.k.bias": torch.zeros(2)}, names)
    with pytest.raises(KeyError, match="toy HF checkpoint: no mapping for key 'layer.enc.0.ln9.weight'"):
        hf_to_reference({**state, "layer.enc.0.ln9.weight": torch.zeros(2)}, names)
