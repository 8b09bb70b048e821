"""HPM (anymae/recipes/masking/hpm.py) against crossmodal_and_zoo.md B1 and the reference code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml


from anymae.core.registry import create_model
from anymae.core.skeleton.aux_heads import LossPrediction, standardized_mse
from anymae.core.skeleton.teacher import EMATeacher
from anymae.tasks.train.config import OptimConfig
from anymae.tasks.train.run_length import resolve_run_length
from anymae.recipes.masking.hpm import HPMConfig, ema_schedule, hard_schedule


def _tiny(**kw):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return create_model("hpm_vit_tiny_patch4", depth=1, **kw)


def _trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_vit_base_parameter_count_and_forced_hard_counts_per_epoch() -> None:
    """HPM-B: 137.27M trainable = MAE-B 111.66M + 25.61M loss decoder; 800 epochs of 5004 steps,
    147 of 196 hidden, int(147 · (e + 1) / 800 · 0.5) forced at epoch e: 0 at first, 73 at the last."""
    with torch.device("meta"):
        model = create_model("hpm_vit_base_patch16")
    term = model.terms[1]
    assert round(_trainable(model) / 1e6, 2) == 137.27
    assert round(_trainable(term.predictor) / 1e6, 2) == 25.61
    assert round((_trainable(model) - _trainable(term.predictor)) / 1e6, 2) == 111.66
    assert not any(p.requires_grad for p in model.teachers.parameters())  # the EMA copy is not trained
    masking, spe = model.masking, 5004
    assert masking.num_keep(196) == 49
    by_epoch = {0: 0, 10: 1, 399: 36, 798: 73, 799: 73}  # int(147·11/1600) = int(1.01); int(147·400/1600) = 36
    for epoch, count in by_epoch.items():
        assert masking.forced(196, epoch * spe) == masking.forced(196, epoch * spe + spe - 1) == count
    assert masking.forced(196, 800 * spe + 7) == 73  # past the schedule: the last value


@pytest.mark.parametrize("epochs,hidden", [(800, 147), (12, 48), (9, 36), (7, 1176), (200, 147), (1600, 147)])
def test_forced_counts_equal_the_references_float_formula(epochs: int, hidden: int) -> None:
    """`int(Nm · float((epoch + 1) / E) * 0.5)` at every epoch (a linear ramp computed another way is
    off by one at some epochs, e.g. E = 12, Nm = 48, epoch 5)."""
    spe = 3
    hard = hard_schedule(epochs, spe)
    for e in range(epochs):
        ref = int(hidden * (float((e + 1) / epochs) * 0.5))
        assert int(hidden * hard(e * spe)) == int(hidden * hard(e * spe + spe - 1)) == ref
    assert hard_schedule(epochs, spe, guide=False)(0) == 0.5


def test_ema_decay_ramps_per_epoch_for_100_epochs() -> None:
    """`decay = 0.999 + epoch / 100 · (0.9999 − 0.999)` for epoch < 100, then 0.9999 (engine_pretrain.py)."""
    cfg = HPMConfig(steps_per_epoch=7)
    decay = ema_schedule(cfg)
    for epoch in (0, 1, 37, 99):
        ref = 0.999 + epoch / 100 * (0.9999 - 0.999)
        assert decay(epoch * 7) == decay(epoch * 7 + 6) == ref
    assert decay(100 * 7) == decay(10**6) == 0.9999


def test_ema_teacher_updates_after_a_step_and_is_saved_and_restored() -> None:
    model = _tiny()
    teacher = model.teachers["ema"]
    assert isinstance(teacher, EMATeacher)
    assert teacher.sources == ("tokenizer", "encoder", "decoder", "terms.1.predictor")
    before = teacher.part("terms.1.predictor").head.weight.clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(torch.randn(4, 3, 32, 32), seeds=torch.arange(4)).loss.backward()
    opt.step()
    model.after_step(1)  # m = 0.999 at step 0
    student = model.terms[1].predictor.head.weight.detach()
    assert not torch.equal(student, before)
    assert torch.allclose(teacher.part("terms.1.predictor").head.weight, before * 0.999 + 0.001 * student)
    state = model.state_dict()
    assert "teachers.ema.parts.terms__1__predictor.head.weight" in state and "schedule_step" in state
    fresh = _tiny()
    fresh.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    a = model.terms[1].predicted_losses(model, x)
    assert torch.equal(a, fresh.terms[1].predicted_losses(fresh, x)) and a.shape == (2, 64)
    assert fresh.step == 1


def test_the_teacher_predicts_on_the_full_image_and_its_hardest_are_hidden() -> None:
    """At build time the EMA copy equals the student: its predictions are the student's predictor on
    the decoder input of a pass with every token visible. Late in the run the top int(48 · 0.5) = 24
    predicted-hardest tokens are hidden (the rest random); with 200 epochs int(48 · 0.0025) = 0 at step 0."""
    model = _tiny(epochs=2, steps_per_epoch=3).eval()
    term: LossPrediction = model.terms[1]
    x = torch.randn(3, 3, 32, 32)
    tokens = model.tokenize(x)
    every = torch.arange(64).expand(3, 64)
    enc = model.run_encoder(tokens.x, tokens, None)
    student = term.predict(term.predictor, model.decoder, enc.latent, enc.num_prefix, every, every[:, :0], tokens)
    predicted = term.predicted_losses(model, x, tokens)
    assert torch.allclose(predicted, student, atol=1e-6)
    assert model.masking.forced(64, 0) == 12 and model.masking.forced(64, 3) == 24  # int(48 · 1/2 · 0.5), int(48 · 0.5)
    model.after_step(3)  # epoch 1 of 2 (the EMA update moves the copy by float noise only: it equals the student)
    predicted = term.predicted_losses(model, x, tokens)
    cache: dict = {}
    plan = model.plan_masks(tokens, seeds=torch.arange(3), inputs=x, cache=cache)[0].plan
    assert torch.equal(cache["ema.predicted_loss"], predicted)
    top = torch.argsort(predicted, dim=1, descending=True)[:, :24]
    for row in range(3):
        assert set(top[row].tolist()) <= set(plan.hide[row].tolist())
    assert create_model("hpm_vit_tiny_patch4", depth=1, epochs=200).masking.forced(64, 0) == 0


def test_options_are_real() -> None:
    """The reference's store_true-with-default-True flags can be turned off here."""
    plain = _tiny(learning_loss=False)
    assert len(plain.teachers) == 0 and [t.name for t in plain.terms] == ["rec"]
    assert type(plain.masking).__name__ == "RandomMasking"
    mse = _tiny(relative=False)
    assert mse.terms[1].relative is False
    out = mse(torch.randn(2, 3, 32, 32), seeds=torch.arange(2))
    assert set(out.parts) == {"rec", "loss_pred"} and out.parts["loss_pred"] > 0
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['bogus'\].*recipe options: base, learning_loss"):
        _tiny(bogus=1)
    with pytest.raises(TypeError, match=r"option\(s\) \['masking'\] are set by the recipe"):
        _tiny(masking="block")
    with pytest.raises(ValueError, match=r"steps_per_epoch=0, expected an integer >= 1"):
        _tiny(steps_per_epoch=0)


def test_mse_option_is_hpms_standardized_mse() -> None:
    model = _tiny(relative=False)
    x, seeds = torch.randn(2, 3, 32, 32), torch.arange(2)
    out = model(x, seeds=seeds)
    term = model.terms[1]
    tokens = model.tokenize(x)
    planned = model.plan_masks(tokens, seeds=seeds, inputs=x)[0]
    enc = model.encode(tokens, planned)
    dec = model.decode(tokens, planned, enc)
    nv = planned.plan.keep.shape[1]
    pred = term.predict(term.predictor, model.decoder, enc.latent, enc.num_prefix, planned.plan.keep, planned.query,
                        tokens)[:, nv:]
    target = (dec.pred - torch.gather(model.targets(tokens), 1, planned.query.unsqueeze(-1).expand(-1, -1, 48)))
    assert torch.allclose(out.parts["loss_pred"], standardized_mse(pred, target.pow(2).mean(-1)), atol=1e-6)


def test_hpm_on_video_tubelets_and_audio_spectrograms() -> None:
    """Any base whose decoder is a global-attention MAEDecoder: video tubelets, spectrograms with the
    global decoder; Audio-MAE's windowed local decoder is refused by name."""
    torch.manual_seed(0)
    video = create_model("hpm_vit_tiny_patch4", base="videomae_vit_tiny_patch8", depth=1, decoder_depth=1)
    assert video.config["base"] == "videomae_vit_tiny_patch8" and "masking" not in video.config
    clip = video.tokenizer.example(2)
    out = video(clip, seeds=torch.arange(2))
    out.loss.backward()
    assert set(out.parts) == {"rec", "loss_pred"} and out.plan.hide.shape == (2, 48)
    assert video.terms[1].predicted_losses(video, clip).shape == (2, 64)
    rebuilt = create_model("hpm_vit_tiny_patch4", **{k: v for k, v in video.config.items() if k != "name"})
    assert rebuilt.state_dict().keys() == video.state_dict().keys()
    audio = create_model("hpm_vit_tiny_patch4", base="audiomae_tiny_patch16", decoder="global", depth=1,
                         decoder_depth=1)
    spec = audio.tokenizer.example(2)
    assert torch.isfinite(audio(spec, seeds=torch.arange(2)).loss)
    with pytest.raises(TypeError, match="global-attention MAEDecoder"):
        create_model("hpm_vit_tiny_patch4", base="audiomae_tiny_patch16", depth=1)


@pytest.mark.parametrize("config", ["hpm_vit_base_in1k", "hpm_tiny_cpu"])
def test_configs_describe_their_run(config: str) -> None:
    """The YAMLs build their model, and the model's schedule length is the run's (`model.epochs` =
    `optim.epochs`); the paper's: 5004 steps = floor(1281167 / (32 × 8)), mask 0.75, no norm_pix."""
    cfg = yaml.safe_load((Path(__file__).parents[2] / "configs" / f"{config}.yaml").read_text())
    paper = config == "hpm_vit_base_in1k"
    images, ranks = (1281167, 8) if paper else (1280, 1)  # ImageNet-1k on 8 GPUs; a small folder on one CPU
    optim = OptimConfig(**cfg["optim"])
    section, _ = resolve_run_length(dict(cfg["model"]), images, optim, world_size=ranks)  # `auto` options
    with torch.device("meta"):
        model = create_model(section.pop("name"), **section)
    assert model.config["epochs"] == cfg["optim"]["epochs"]
    if paper:
        assert model.config["steps_per_epoch"] == 1281167 // (cfg["optim"]["batch_size"] * 8) == 5004
        assert (cfg["optim"]["blr"], cfg["optim"]["warmup_epochs"], model.config["mask_ratio"]) == (1.5e-4, 40, 0.75)
        assert model.target_norm is None and model.terms[1].relative
