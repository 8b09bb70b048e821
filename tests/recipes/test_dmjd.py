"""DMJD (recipes/masking/dmjd.py) against crossmodal_and_zoo.md B3 and mx-mark/DMJD's code: disjoint block masks
(19 of 49 cells per view at r = 0.6), 108-d HOG targets, the loss 0.5·(rec1 + rec2) + θ·visible
distillation (smooth-L1 β 2, the reference's pairing), and the lr rule ×pred/mask = ×1.67."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

import anymae
from anymae.cli import main
from anymae.core.masking import DisjointMasking, gather_tokens
from anymae.core.tokens import Tokens
from anymae.datasets.image.synthetic import write_image_folder
from anymae.tasks.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def _cells(keep: Tensor, w: int = 14) -> set[int]:
    return {(int(t) // w // 2) * (w // 2) + (int(t) % w) // 2 for t in keep}


def test_the_paper_preset_plans_two_disjoint_block_masks_of_19_cells_and_predicts_108_hog_values() -> None:
    model = anymae.create_model("dmjd_vit_base_patch16")
    assert isinstance(model.masking, DisjointMasking) and model.masking.cell == 2 and model.masking.ratio == 0.6
    assert model.num_branches == 2 and len(model.decoders) == 1  # cat([x, x]): one decoder for both views
    assert model.target.dim == 108 and model.decoder.head.out_features == 108  # 2·2 cells · 9 bins · 3 channels
    assert [(t.name, t.weight) for t in model.terms] == [("rec1", 0.5), ("rec2", 0.5), ("vis", 1.0)]
    assert round(model.lr_scale, 2) == 1.67
    tokens = Tokens(x=torch.zeros(3, 196, 1), target=None, grid=(14, 14))
    first, second = (p.plan for p in model.plan_masks(tokens, seeds=torch.arange(3)))
    for a, b in zip(first.keep, second.keep):
        assert len(a) == len(b) == 76 and len(_cells(a)) == len(_cells(b)) == 19
        assert not _cells(a) & _cells(b)


def _smooth_l1(d: Tensor, beta: float = 2.0) -> Tensor:
    a = d.abs()
    return torch.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta)


@pytest.mark.parametrize("order", ["reference", "aligned"])
def test_the_loss_is_half_the_two_reconstructions_plus_the_visible_distillation(order: str) -> None:
    torch.manual_seed(0)
    model = anymae.create_model("dmjd_vit_tiny_patch4", depth=1, decoder_depth=1, vis_order=order).eval()
    x, seeds = torch.randn(2, 3, 32, 32), torch.tensor([3, 4])
    out = model(x, seeds=seeds)
    assert torch.allclose(out.loss, 0.5 * (out.parts["rec1"] + out.parts["rec2"]) + out.parts["vis"], atol=1e-6)
    tokens = model.tokenize(x)
    target = model.targets(tokens, x)  # B×64×27 HOG (one 4-px cell per patch)
    assert target.shape == (2, 64, 27)
    vis = model.terms[2]
    errors = []
    for planned in model.plan_masks(tokens, seeds=seeds, inputs=x):
        latent = model.encode(tokens, planned).latent[:, 1:]  # the visible tokens, keep order
        keep = planned.plan.keep
        index = keep if order == "aligned" else keep.sort(dim=1).values  # DMJD pairs with token order
        errors.append(_smooth_l1(vis.predictor(vis.proj(latent)) - gather_tokens(target, index)))
    assert torch.allclose(out.parts["vis"], torch.cat(errors).mean(), atol=1e-6)


def test_the_engine_scales_blr_by_pred_over_mask_ratio(tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "images", 4, 2, size=32, seed=0)
    out = tmp_path / "run"
    assert main(["pretrain", "--config", str(REPO / "configs" / "dmjd_tiny_cpu.yaml"), f"data.root={images}",
                 f"run.out_dir={out}", "run.max_steps=1", "optim.batch_size=8", "run.num_workers=0",
                 "run.tensorboard=false", "run.precision=fp32"]) == 0  # fmt: skip
    run = load_checkpoint(out / "last.pt")["run"]
    assert run["lr_scale"] == pytest.approx(1 / 0.6) and round(run["lr_scale"], 2) == 1.67
    assert run["peak_lr"] == pytest.approx(6e-4 * 8 / 256 / 0.6)  # blr · images · (1.0 / 0.6) / 256


def test_bad_options_name_themselves() -> None:
    with pytest.raises(ValueError, match="mask_type='grid'"):
        anymae.create_model("dmjd_vit_tiny_patch4", mask_type="grid")
    with pytest.raises(ValueError, match="vis_order"):
        anymae.create_model("dmjd_vit_tiny_patch4", vis_order="sorted")
    with pytest.raises(ValueError, match="pred_ratio"):
        anymae.create_model("dmjd_vit_tiny_patch4", pred_ratio=0.5)
