"""The weight inits of core/transformer.py, one function per recipe."""

from __future__ import annotations

import torch
from torch import nn

from anymae.core.transformer import init_mae_, init_trunc_normal_


def test_trunc_normal_init_covers_linear_conv1d_and_layernorm_only() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 512), nn.Conv1d(8, 256, 1), nn.LayerNorm(16), nn.Conv2d(3, 4, 3))
    for p in model.parameters():
        nn.init.constant_(p, 5.0)
    model.apply(init_trunc_normal_)
    linear, conv1d, norm, conv2d = model
    for w in (linear.weight.detach(), conv1d.weight.detach()):
        assert w.abs().max() <= 2.0 and abs(float(w.std()) - 0.02) < 0.002  # timm's trunc_normal_(std=.02, a=-2, b=2)
    assert not linear.bias.any() and not conv1d.bias.any()
    assert torch.equal(norm.weight, torch.ones(16)) and not norm.bias.any()
    assert torch.equal(conv2d.weight, torch.full_like(conv2d.weight, 5.0))  # not a layer this init touches


def test_both_inits_draw_the_same_way_from_the_global_rng() -> None:
    a, b = nn.Linear(32, 32), nn.Linear(32, 32)
    torch.manual_seed(3)
    a.apply(init_trunc_normal_)
    torch.manual_seed(3)
    nn.init.trunc_normal_(b.weight, std=0.02)
    assert torch.equal(a.weight, b.weight)
    torch.manual_seed(3)
    a.apply(init_mae_)
    torch.manual_seed(3)
    nn.init.xavier_uniform_(b.weight)
    assert torch.equal(a.weight, b.weight) and not a.bias.any()
