"""`run.compile`: the engine's step under torch.compile, on CPU with a backend that generates no code.

"aot_eager" runs the same front end as the default "inductor" backend (Dynamo's capture of the
forward, AOTAutograd's joint forward + backward graph) and then executes the captured graphs
eagerly, so a CPU test checks that the model's step traces, trains to the same numbers and saves
the same checkpoint keys, without a C++ compiler or minutes of code generation. Inductor itself
has run on CPU only in benchmarks (README "Speed"), never on a GPU.
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo

from anymae.datasets.seeding import SeededSamples
from anymae.tasks.train.config import OptimConfig, RunConfig
from anymae.tasks.train.engine import pretrain_objective, train
from anymae.tasks.train.logging import read_metrics
from anymae.tasks.train.steps import compile_model
from tests.tasks.train._train_script import NoisyPictures, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_dynamo")


@pytest.fixture()
def fresh_dynamo():
    """Dynamo's caches emptied after the test, so no compiled code outlives it."""
    yield
    torch._dynamo.reset()


def _run(tmp_path, name: str, compile_setting: bool | str) -> tuple[list[float], dict[str, torch.Tensor]]:
    optim_cfg = OptimConfig(blr=1e-2, epochs=2, warmup_epochs=1, batch_size=8)
    run_cfg = RunConfig(out_dir=str(tmp_path / name), max_steps=6, log_every=1, device="cpu", num_workers=0,
                        tensorboard=False, compile=compile_setting)  # fmt: skip
    train(tiny_model(), SeededSamples(NoisyPictures(24), 0), pretrain_objective, optim_cfg, run_cfg, full_config={})
    losses = [row["loss"] for row in read_metrics(tmp_path / name / "metrics.csv")]
    state = torch.load(tmp_path / name / "last.pt", map_location="cpu", weights_only=True)["model"]
    return losses, state


def test_a_compiled_step_trains_like_the_eager_one_and_saves_the_same_keys(tmp_path, capsys):
    eager_losses, eager_state = _run(tmp_path, "eager", False)
    compiled_losses, compiled_state = _run(tmp_path, "compiled", "aot_eager")
    assert "compile: torch.compile(backend=aot_eager) of the model's step (run.compile)" in capsys.readouterr().err
    assert len(compiled_losses) == 6
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-5, abs=1e-6)
    assert list(compiled_state) == list(eager_state)  # in place: no "_orig_mod." prefix
    for key, value in eager_state.items():
        torch.testing.assert_close(compiled_state[key], value, rtol=1e-4, atol=1e-5)


def test_compile_settings():
    model = torch.nn.Linear(2, 2)
    assert compile_model(model, False) is None and "_compiled_call_impl" not in model.__dict__
    assert "backend=inductor" in str(compile_model(model, True))  # true: the default backend, in place
    for bad in ("fast", 1.5):
        with pytest.raises(ValueError, match="compile"):
            RunConfig(out_dir="x", compile=bad)
