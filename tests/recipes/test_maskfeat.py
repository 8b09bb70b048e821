"""MaskFeat: HOG targets of the model's input in MaskFeat's layout (108 values per 16-px patch), block
masking at 0.4 (78 of 196), the encoder sees every patch, and the loss is the MSE over masked patches."""

from __future__ import annotations

import torch
from einops import rearrange

import anymae
from anymae.core.masking import make_plan
from anymae.core.targets.hog import HOGTargets, hog_cells


def test_paper_preset_targets_and_mask_count() -> None:
    with torch.device("meta"):
        m = anymae.create_model("maskfeat_vit_base_patch16")
    assert isinstance(m.target, HOGTargets) and m.target.dim == 108  # 2·2 cells × 9 bins × 3 channels
    assert m.decoder.out_dim == 108 and m.mode.name == "replace"
    plan = make_plan(m.masking, (14, 14), 2, device="cpu", seeds=torch.tensor([0, 1]))
    assert plan.hide.shape[1] == 78  # int(196 · 0.4)


def test_targets_are_hog_of_the_input_and_loss_is_masked_mse() -> None:
    torch.manual_seed(0)
    m = anymae.create_model("maskfeat_vit_base_patch16", img_size=32, depth=1, mask_ratio=0.5, min_block=1)
    x = torch.randn(2, 3, 32, 32)
    out = m(x, seeds=torch.tensor([3, 4]))
    cells = hog_cells(x, bins=9, cell=8, norm="l2")  # B×3×9×4×4 of the normalized input, as MaskFeat
    expected = rearrange(cells, "b c d (h i) (w j) -> b (h w) (c d i j)", i=2, j=2)  # per patch: c, bin, cells
    assert torch.allclose(out.target, expected)
    w = out.mask  # 1 = hidden; the loss counts hidden patches only
    assert w.sum(1).tolist() == [2.0, 2.0]
    mse = ((out.pred - out.target) ** 2).mean(-1)
    assert torch.allclose(out.loss, (mse * w).sum() / w.sum())
    # replace mode: every patch is encoded, so a visible patch's prediction exists (non-zero)
    assert (out.pred[w == 0].abs().sum(-1) > 0).all()
