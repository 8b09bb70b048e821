"""`teacher.checkpoint=PATH`: frozen teachers filled from files, clear errors for a missing or
mismatched file or section, and the CLI round trip (a tiny teacher pretrained for 2 steps, then every
teacher recipe distilled from it; the student's checkpoint rebuilds without the file)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import anymae
from anymae.cli import main
from anymae.core.config import ConfigError
from anymae.recipes.targets._distill import image_teacher
from anymae.tasks.train.checkpoint import CheckpointError, load_checkpoint
from anymae.tasks.train.pretrain import load_pretrained
from anymae.tasks.train.teacher_setup import attach_teacher_files

REPO = Path(__file__).resolve().parents[3]
TEACHER_RECIPES = ("dmae", "mrmae", "maskalign")
SMALL = {"img_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2, "decoder_embed_dim": 32, "decoder_depth": 1,
         "decoder_num_heads": 2, "student_layer": 1, "teacher_layer": 1}


def _save(model: torch.nn.Module, path: Path) -> Path:
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An anymae-style checkpoint of the tiny MAE (the tiny recipes' teacher architecture) at 16 px."""
    torch.manual_seed(1)
    return _save(anymae.create_model("mae_vit_tiny_patch4", img_size=16), tmp_path_factory.mktemp("t") / "mae.pt")


def test_a_file_fills_the_frozen_teacher(teacher_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = anymae.create_model("dmae_vit_tiny_patch4", **SMALL)
    assert attach_teacher_files(model, {"checkpoint": str(teacher_file)}) == {"teacher": "anymae checkpoint"}
    source = torch.load(teacher_file, weights_only=True)["model"]
    own = model.teachers["teacher"].state_dict()
    assert own.keys() == {k for k in source if k.startswith(("tokenizer.", "encoder."))}
    assert all(torch.equal(own[k], source[k]) for k in own)
    printed = capsys.readouterr().out
    assert f"teacher 'teacher': loaded anymae checkpoint '{teacher_file}'" in printed
    assert "depth 6, width 128" in printed


def test_missing_section_names_the_option_and_the_architecture() -> None:
    model = anymae.create_model("dmae_vit_tiny_patch4", **SMALL)
    with pytest.raises(ConfigError, match=r"teacher\.checkpoint=PATH.*depth 6, width 128, 4 heads, patch 4"):
        attach_teacher_files(model, {})
    with pytest.raises(ConfigError, match=r"teacher\.checkpoint"):
        attach_teacher_files(model, {"checkpoint": None})


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    model = anymae.create_model("dmae_vit_tiny_patch4", **SMALL)
    with pytest.raises(FileNotFoundError, match=r"nope\.pt' does not exist.*depth 6, width 128"):
        attach_teacher_files(model, {"checkpoint": str(tmp_path / "nope.pt")})


def test_mismatched_file_names_the_file_and_shapes(tmp_path: Path) -> None:
    wrong = _save(anymae.create_model("mae_vit_tiny_patch4", img_size=16, embed_dim=64, depth=2), tmp_path / "w.pt")
    model = anymae.create_model("dmae_vit_tiny_patch4", **SMALL)
    with pytest.raises(CheckpointError, match=r"w\.pt.*expected depth 6, width 128, found depth 2, width 64.*"
                                              r"expected \[1, 1, 128\], found \[1, 1, 64\]"):
        attach_teacher_files(model, {"checkpoint": str(wrong)})


def test_a_file_for_a_model_without_a_frozen_teacher_is_refused(teacher_file: Path) -> None:
    model = anymae.create_model("cae_vit_tiny_patch4", img_size=16, depth=1)
    assert attach_teacher_files(model, {}) == {}
    with pytest.raises(ConfigError, match="cae_vit_tiny_patch4.*no frozen teacher"):
        attach_teacher_files(model, {"checkpoint": str(teacher_file)})


def test_several_teachers_need_one_file_each(teacher_file: Path) -> None:
    model = anymae.create_model("dmae_vit_tiny_patch4", **SMALL)
    model.add_teacher("second", image_teacher("mae_vit_tiny_patch4", 16, 3))
    with pytest.raises(ConfigError, match=r"2 frozen teachers \['second', 'teacher'\]"):
        attach_teacher_files(model, {"checkpoint": str(teacher_file)})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['third'\]"):
        attach_teacher_files(model, {"checkpoint": {"teacher": str(teacher_file), "third": str(teacher_file)}})
    with pytest.raises(ConfigError, match=r"second: a ViT encoder"):
        attach_teacher_files(model, {"teacher": str(teacher_file)})
    kinds = attach_teacher_files(model, {"teacher": str(teacher_file), "second": str(teacher_file)})
    assert sorted(kinds) == ["second", "teacher"]


def test_cli_distils_every_teacher_recipe_from_a_tiny_teacher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from anymae.datasets.image.synthetic import write_image_folder

    torch.set_num_threads(1)
    data = write_image_folder(tmp_path / "images", 4, 2, size=36, fmt="png", seed=0)
    common = [f"data.root={data}", "run.max_steps=2", "optim.batch_size=4", "run.num_workers=0",
              "run.tensorboard=false", "run.precision=fp32"]  # fmt: skip
    cfg = REPO / "configs" / "mae_vit_tiny_cpu.yaml"
    assert main(["pretrain", "--config", str(cfg), *common, f"run.out_dir={tmp_path / 'teacher'}"]) == 0
    teacher = tmp_path / "teacher" / "last.pt"
    source = load_checkpoint(teacher)["model"]
    for recipe in TEACHER_RECIPES:
        out = tmp_path / recipe
        config = REPO / "configs" / f"{recipe}_tiny_cpu.yaml"
        assert main(["pretrain", "--config", str(config), *common, f"run.out_dir={out}",
                     f"teacher.checkpoint={teacher}"]) == 0  # fmt: skip
        saved = yaml.safe_load((out / "config.yaml").read_text())
        assert saved["teacher"] == {"checkpoint": str(teacher)}
        state = load_checkpoint(out / "last.pt")["model"]
        key = "encoder.blocks.5.mlp.fc2.weight"
        assert torch.equal(state[f"teachers.teacher.{key}"], source[key])  # the file's weights, saved with the student
        rebuilt = load_pretrained(out / "last.pt")  # no teacher file needed: teachers.* keys come with it
        assert torch.equal(rebuilt.teachers["teacher"].encoder.norm.weight, source["encoder.norm.weight"])
    assert main(["pretrain", "--config", str(REPO / "configs" / "dmae_tiny_cpu.yaml"), *common,
                 f"run.out_dir={tmp_path / 'none'}"]) != 0  # fmt: skip
    assert "teacher.checkpoint=PATH" in capsys.readouterr().err
