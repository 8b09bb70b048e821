"""ROPIM: the soft masking mode (every token encoded after a count-sketch mix) and its complement-projected
L1 loss; the paper configs of ROPIM and SimMIM. The sketch itself: tests/core/test_masking_sketch.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from einops import rearrange

from anymae import create_model
from anymae.core.config import load_config
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.skeleton.modes import SoftMode
from anymae.modalities.image import unpatchify
from anymae.tasks.train.pretrain import PretrainConfig

REPO = Path(__file__).resolve().parents[2]


def _tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("ropim_vit_tiny_patch4", depth=1, drop_path=0.0).eval()


def test_encoder_sees_the_sketched_tokens() -> None:
    model = _tiny()
    seeds = torch.tensor([7, 8])
    seen: list[torch.Tensor] = []
    run = model.run_encoder

    def spy(x: torch.Tensor, tokens, index, **kw):  # type: ignore[no-untyped-def]
        seen.append(x)
        return run(x, tokens, index, **kw)

    model.run_encoder = spy  # type: ignore[method-assign]
    images = torch.randn(2, 3, 32, 32)
    model(images, seeds=seeds)
    mode: SoftMode = model.mode
    mix = mode.projectors(2, 64, seeds=seeds, generator=None, device=torch.device("cpu"))
    tokens = model.tokenizer(images)
    torch.testing.assert_close(seen[0], mix @ tokens.x)


def test_loss_is_the_l1_of_the_complement_projected_residual() -> None:
    """ROPIM's loss by hand: residual image -> rev. pixel shuffle (B×3p²×L) @ (I - P) -> |·| mean."""
    model = _tiny()
    seeds, images = torch.tensor([1, 2]), torch.randn(2, 3, 32, 32)
    out = model(images, seeds=seeds)
    mix = model.mode.projectors(2, 64, seeds=seeds, generator=None, device=torch.device("cpu"))
    tokens = model.tokenizer(images)
    latent = model.run_encoder(mix @ tokens.x, tokens, None).latent[:, 1:]
    raw = model.decoder(latent, tokens)  # B×N×48, the head's own prediction
    rec = unpatchify(raw, 4, (8, 8), 3)  # B×3×32×32
    residual = rearrange(images - rec, "b c (h p) (w q) -> b (c p q) (h w)", p=4, q=4)  # B×48×64
    hand = (residual @ (torch.eye(64) - mix)).abs().mean()
    torch.testing.assert_close(out.loss, hand)
    assert out.loss_weight.sum().item() == 2 * 64 and out.mask.sum().item() == 0  # every token scored, none hidden
    torch.testing.assert_close(out.pred - out.target, (torch.eye(64) - mix) @ (raw - out.target))


def test_vit_b_parameter_count() -> None:
    """The reference's ROPIM ViT-B has 86,255,952 trainable parameters: BEiT-style attention with q and v
    biases only, and a shared relative position bias table of 27² + 3 rows × 12 heads = 8,784. Ours:
    timm attention (k bias too, 12 · 768) and no relative bias (fixed sin-cos positions)."""
    with torch.device("meta"):
        model = create_model("ropim_vit_base_patch16")
    assert sum(p.numel() for p in model.parameters()) == 86_255_952 - 8_784 + 12 * 768


def test_bad_compositions_are_refused() -> None:
    with pytest.raises(ValueError, match="sketch_ratio"):
        create_model("ropim_vit_tiny_patch4", sketch_ratio=1.0)
    with pytest.raises(TypeError, match="sketch"):
        create_model("ropim_vit_tiny_patch4", sketch=0.1)
    model = create_model("ropim_vit_tiny_patch4", depth=1)
    assert model.lr_scale == 0.5  # ROPIM's bs/512 rule
    masked = MaskedAutoencoder(model.tokenizer, model.encoder, model.decoder, make_masking("random", 0.5),
                               mode=SoftMode())  # a branch that draws a mask: refused, soft mode hides nothing
    with pytest.raises(ValueError, match="whole"):
        masked(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize(("name", "facts"), [
    ("ropim_vit_base_in1k", {"epochs": 300, "warmup_epochs": 5, "blr": 1.5e-4, "betas": (0.9, 0.95),
                             "clip_grad": 5.0}),
    ("simmim_vit_base_in1k", {"epochs": 800, "warmup_epochs": 10, "blr": 5e-5, "betas": (0.9, 0.999),
                              "clip_grad": 5.0}),
])
def test_paper_configs_carry_the_reference_defaults(name: str, facts: dict) -> None:
    cfg = load_config(PretrainConfig, str(REPO / "configs" / f"{name}.yaml"), [])
    assert {k: getattr(cfg.optim, k) for k in facts} == facts
    assert tuple(cfg.data["scale"]) == (0.67, 1.0) and cfg.model["drop_path"] == 0.1
    if name.startswith("simmim"):
        assert (cfg.model["mask_ratio"], cfg.model["masking_params"], cfg.model["loss"]) == (0.6, {"cell": 2}, "l1")
