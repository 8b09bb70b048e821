"""SimMIM-style replace masking on the image encoder: cells, replaced inputs, linear head, L1 on hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymae
from anymae.cli import main
from anymae.core.masking import make_masking, make_plan
from anymae.core.skeleton import LinearHead, ReplaceMode
from anymae.datasets.image.synthetic import write_image_folder

REPO = Path(__file__).resolve().parents[2]


def test_cells_hide_whole_cells_with_simmims_ceil() -> None:
    """224 px, patch 16, 32-px cells: 7×7 cells, ceil(49 · 0.6) = 30 hidden = 120 of 196 tokens."""
    strategy = make_masking("random_cells", 0.6, cell=2)
    assert strategy.num_keep(196, (14, 14)) == 76
    plan = make_plan(strategy, (14, 14), 3, device="cpu", seeds=torch.arange(3))
    cells = plan.mask.view(3, 7, 2, 7, 2)  # B×cell row×2×cell col×2
    assert torch.all(cells.amin(dim=(2, 4)) == cells.amax(dim=(2, 4)))  # every cell all hidden or all kept
    assert torch.equal(cells[:, :, 0, :, 0].sum(dim=(1, 2)), torch.full((3,), 30.0))
    with pytest.raises(ValueError, match=r"CellMasking needs a 2-D token grid divisible by cell=2, got grid \(5, 4\)"):
        strategy.num_keep(20, (5, 4))


def test_tiny_model_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("simmim_vit_tiny_patch4", img_size=16, depth=1)
    assert isinstance(model.mode, ReplaceMode) and isinstance(model.decoder, LinearHead)
    assert isinstance(model.encoder_to_decoder, torch.nn.Identity) and model.mask_token.abs().sum() > 0
    x = torch.randn(2, 3, 16, 16)
    out = model(x, seeds=torch.tensor([4, 5]))
    mask = out.mask  # B×16: 4 cells of 2×2 tokens, ceil(4 · 0.6) = 3 hidden
    assert torch.equal(mask.sum(1), torch.tensor([12.0, 12.0])) and torch.equal(out.loss_weight, mask)
    tokens = model.tokenizer(x)
    replaced = torch.where(mask.bool().unsqueeze(-1), model.mask_token.expand_as(tokens.x), tokens.x)  # B×N×D
    latent = model.run_encoder(replaced, tokens, None).latent[:, 1:]  # every token, cls dropped
    pred = model.decoder.proj(latent)  # B×N×48
    assert torch.allclose(out.pred, pred, atol=1e-6)
    l1 = (pred - tokens.target).abs().mean(-1)  # B×N
    assert out.loss.item() == pytest.approx(((l1 * mask).sum() / mask.sum()).item(), rel=1e-5)
    assert torch.equal(out.target, tokens.target)  # SimMIM: raw (dataset-normalized) pixels


def test_paper_preset_sizes() -> None:
    with torch.device("meta"):
        model = anymae.create_model("simmim_vit_base_patch16")
    assert model.tokenizer.grid == (14, 14) and model.masking.num_keep(196, (14, 14)) == 76
    encoder = sum(p.numel() for p in (*model.tokenizer.parameters(), *model.encoder.parameters()))
    assert encoder == 85_647_360  # the ViT-B/16 encoder, as MAE's
    assert sum(p.numel() for p in model.decoder.parameters()) == 768 * 768 + 768  # 16²·3 = 768 outputs
    assert model.loss_name == "l1"


@pytest.mark.timeout(300)
def test_tiny_config_pretrains_from_the_cli(tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "images", 4, 2, size=40, fmt="png", seed=0)
    argv = ["pretrain", "--config", str(REPO / "configs/simmim_tiny_cpu.yaml"), f"data.root={images}",
            "run.max_steps=2", "optim.batch_size=4", "run.num_workers=0", f"run.out_dir={tmp_path / 'run'}"]
    assert main(argv) == 0
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 2
