"""CCViT: ids = nearest k-means centroid of the raw [0, 1] patch pixels in CCViT's channel-first layout
(brute force), 75 of 196 patches masked and 20 visible ones replaced by their centroid's pixels, and
loss = CE on ids + MSE on norm_pix pixels, both over masked ∪ replaced patches."""

from __future__ import annotations

import torch
from einops import rearrange

import anymae
from anymae.core.masking import make_plan
from anymae.modalities.image import IMAGENET_MEAN, IMAGENET_STD


def test_paper_preset_sizes() -> None:
    with torch.device("meta"):
        m = anymae.create_model("ccvit_vit_base_patch16")
    assert m.target.dim == 8192 and m.target.token_dim == 768 and m.decoder.out_dim == 8192
    assert m.encoder.blocks[0].ls1.gamma.shape == (768,)  # layer scale (0.1 at init)
    pix = m.terms[1]
    assert pix.name == "pix" and pix.taps == (8, 11) and len(pix.blocks) == 2 and pix.head.out_features == 768
    plan = make_plan(m.masking, (14, 14), 1, device="cpu", seeds=torch.tensor([0]))
    assert plan.hide.shape[1] == 75
    assert int(m.mode.centroid_ratio * 196) == 20


def test_ids_and_dual_loss_by_hand() -> None:
    torch.manual_seed(0)
    m = anymae.create_model("ccvit_vit_tiny_patch4", img_size=16, depth=2, num_codes=8, early_layers=1,
                            mask_ratio=0.5, min_block=4)  # fmt: skip
    g = torch.Generator().manual_seed(1)
    m.target.codebook.set_centroids(torch.rand(8, 48, generator=g), "test")
    pixels = torch.rand(2, 3, 16, 16, generator=g)  # [0, 1] images
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (pixels - mean) / std
    seen: dict[str, torch.Tensor] = {}
    term = m.terms[1]
    inner = term.loss_fn

    def spy(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        seen.update(pred=pred, target=target, weight=weight)
        return inner(pred, target, weight)

    term.loss_fn = spy
    out = m(x, seeds=torch.tensor([5, 6]))
    patches = rearrange(pixels, "b c (h p) (w q) -> b (h w) (c p q)", p=4, q=4)  # CCViT's layout
    brute = torch.cdist(patches, m.target.codebook.centroids.unsqueeze(0)).argmin(-1)  # B×N
    assert torch.equal(out.target.squeeze(-1), brute)
    replaced = (out.loss_weight - out.mask).bool()  # scored but visible: the centroid-replaced patches
    assert replaced.sum(1).tolist() == [1, 1] and bool((out.loss_weight >= out.mask).all())
    w = out.loss_weight.bool()
    ce = torch.nn.functional.cross_entropy(out.pred[w], brute[w])
    assert torch.allclose(out.parts["rec"], ce, atol=1e-6)
    assert torch.allclose(out.loss, out.parts["rec"] + out.parts["pix"])
    # the pixel term: norm_pix of the [0, 1] patches (unbiased variance, eps 1e-6), MSE on the same patches
    raw = rearrange(pixels, "b c (h p) (w q) -> b (h w) (p q c)", p=4, q=4)
    norm = (raw - raw.mean(-1, keepdim=True)) / (raw.var(-1, keepdim=True) + 1e-6).sqrt()
    assert torch.allclose(seen["target"], norm, atol=1e-4)
    assert torch.equal(seen["weight"], out.loss_weight)
    mse = ((seen["pred"] - norm) ** 2).mean(-1)
    assert torch.allclose(out.parts["pix"], (mse * out.loss_weight).sum() / out.loss_weight.sum(), atol=1e-5)


def test_replaced_patches_enter_the_encoder_as_their_centroid_pixels() -> None:
    torch.manual_seed(0)
    m = anymae.create_model("ccvit_vit_tiny_patch4", img_size=16, depth=1, num_codes=8, early_layers=1,
                            mask_ratio=0.5, min_block=4, centroid_ratio=0.2)  # fmt: skip
    g = torch.Generator().manual_seed(2)
    m.target.codebook.set_centroids(torch.rand(8, 48, generator=g), "test")
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixels = torch.rand(2, 3, 16, 16, generator=g)
    x = (pixels - mean) / std
    seen: dict[str, torch.Tensor] = {}
    run = m.run_encoder
    m.run_encoder = lambda inp, *a, **k: (seen.setdefault("x", inp), run(inp, *a, **k))[1]  # type: ignore[method-assign]
    out = m(x, seeds=torch.tensor([7, 8]))
    tokens = m.tokenizer(x)
    replaced = (out.loss_weight - out.mask).bool()  # B×N
    assert replaced.sum(1).tolist() == [3, 3]  # int(16 · 0.2)
    untouched = (out.loss_weight == 0)
    assert torch.equal(seen["x"][untouched], tokens.x[untouched])  # other visible patches as they were
    # by hand: paste each replaced patch's centroid (c, p, q pixels in [0, 1]) into the image, embed
    patches = rearrange(pixels, "b c (h p) (w q) -> b (h w) (c p q)", p=4, q=4)
    ids = torch.cdist(patches, m.target.codebook.centroids.unsqueeze(0)).argmin(-1)
    pasted = patches.clone()
    pasted[replaced] = m.target.codebook.centroids[ids[replaced]]
    image = rearrange(pasted, "b (h w) (c p q) -> b c (h p) (w q)", h=4, p=4, q=4, c=3)
    expected = m.tokenizer((image - mean) / std).x
    assert torch.allclose(seen["x"][replaced], expected[replaced], atol=1e-5)
