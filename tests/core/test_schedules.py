"""Schedules as pure functions of the step, their config form, and the step the model's masks read."""

from __future__ import annotations

import math

import pytest
import torch

from anymae.core.masking import HardTopKMasking
from anymae.core.schedules import Constant, Cosine, Linear, Stages, parse_schedule


def test_values_by_hand() -> None:
    lin = Linear(0.0, 1.0, steps=4, begin=2)
    assert [lin(s) for s in range(8)] == [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    held = Linear(0.0, 1.0, steps=10, every=5)  # epoch-wise: 5 steps per epoch
    assert [held(s) for s in (0, 4, 5, 9, 10, 30)] == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    cos = Cosine(1.0, 0.0, steps=4)
    assert cos(0) == 1.0 and cos(2) == pytest.approx(0.5) and cos(4) == pytest.approx(0.0)
    assert cos(1) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    st = Stages((200, 220), (1.0, 2.0, 3.0))
    assert [st(s) for s in (0, 199, 200, 219, 220, 10_000)] == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert Constant(0.3)(12345) == 0.3


def test_hpm_epoch_ramp_as_a_held_linear_schedule() -> None:
    """HPM: keep_ratio = (epoch + 1) / E · 0.5; with 3 steps per epoch and E = 4 epochs."""
    per_epoch, epochs = 3, 4
    sched = Linear(0.5 / epochs, 0.5, steps=(epochs - 1) * per_epoch, every=per_epoch)
    for step in range(per_epoch * epochs):
        assert sched(step) == pytest.approx((step // per_epoch + 1) / epochs * 0.5)


def test_config_round_trip_and_named_errors() -> None:
    for sched in (Constant(0.1), Linear(0.0, 0.5, 10, 2, 3), Cosine(1.0, 0.0, 7), Stages((5,), (0.0, 1.0))):
        again = parse_schedule(sched.to_dict())
        assert again == sched and [again(s) for s in range(12)] == [sched(s) for s in range(12)]
    assert parse_schedule(0.25) == Constant(0.25)
    with pytest.raises(ValueError, match=r"hard: schedule kind 'ramp' is not one of \['constant', 'cosine'"):
        parse_schedule({"kind": "ramp"}, "hard")
    with pytest.raises(ValueError, match=r"hard: schedule 'linear' has no field\(s\) \['stop'\]"):
        parse_schedule({"kind": "linear", "start": 0, "end": 1, "steps": 3, "stop": 4}, "hard")
    with pytest.raises(ValueError, match="one more value than boundaries"):
        Stages((1, 2), (0.0,))
    with pytest.raises(ValueError, match="expected steps >= 1"):
        Linear(0.0, 1.0, steps=0)


def _model(hard: dict) -> torch.nn.Module:
    import anymae

    model = anymae.create_model(
        "mae_vit_tiny_patch4", img_size=8, depth=1, decoder_depth=1, masking="score_topk",
        masking_params={"hard": hard, "source": "target_std"},
    )
    return model


def test_model_reads_the_step_fresh_or_after_running_and_from_a_checkpoint() -> None:
    """The mask at step s is the same for a model told the step and one that ran s steps (and is
    restored with the state dict), because the schedule is a pure function of the step."""
    torch.manual_seed(0)
    hard = {"kind": "linear", "start": 0.0, "end": 1.0, "steps": 3}
    ran = _model(hard)
    x = torch.randn(2, 3, 8, 8)
    opt = torch.optim.SGD(ran.parameters(), lr=0.0)
    for step in range(1, 3):
        ran(x, seeds=torch.arange(2)).loss.backward()
        opt.step()
        ran.after_step(step)
    told = _model(hard)
    told.after_step(2)
    restored = _model(hard)
    restored.load_state_dict(ran.state_dict())
    assert ran.step == told.step == restored.step == 2
    masks = [m(x, seeds=torch.arange(2)).mask for m in (ran, told, restored)]
    assert torch.equal(masks[0], masks[1]) and torch.equal(masks[0], masks[2])
    strategy = ran.masking
    assert isinstance(strategy, HardTopKMasking) and strategy.forced(4, 2) == int(3 * 2 / 3)
    assert "schedule_step" in ran.state_dict()


def test_plain_models_keep_their_state_dict_keys() -> None:
    import anymae

    model = anymae.create_model("mae_vit_tiny_patch4", img_size=8, depth=1, decoder_depth=1)
    model.after_step(5)
    assert model.step == 5 and "schedule_step" not in model.state_dict()
