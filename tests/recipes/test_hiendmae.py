"""Hi-End-MAE: sizes and the parameter count of the reference, its loss, its options, and CLI pretraining on volumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import anymae
from anymae.cli import main
from anymae.core.masking import gather_tokens
from anymae.datasets.volume.synthetic import write_volume_folder
from anymae.recipes.decoders.hiendmae import build_hiendmae
from anymae.tasks.train.pretrain import load_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")


def _count(model: torch.nn.Module, *prefixes: str) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and n.startswith(prefixes or ("",)))


def test_the_released_p12_model_has_366_92m_parameters() -> None:
    with torch.device("meta"):
        model = anymae.create_model("hiendmae_vit_large_patch12")
    # crossmodal_and_zoo.md B8 (computed from networks/vit.py): 366.92M = encoder 342.64M + decoder 24.28M
    assert round(_count(model) / 1e6, 2) == 366.92
    assert round(_count(model, "tokenizer.", "encoder.") / 1e6, 2) == 342.64
    assert round(_count(model, "decoder.") / 1e6, 2) == 24.28
    assert model.tokenizer.grid == (8, 8, 8) and model.decoder.cross_layers == (9, 6, 3)
    assert len(model.decoder.blocks) == 2 and model.decoder.cfg.dim == 528


def test_the_base_p16_preset_has_the_reference_geometry() -> None:
    with torch.device("meta"):
        model = anymae.create_model("hiendmae_vit_base_patch16")
    assert model.tokenizer.grid == (6, 6, 6) and model.encoder.dim == 768 and model.decoder.cfg.dim == 384
    assert model.decoder.cfg.num_heads == 12 and len(model.decoder.cross_blocks) == 3


def test_the_loss_is_mse_of_hidden_patches_against_their_layer_norm() -> None:
    torch.manual_seed(0)
    model = build_hiendmae("hiendmae_vit_tiny_patch4", depth=4, cross_layers=[3, 2, 1])
    x = model.tokenizer.example(2)
    out = model(x, seeds=torch.arange(2))
    assert out.plan.keep.shape == (2, int(64 * (1 - 0.75)))  # argsort, int(L · 0.25) visible
    hide = out.plan.hide
    target = F.layer_norm(gather_tokens(out.tokens.target, hide), (64,), eps=1e-6)  # patch_norm, no affine
    pred = gather_tokens(out.pred, hide)
    assert torch.allclose(out.loss, F.mse_loss(pred, target), atol=1e-6)  # nn.MSELoss over the hidden patches


def test_options_are_checked_and_saved() -> None:
    words = r"cross_layers=\[9, 6, 3\] must be .* \[0, 7\] \(depth=8\); out of range: \[9\]"
    with pytest.raises(ValueError, match=words):
        build_hiendmae("hiendmae_vit_tiny_patch4", cross_layers=[9, 6, 3])
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['skip_layers'\]"):
        build_hiendmae("hiendmae_vit_tiny_patch4", skip_layers=[1])
    model = build_hiendmae("hiendmae_vit_tiny_patch4", context_norm=True)
    assert model.config["cross_layers"] == [6, 4, 2] and model.config["context_norm"] is True


def test_cli_pretraining_on_a_folder_of_volumes_and_rebuilding_from_the_checkpoint(tmp_path: Path) -> None:
    root = write_volume_folder(tmp_path / "vols", 3, 2, size=18, fmt="npy")
    write_volume_folder(root, 1, 2, size=20, fmt="nii.gz", seed=1)
    config = Path(__file__).resolve().parents[2] / "configs" / "hiendmae_tiny_cpu.yaml"
    args = ["pretrain", "--config", str(config), f"data.root={root}", f"run.out_dir={tmp_path / 'run'}",
            "run.max_steps=2", "run.num_workers=0", "run.tensorboard=false", "optim.batch_size=4"]
    assert main(args) == 0
    model = load_pretrained(tmp_path / "run" / "last.pt")
    assert model.config["name"] == "hiendmae_vit_tiny_patch4" and model.decoder.cross_layers == (6, 4, 2)
    out = tmp_path / "recon.png"
    assert main(["reconstruct", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--input", str(root / "class_1"),
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 0
