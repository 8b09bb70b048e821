"""The shared command line: every command takes --config, key=value, --print-config; flags set the same keys."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from anymae.cli import COMMANDS, Command, main

REPO = Path(__file__).parents[2]
READS_A_CHECKPOINT = {"finetune", "probe", "fewshot", "probe-nodes", "reconstruct", "export", "channel-subsets",
                      "retrieval"}
BY_NAME = {c.name: c for c in COMMANDS}


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of a nested mapping."""
    if not isinstance(tree, dict) or (prefix and not tree):  # a leaf, or an empty section
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _printed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main([*argv, "--print-config"]) == 0
    return _flat(yaml.safe_load(capsys.readouterr().out))


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the help examples name configs/... relative to the repository


def test_the_commands_are_the_documented_ones() -> None:
    assert set(BY_NAME) == {"pretrain", "finetune", "probe", "fewshot", "probe-nodes", "reconstruct", "export",
                            "info", "stats", "channel-subsets", "shard", "demo", "retrieval"}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_help_shows_real_examples_and_the_shared_options(command: Command, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command.name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: anymae " + command.name) and "--config" in text and "--print-config" in text
    assert command.examples and all("anymae " + shlex.join(example) in text for example in command.examples)
    for example in command.examples:
        configs = [example[i + 1] for i, word in enumerate(example) if word == "--config"]
        assert all((REPO / c).is_file() for c in configs), configs


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_example_resolves_and_each_flag_lands_on_its_key(command: Command,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for example in command.examples:
        printed = _printed(list(example), capsys)
        for flag in command.flags:
            given = [example[i + 1] for i, word in enumerate(example[:-1]) if word == flag.option]
            if flag.kwargs.get("action") == "store_true":
                expected: Any = True if flag.option in example else None
            elif flag.kwargs.get("action") == "append":
                expected = flag.convert(given) if given else None
            else:
                expected = flag.kwargs.get("type", str)(given[-1]) if given else None
            if expected is not None:
                assert printed[flag.key] == expected, (flag.option, printed)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_device_workers_and_outputs_sit_under_the_same_keys(command: Command,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    keys = _printed(list(command.examples[0]), capsys)
    for leaf in ("device", "num_workers", "out_dir", "resume"):
        assert all(k == f"run.{leaf}" for k in keys if k.rsplit(".", 1)[-1] == leaf), (leaf, sorted(keys))
    outs = {f.key for f in command.flags if f.option == "--out"}
    assert outs <= {"out", "run.out_dir"} and all(k in keys for k in outs)
    assert ("checkpoint" in keys) == (command.name in READS_A_CHECKPOINT)


@pytest.mark.parametrize("name", sorted(READS_A_CHECKPOINT))
def test_checkpoint_flag_sets_the_top_level_key(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    command = BY_NAME[name]
    assert any(f.option == "--checkpoint" and f.key == "checkpoint" for f in command.flags)
    example = list(command.examples[0])
    at = example.index("--checkpoint")
    # a path YAML would read as a boolean stays a string; an explicit override after it wins
    example[at + 1] = "on"
    assert _printed(example, capsys)["checkpoint"] == "on"
    assert _printed([*example, "checkpoint=elsewhere.pt"], capsys)["checkpoint"] == "elsewhere.pt"


def test_commands_without_a_checkpoint_refuse_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for name in set(BY_NAME) - READS_A_CHECKPOINT:
        with pytest.raises(SystemExit):
            main([name, "--checkpoint", "x.pt", "--print-config"])
    capsys.readouterr()


def test_finetune_takes_checkpoint_as_flag_config_value_or_override(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["finetune", "--config", "configs/mae_vit_tiny_cpu_finetune.yaml"]
    assert _printed(base, capsys)["checkpoint"] == "runs/mae_vit_tiny_cpu/last.pt"  # from the file
    assert _printed([*base, "--checkpoint", "a.pt"], capsys)["checkpoint"] == "a.pt"
    assert _printed([*base, "checkpoint=b.pt"], capsys)["checkpoint"] == "b.pt"
    printed = _printed([*base, "--resume", "--out", "runs/ft"], capsys)
    assert printed["run.resume"] is True and printed["run.out_dir"] == "runs/ft"


def test_old_top_level_device_key_is_refused_with_the_valid_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--checkpoint", "x.pt", "data.source=synthetic_images", "device=cpu", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'device'" in err and "run" in err


def test_channel_subsets_flag_becomes_a_list_of_lists(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["channel-subsets", "--checkpoint", "x.pt", "--subset", "dna, er", "--subset", "rna", "data.source=x"]
    assert main([*argv, "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["subsets"] == [["dna", "er"], ["rna"]]


def test_info_takes_a_bare_pattern_and_config_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _printed(["info", "mae_vit_*"], capsys) == {"pattern": "mae_vit_*"}
    (tmp_path / "info.yaml").write_text("pattern: 'videomae_*'\n")
    assert _printed(["info", "--config", str(tmp_path / "info.yaml")], capsys) == {"pattern": "videomae_*"}
    assert main(["info", "point_*"]) == 0
    out = capsys.readouterr().out
    assert "point_mae" in out and "mae_vit_base_patch16" not in out and "image_folder (image)" in out


def test_missing_required_key_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconstruct", "--print-config"]) == 2
    assert "missing required config key(s) 'checkpoint'" in capsys.readouterr().err


def test_print_config_shows_each_command_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    probe = _printed(["probe", "checkpoint=c.pt", "data.source=synthetic_images"], capsys)
    assert probe["run.device"] == "auto" and probe["run.num_workers"] == 2 and probe["probe.k"] == 20
    assert probe["out"] is None and probe["test_data"] is None
    fewshot = _printed(["fewshot", "checkpoint=c.pt", "data.source=synthetic_images"], capsys)
    assert fewshot["run.out_dir"] == "runs/fewshot" and fewshot["run.num_workers"] == 0
    assert fewshot["run.tensorboard"] is False and fewshot["fewshot.way"] == 5
    nodes = _printed(["probe-nodes", "checkpoint=c.pt", "data.source=sbm_graph"], capsys)
    assert nodes["run.device"] == "auto" and nodes["probe.seeds"] == 20
    recon = _printed(["reconstruct", "--checkpoint", "c.pt"], capsys)
    assert recon == {"checkpoint": "c.pt", "out": "reconstruction.png", "input": None, "num": 8, "seed": 0,
                     "gif": None, "data": {}}
    assert _printed(["demo"], capsys) == {"minutes": 5.0, "run.out_dir": "runs/demo", "run.seed": 0}
    assert _printed(["export", "--checkpoint", "c.pt", "--out", "e.pth"], capsys) == {
        "checkpoint": "c.pt", "out": "e.pth", "format": "timm"}
    stats = _printed(["stats", "data.source=audio_folder"], capsys)
    assert stats["run.num_workers"] == 0 and stats["split"] == "pretrain" and stats["batch_size"] == 16


def _documented_lines(path: Path) -> list[list[str]]:
    """The `anymae ...` command lines in a config's comments (continuation lines joined)."""
    text = "\n".join(line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#"))
    lines = text.replace("\\\n", " ").splitlines()
    return [shlex.split(line[line.index("anymae ") + len("anymae "):].split(" # ")[0]) for line in lines
            if "anymae " in line and f"--config configs/{path.name}" in line]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_each_config_resolves_with_the_command_its_comment_names(path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    documented = _documented_lines(path)
    assert documented, f"{path.name} has no `anymae COMMAND --config configs/{path.name}` line in its comments"
    for argv in documented:
        assert argv[0] in BY_NAME and main([*argv, "--print-config"]) == 0, argv
        capsys.readouterr()
