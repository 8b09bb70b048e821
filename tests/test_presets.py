"""Every registered preset: build -> tokenize -> mask -> forward -> backward -> picture.

Each preset runs shrunk by its registered `small` overrides (the smallest input it accepts, one
block): wiring and shapes are what is checked here; the papers' full-size parameter counts are
checked in tests/modalities.
"""

from __future__ import annotations

import pytest
import torch

import anymae
from anymae.core.registry import get_entry


@pytest.mark.parametrize("name", anymae.list_models())
def test_preset_smoke(name: str) -> None:
    torch.manual_seed(0)
    model = anymae.create_model(name, **get_entry(name).small)
    x = model.tokenizer.example(2)
    out = model(x, seeds=torch.arange(2))
    assert torch.isfinite(out.loss)
    assert out.mask.sum() > 0 and out.loss_weight.sum() > 0
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    recon = model.reconstruct(out)
    assert type(recon) is type(x) and recon.shape == x.shape
