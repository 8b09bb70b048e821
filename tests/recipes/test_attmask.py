"""AttMask (anymae/recipes/masking/attmask.py) against crossmodal_and_zoo.md B2 and gkakogeorgiou/attmask's code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from anymae.core.masking import SampleRNG
from anymae.core.masking.scores import SAMPLE_GATE, RevealTopMasking
from anymae.core.registry import create_model
from anymae.core.skeleton.teacher import EMATeacher, FrozenTeacher, Momentum
from anymae.tasks.train.config import OptimConfig
from anymae.tasks.train.run_length import resolve_run_length

B = 4


def _tiny(**kw):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return create_model("attmask_vit_tiny_patch4", depth=1, **kw)


def _plan(model, x, seeds, scores=None):  # type: ignore[no-untyped-def]
    cache: dict = {}
    tokens = model.tokenize(x)
    plan = model.plan_masks(tokens, seeds=seeds, scores=scores, inputs=x, cache=cache)[0].plan
    return plan, cache


def _ratios(model, seeds):  # type: ignore[no-untyped-def]
    """(r, r') the model's masking draws for a batch with these seeds (the draw comes first)."""
    return model.masking.inner.draw_ratios(SampleRNG(len(seeds), seeds=seeds))


def test_hint_hides_the_top_attended_and_reveals_int_show_ratio_of_the_top_ten_percent() -> None:
    """r ~ U(0.1, 0.5): the top int(64·r) by attention are hidden, then int((0.1·r')·64) of the top
    int(64·0.1) = 6 are revealed (uniformly), r' the reference's second get_pred_ratio() draw."""
    model = _tiny()
    x = torch.randn(B, 3, 32, 32)
    attention = torch.rand(B, 64)  # hand-made cls attention
    for first in range(0, 40, B):
        seeds = torch.arange(first, first + B)
        r, r2 = _ratios(model, seeds)
        hide, shown = int(64 * r), int(0.1 * r2 * 64)
        plan, _ = _plan(model, x, seeds, attention)
        assert plan.hide.shape == (B, hide - shown)
        ranked = torch.argsort(attention, dim=1, descending=True)
        for row in range(B):
            top, pool = set(ranked[row, :hide].tolist()), set(ranked[row, :6].tolist())
            hidden = set(plan.hide[row].tolist())
            revealed = top - hidden
            assert hidden <= top and len(revealed) == shown and revealed <= pool


def test_reveal_counts_at_vit_small() -> None:
    """L = 196: r = 0.3 hides int(58.8) = 58 and reveals int(0.03 · 196) = 5 of the top 19; with the
    independent draw r' = 0.2: int(0.02 · 196) = 3."""
    strategy = RevealTopMasking(0.3, reveal=0.1, top=0.1, ratio_var=0.2, reveal_draw="independent")
    assert strategy.counts(196, 0.3) == (58, 5, 19)
    assert strategy.counts(196, 0.45, 0.2) == (88, 3, 19)


def test_the_ratio_is_drawn_once_per_batch_from_its_seeds() -> None:
    model = _tiny()
    seeds = torch.arange(8)
    assert _ratios(model, seeds) == _ratios(model, seeds.clone())  # a function of the seeds
    draws = [_ratios(model, torch.arange(k, k + 8)) for k in range(0, 2400, 8)]
    rs = torch.tensor([d[0] for d in draws], dtype=torch.float64)
    assert rs.min() >= 0.3 - 0.2 and rs.max() <= 0.5 and abs(rs.mean().item() - 0.3) < 0.02
    assert len(set(rs.tolist())) == len(draws)
    assert all(r != r2 for r, r2 in draws)  # independent second draw (the reference)
    same = _tiny(reveal_draw="same")
    assert all(r == r2 for r, r2 in (_ratios(same, torch.arange(k, k + 8)) for k in range(0, 80, 8)))


def test_high_and_low_hide_the_most_and_least_attended() -> None:
    x, attention = torch.randn(B, 3, 32, 32), torch.rand(B, 64)
    seeds = torch.arange(B)
    for mode, descending in (("high", True), ("low", False)):
        model = _tiny(attmask=mode)
        r, _ = _ratios(model, seeds)
        plan, _ = _plan(model, x, seeds, attention)
        ranked = torch.argsort(attention, dim=1, descending=descending)[:, : int(64 * r)]
        assert [set(row.tolist()) for row in plan.hide] == [set(row.tolist()) for row in ranked]


def test_scores_are_the_ema_teachers_last_block_cls_attention_on_the_unmasked_images() -> None:
    model = _tiny(attmask="high")
    x, seeds = torch.randn(B, 3, 32, 32), torch.arange(B)
    teacher = model.teachers["teacher"]
    assert isinstance(teacher, EMATeacher) and teacher.sources == ("tokenizer", "encoder")
    attention = teacher(x, attention_block=teacher.encoder.depth - 1).cls_attention()  # B×64, heads averaged
    plan, cache = _plan(model, x, seeds)
    assert "teacher" in cache  # computed once per pass, shared
    r, _ = _ratios(model, seeds)
    ranked = torch.argsort(attention, dim=1, descending=True)[:, : int(64 * r)]
    assert [set(row.tolist()) for row in plan.hide] == [set(row.tolist()) for row in ranked]


def test_each_image_is_masked_with_probability_masking_prob() -> None:
    """The gate is drawn per sample from its seed; the loss counts the gated images only (iBOT's
    per-image mean, 0 for an unmasked image, mean over the batch)."""
    model = _tiny()
    x, seeds = torch.randn(8, 3, 32, 32), torch.arange(8)
    _, cache = _plan(model, x, seeds)
    gate = cache[SAMPLE_GATE]
    _, again = _plan(model, x[[5, 1]], seeds[[5, 1]])
    assert again[SAMPLE_GATE].tolist() == gate[[5, 1]].tolist()
    out = model(x, seeds=seeds)
    per_image = ((out.pred - out.target) ** 2).mean(-1)  # B×N
    w = out.plan.loss_mask  # the drawn hidden set of every image (an unmasked image has one too)
    expected = torch.stack([(per_image[b] * w[b]).sum() / w[b].sum() * gate[b] for b in range(8)]).mean()
    assert torch.allclose(out.parts["gated_rec"], expected, atol=1e-6)
    assert torch.allclose(out.loss, expected, atol=1e-6)  # the ungated `rec` has weight 0
    on = gate.float().unsqueeze(1)  # B×1
    assert torch.equal(out.loss_weight, w * on) and torch.equal(out.mask, out.plan.mask * on)  # nothing hidden
    rates = torch.cat([_plan(model, x, torch.arange(k, k + 8))[1][SAMPLE_GATE] for k in range(0, 800, 8)])
    assert abs(rates.float().mean().item() - 0.5) < 0.06


def test_teachers_ema_cosine_or_frozen_file() -> None:
    model = _tiny(epochs=3, steps_per_epoch=5)
    assert model.teachers["teacher"].momentum == Momentum(0.996, 1.0, 15)
    frozen = _tiny(teacher="frozen")
    teacher = frozen.teachers["teacher"]
    assert isinstance(teacher, FrozenTeacher)
    assert (teacher.encoder.depth, teacher.encoder.dim, teacher.tokenizer.patch_size) == (1, 128, 4)
    assert not any(p.requires_grad for p in frozen.teachers.parameters())


def test_replace_mode_and_options() -> None:
    model = _tiny()
    assert model.mode.name == "replace" and torch.equal(model.mask_token, torch.zeros_like(model.mask_token))
    assert model.config["base"] == "mae_vit_tiny_patch4" and "mask_ratio" not in model.config
    with pytest.raises(ValueError, match=r"attmask='middle', expected one of \['hint', 'high', 'low'\]"):
        _tiny(attmask="middle")
    with pytest.raises(TypeError, match=r"option\(s\) \['mask_ratio'\] are set by the recipe"):
        _tiny(mask_ratio=0.5)
    with pytest.raises(ValueError, match=r"pred_ratio=0.3 ± pred_ratio_var=0.4 must stay inside \(0, 1\)"):
        _tiny(pred_ratio_var=0.4)


@pytest.mark.parametrize("config", ["attmask_vit_small_in1k", "attmask_tiny_cpu"])
def test_configs_describe_their_run(config: str) -> None:
    """The YAMLs build their model with the run's length; ViT-S: 5338 = floor(1281167 / (60 × 4))
    steps per epoch, drop path 0.1, the hint mode with r ~ U(0.1, 0.5) and masking_prob 0.5."""
    cfg = yaml.safe_load((Path(__file__).parents[2] / "configs" / f"{config}.yaml").read_text())
    paper = config == "attmask_vit_small_in1k"
    images, ranks = (1281167, 4) if paper else (1280, 1)  # ImageNet-1k on 4 GPUs; a small folder on one CPU
    section, _ = resolve_run_length(dict(cfg["model"]), images, OptimConfig(**cfg["optim"]), world_size=ranks)
    with torch.device("meta"):
        model = create_model(section.pop("name"), **section)
    assert model.config["epochs"] == cfg["optim"]["epochs"]
    steps = model.config["epochs"] * model.config["steps_per_epoch"]
    assert model.teachers["teacher"].momentum == Momentum(0.996, 1.0, steps)
    if paper:
        assert model.config["steps_per_epoch"] == 1281167 // (cfg["optim"]["batch_size"] * 4) == 5338
        assert (model.encoder.dim, model.encoder.depth, model.config["drop_path"]) == (384, 12, 0.1)
        assert (model.masking.prob, model.masking.inner.ratio, model.masking.inner.ratio_var) == (0.5, 0.3, 0.2)


def test_an_unmasked_image_is_encoded_whole() -> None:
    """AttMask's reference encodes an image the gate leaves unmasked without any mask token: the
    replace-mode encoder gets that image's own tokens, the masked images get [MASK] vectors."""
    model = _tiny().eval()
    x, seeds = torch.randn(8, 3, 32, 32), torch.arange(8)
    tokens = model.tokenize(x)
    planned = model.plan_masks(tokens, seeds=seeds, inputs=x, cache={})[0]
    on = planned.active
    assert on is not None and on.any() and (~on).any()
    encoded = model.encode(tokens, planned).latent  # B×(P+N)×D
    whole = model.run_encoder(tokens.x, tokens, None).latent  # every image without masking
    torch.testing.assert_close(encoded[~on], whole[~on])
    assert not torch.allclose(encoded[on], whole[on], atol=1e-4)
