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
from anymae.core.skeleton.query_modes import EncoderOnlyMode
from anymae.tasks.train.fit_targets import fit_targets_on_batch


@pytest.mark.parametrize("name", anymae.list_models())
def test_preset_smoke(name: str) -> None:
    torch.manual_seed(0)
    model = anymae.create_model(name, **get_entry(name).small)
    x = model.tokenizer.example(2)
    fit_targets_on_batch(model, x)  # codebook targets (CCViT, BEiT v2) fit on this batch; a no-op elsewhere
    out = model(x, seeds=torch.arange(2))
    assert torch.isfinite(out.loss)
    soft = model.mode.name == "soft"  # ROPIM mixes every token instead of hiding some
    assert out.mask.sum() > 0 or soft
    assert out.loss_weight.sum() > 0 or isinstance(model.mode, EncoderOnlyMode)  # MaskAlign: terms only
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    if model.target is not None:  # HOG / ids / teacher features: no picture in the data space, said clearly
        with pytest.raises(ValueError, match="not the input"):
            model.reconstruct(out)
        return
    recon = model.reconstruct(out)
    assert type(recon) is type(x) and recon.shape == x.shape
