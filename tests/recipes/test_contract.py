"""Every recipe: presets named after it, a CPU config that pretrains from the CLI with only the
data root given, a checkpoint that rebuilds the model, and an exact resume (EMA teachers,
auxiliary heads, codebooks and schedule state included). DDP: tests/recipes/test_contract_ddp.py.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from anymae import list_models
from anymae.cli import main
from anymae.tasks.train.checkpoint import load_checkpoint
from anymae.tasks.train.pretrain import load_pretrained
from tests.recipes._contract import REPO, make_data, needs_teacher, overrides, recipes, tiny_config

RECIPES = recipes()


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny teacher: `configs/mae_vit_tiny_cpu.yaml` pretrained for 2 steps (an anymae checkpoint)."""
    root = tmp_path_factory.mktemp("teacher")
    data = make_data_for_teacher(root)
    cfg = REPO / "configs" / "mae_vit_tiny_cpu.yaml"
    args = [f"data.root={data}", f"run.out_dir={root / 'run'}", "run.max_steps=2", "optim.batch_size=8",
            "run.num_workers=0", "run.tensorboard=false", "run.precision=fp32"]  # fmt: skip
    assert main(["pretrain", "--config", str(cfg), *args]) == 0
    return root / "run" / "last.pt"


def make_data_for_teacher(root: Path) -> Path:
    from anymae.datasets.image.synthetic import write_image_folder

    return write_image_folder(root / "images", 8, 2, size=40, fmt="png", seed=1)


def _pretrain(recipe: str, data: Path, out: Path, steps: int, teacher: Path | None, *extra: str) -> None:
    torch.set_num_threads(1)
    code = main(["pretrain", "--config", str(tiny_config(recipe)), *overrides(recipe, data, out, steps, teacher),
                 *extra])  # fmt: skip
    assert code == 0, f"{recipe}: anymae pretrain exited with {code}"


def test_recipes_exist() -> None:
    assert RECIPES, "no recipe modules found under anymae/recipes/"


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_has_presets_and_a_tiny_config(recipe: str) -> None:
    assert list_models(f"{recipe}_*"), f"no preset is named after the recipe {recipe!r}"
    assert tiny_config(recipe).is_file(), f"configs/{recipe}_tiny_cpu.yaml is missing"


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_pretrains_from_the_cli_and_resumes_exactly(
    recipe: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    teacher = request.getfixturevalue("teacher_file") if needs_teacher(recipe) else None
    data = make_data(recipe, tmp_path)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _pretrain(recipe, data, straight, 4, teacher)
    _pretrain(recipe, data, resumed, 2, teacher)
    assert load_checkpoint(resumed / "last.pt")["step"] == 2
    _pretrain(recipe, data, resumed, 4, teacher, "run.resume=true")

    with open(straight / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(float(r["loss"])) for r in rows)

    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(resumed / "last.pt")
    assert a["step"] == b["step"] == 4
    assert a["model"].keys() == b["model"].keys()
    differ = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    assert not differ, f"{recipe}: resumed run differs from the straight run in {differ[:8]}"

    model = load_pretrained(straight / "last.pt")  # the checkpoint alone rebuilds the model (keys checked)
    state = model.state_dict()
    assert all(torch.equal(state[k], a["model"][k]) for k in a["model"])
