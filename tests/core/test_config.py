"""Tests for anymae/core/config.py: checked dataclass configs, YAML, overrides, atomic dumps."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
import yaml

from anymae.core import config as cfgmod
from anymae.core.config import (
    ConfigError,
    alternatives,
    apply_overrides,
    check_field,
    describe,
    dump_yaml,
    from_dict,
    load_config,
    load_yaml,
    to_dict,
)


@dataclass
class Mask:
    ratio: float = 0.75
    strategy: Literal["random", "block", "tube"] = "random"

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"ratio must be in [0, 1), got {self.ratio}")


@dataclass
class Model:
    depth: int = 12
    dim: int = 768
    img_size: tuple[int, int] = (224, 224)
    mask: Mask = field(default_factory=Mask)
    pool: Optional[str] = None


@dataclass
class Optim:
    lr: float = 1.5e-4
    betas: tuple[float, float] = (0.9, 0.95)
    layers: list[int] = field(default_factory=list)


@dataclass
class Run:
    name: str
    model: Model = field(default_factory=lambda: Model(depth=4))
    optim: Optim = field(default_factory=Optim)
    amp: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    probe: Optional[Mask] = None


def _error(fn, *args) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args)
    return str(info.value)


# ---------------------------------------------------------------- from_dict: building and checking


def test_from_dict_builds_nested_and_converts() -> None:
    cfg = from_dict(Run, {"name": "r", "model": {"dim": 96, "img_size": [32, 48], "mask": {"ratio": 0.5}},
                          "optim": {"lr": 1, "betas": [0, 1]}, "probe": {"strategy": "tube"}})
    assert cfg.model == Model(depth=4, dim=96, img_size=(32, 48), mask=Mask(ratio=0.5))  # depth from the factory
    assert cfg.optim.lr == 1.0 and type(cfg.optim.lr) is float  # int accepted for a float field
    assert cfg.optim.betas == (0.0, 1.0) and all(type(b) is float for b in cfg.optim.betas)
    assert cfg.probe == Mask(strategy="tube")
    assert from_dict(Run, {"name": "r"}) == Run(name="r")


def test_base_gives_the_keys_data_leaves_out() -> None:
    cfg = _custom_run()
    new = from_dict(Run, {"optim": {"lr": 0.5}, "model": {"mask": {"ratio": 0.1}}}, base=cfg)
    assert new.optim == Optim(lr=0.5, betas=(0.5, 0.9), layers=[1, 2])
    assert new.model == Model(depth=2, img_size=(32, 16), mask=Mask(0.1, "tube"), pool="mean")
    assert new.name == "r" and new.extra == cfg.extra and new.probe == cfg.probe
    new.optim.layers.append(3)
    assert cfg.optim.layers == [1, 2]  # no list is shared with the base


def test_unknown_key_names_path_lists_valid_keys_and_suggests() -> None:
    msg = _error(from_dict, Run, {"name": "r", "model": {"dpeth": 3}})
    assert "'model.dpeth'" in msg
    assert "did you mean 'model.depth'?" in msg
    assert "Valid keys under 'model': depth, dim, img_size, mask, pool" in msg

    msg = _error(from_dict, Run, {"name": "r", "optimm": {}})
    assert "'optimm'" in msg and "did you mean 'optim'?" in msg
    assert "at the top level: name, model, optim, amp, extra, probe" in msg

    msg = _error(from_dict, Run, {"name": "r", "model": {"mask": {"zzz": 1}}})
    assert "'model.mask.zzz'" in msg and "did you mean" not in msg and "ratio, strategy" in msg


@pytest.mark.parametrize(
    ("data", "key", "shown", "expected"),
    [
        ({"model": {"depth": "deep"}}, "'model.depth'", "'deep' (str)", "expected int"),
        ({"model": {"depth": True}}, "'model.depth'", "True (bool)", "expected int"),
        ({"model": {"depth": 3.0}}, "'model.depth'", "3.0 (float)", "expected int"),
        ({"amp": 1}, "'amp'", "1 (int)", "expected bool"),
        ({"optim": {"lr": "1e-3"}}, "'optim.lr'", "'1e-3' (str)", "expected float"),
        ({"optim": {"betas": [0.9]}}, "'optim.betas'", "[0.9] (list)", "expected tuple[float, float]"),
        ({"optim": {"layers": [1, "x"]}}, "'optim.layers[1]'", "'x' (str)", "expected int"),
        ({"model": {"pool": 3}}, "'model.pool'", "3 (int)", "expected str"),
        ({"model": 5}, "'model'", "5 (int)", "expected Model"),
        ({"extra": [1]}, "'extra'", "[1] (list)", "expected dict[str, Any]"),
    ],
)
def test_wrong_type_names_key_value_and_expected_type(data, key, shown, expected) -> None:
    msg = _error(from_dict, Run, {"name": "r", **data})
    assert key in msg and shown in msg and expected in msg


def test_literal_lists_allowed_values() -> None:
    msg = _error(from_dict, Run, {"name": "r", "model": {"mask": {"strategy": "grid"}}})
    assert "'model.mask.strategy'" in msg and "'grid'" in msg
    assert "one of 'random', 'block', 'tube'" in msg


def test_missing_required_and_post_init_errors() -> None:
    msg = _error(from_dict, Run, {"model": {}})
    assert "missing required config key(s) 'name'" in msg and "name=..." in msg
    msg = _error(from_dict, Run, {"name": "r", "model": {"mask": {"ratio": 1.5}}})
    assert "'model.mask'" in msg and "ratio must be in [0, 1), got 1.5" in msg


def test_optional_and_any_values() -> None:
    cfg = from_dict(Run, {"name": "r", "model": {"pool": None}, "extra": {"a": [1, {"b": None}]}})
    assert cfg.model.pool is None and cfg.extra == {"a": [1, {"b": None}]}


# ---------------------------------------------------------------- overrides


def test_override_values_parse_as_yaml_with_scientific_floats() -> None:
    data = {"optim": {"lr": 0.1}, "model": {"depth": 12}}
    out = apply_overrides(data, [
        "optim.lr=1e-3", "model.img_size=[96, 96]", "amp=false", "model.pool=null", "name=run 1",
        "a.b.c=-2.5E+2", "x=1e3", "y=[1e-4, 2]", "model.depth=3", "model.depth=5", "z=a=b",
    ])
    assert out["optim"]["lr"] == 0.001 and type(out["optim"]["lr"]) is float
    assert out["model"] == {"depth": 5, "img_size": [96, 96], "pool": None}  # later override wins
    assert out["amp"] is False and out["name"] == "run 1"
    assert out["a"] == {"b": {"c": -250.0}} and out["x"] == 1000.0 and type(out["x"]) is float
    assert out["y"] == [0.0001, 2] and out["z"] == "a=b"
    assert data == {"optim": {"lr": 0.1}, "model": {"depth": 12}}  # input untouched


def test_override_into_null_section_creates_it() -> None:
    assert apply_overrides({"probe": None}, ["probe.ratio=0.5"]) == {"probe": {"ratio": 0.5}}


@pytest.mark.parametrize("bad", ["optim.lr", "=3", "a..b=1", "optim.=1", "x=[1, 2"])
def test_malformed_override_is_named(bad: str) -> None:
    assert repr(bad) in _error(apply_overrides, {}, [bad])


def test_override_through_a_value_is_an_error() -> None:
    msg = _error(apply_overrides, {"model": 5}, ["model.depth=3"])
    assert "'model.depth=3'" in msg and "'model' holds 5" in msg


def test_load_config_errors_say_which_override_or_file(tmp_path: Path) -> None:
    msg = _error(load_config, Run, None, ["name=a", "model.dpeth=3"])
    assert "'model.dpeth' (from override 'model.dpeth=3')" in msg and "did you mean 'model.depth'?" in msg

    msg = _error(load_config, Run, None, ["name=a", "optim.layers=[1, x]"])
    assert "'optim.layers[1]' (from override 'optim.layers=[1, x]')" in msg

    path = tmp_path / "run.yaml"
    path.write_text("name: a\nmodel:\n  depth: deep\n")
    msg = _error(load_config, Run, str(path), ["optim.lr=1e-3"])
    assert f"'model.depth' (from file '{path}')" in msg and "expected int" in msg


def test_load_config_layers_defaults_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("name: a\nmodel:\n  dim: 64\n  depth: 2\noptim:\n  lr: 1e-4\n")
    cfg = load_config(Run, path, ["model.depth=3", "model.mask.strategy=block"])
    assert cfg == Run(name="a", model=Model(depth=3, dim=64, mask=Mask(strategy="block")), optim=Optim(lr=1e-4))


# ---------------------------------------------------------------- YAML files


def test_load_yaml_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: [1, 2\nc: 3\n")
    msg = _error(load_yaml, path)
    assert str(path) in msg and ", line " in msg and "invalid YAML" in msg

    path.write_text("a: 1\n  b: 2\n")
    assert "line 2" in _error(load_yaml, path)

    path.write_text("- 1\n- 2\n")
    msg = _error(load_yaml, path)
    assert str(path) in msg and "mapping" in msg and "list" in msg


def test_load_yaml_values(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("")
    assert load_yaml(path) == {}
    path.write_text("lr: 1e-4\nwd: 5.0e-2\nn: 10\nname: 1e-4x\n")
    assert load_yaml(path) == {"lr": 1e-4, "wd": 0.05, "n": 10, "name": "1e-4x"}


# ---------------------------------------------------------------- to_dict, dump_yaml, round trips


def _custom_run() -> Run:
    return Run(name="r", model=Model(depth=2, img_size=(32, 16), mask=Mask(0.6, "tube"), pool="mean"),
               optim=Optim(lr=3e-5, betas=(0.5, 0.9), layers=[1, 2]), amp=False,
               extra={"note": "x", "sizes": [1, 2]}, probe=Mask(0.1))


def test_to_dict_is_plain_and_round_trips() -> None:
    cfg = _custom_run()
    data = to_dict(cfg)
    assert data["model"] == {"depth": 2, "dim": 768, "img_size": [32, 16],
                             "mask": {"ratio": 0.6, "strategy": "tube"}, "pool": "mean"}
    assert list(data) == ["name", "model", "optim", "amp", "extra", "probe"]
    assert from_dict(Run, data) == cfg
    assert to_dict({"a": (1, (2.5, None))}) == {"a": [1, [2.5, None]]}
    assert from_dict(Run, to_dict(Run(name="d"))) == Run(name="d")


def test_to_dict_survives_torch_weights_only(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    cfg = _custom_run()
    torch.save({"config": to_dict(cfg)}, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert from_dict(Run, loaded["config"]) == cfg


def test_to_dict_rejects_non_plain_values_by_key() -> None:
    msg = _error(to_dict, Run(name="r", extra={"path": Path("/x")}))
    assert "'extra.path'" in msg and "'/x'" in msg and "not a plain value" in msg


def test_dump_yaml_round_trip_readable_field_order(tmp_path: Path) -> None:
    cfg = _custom_run()
    path = tmp_path / "config.yaml"
    dump_yaml(cfg, path)
    text = path.read_text()
    assert text.startswith("name: r\nmodel:\n  depth: 2\n  dim: 768\n  img_size: [32, 16]\n")
    assert "lr: 3.0e-05" in text  # readable back by any YAML 1.1 reader
    assert yaml.safe_load(text)["optim"]["lr"] == 3e-5
    assert load_config(Run, path, []) == cfg
    assert os.listdir(tmp_path) == ["config.yaml"] and (path.stat().st_mode & 0o777) == 0o644


def test_dump_yaml_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("old: 1\n")
    msg = _error(dump_yaml, {"a": {"b": object()}}, path)  # unserialisable: fails before any write
    assert "'a.b'" in msg
    assert path.read_text() == "old: 1\n" and os.listdir(tmp_path) == ["config.yaml"]

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(cfgmod.os, "fsync", broken_fsync)  # fails mid-write, after the temp file exists
    with pytest.raises(OSError, match="disk full"):
        dump_yaml(_custom_run(), path)
    assert path.read_text() == "old: 1\n" and os.listdir(tmp_path) == ["config.yaml"]


# ---------------------------------------------------------------- describe


def test_describe_lists_every_key_type_and_effective_default() -> None:
    text = describe(Run)
    lines = [line.split() for line in text.splitlines()[1:]]
    keys = [line[0] for line in lines]
    assert keys == ["name", "model.depth", "model.dim", "model.img_size", "model.mask.ratio",
                    "model.mask.strategy", "model.pool", "optim.lr", "optim.betas", "optim.layers",
                    "amp", "extra", "probe", "probe.ratio", "probe.strategy"]
    rows = {line[0]: " ".join(line[1:]) for line in lines}
    assert rows["name"] == "str (required)"
    assert rows["model.depth"] == "int = 4"  # the section's factory default, not Model's 12
    assert rows["model.mask.strategy"] == "one of 'random', 'block', 'tube' = 'random'"
    assert rows["optim.betas"] == "tuple[float, float] = (0.9, 0.95)"
    assert rows["model.pool"] == "str | None = None" and rows["probe"] == "Mask | None = None"
    assert rows["probe.ratio"] == "float = 0.75"


# ---------------------------------------------------------------- what an override replaces


@dataclass
class Steps:
    out_dir: str = "runs/x"
    max_steps: Optional[int] = None
    blr: float = field(default=1.5e-4, metadata=alternatives("lr"))
    lr: Optional[float] = field(default=None, metadata=alternatives("blr"))

    def __post_init__(self) -> None:
        check_field(self.max_steps is None or self.max_steps >= 1, "max_steps", self.max_steps, "None or >= 1")
        if self.out_dir == "bad":
            raise ValueError("out_dir may not be 'bad'")


@dataclass
class Job:
    run: Steps = field(default_factory=Steps)
    data: dict[str, Any] = field(default_factory=dict)
    test_data: Optional[dict[str, Any]] = None


def test_a_field_check_is_blamed_on_its_own_key_not_the_last_override_of_its_section() -> None:
    msg = _error(load_config, Job, None, ["run.max_steps=0", "run.out_dir=x"])
    assert msg.startswith("invalid config key 'run.max_steps' (from override 'run.max_steps=0') (Steps): "
                          "max_steps=0: expected None or >= 1")
    assert "out_dir=x" not in msg
    msg = _error(load_config, Job, None, ["run.max_steps=2", "run.out_dir=bad"])  # a check of the whole section
    assert "invalid config 'run' (Steps): out_dir may not be 'bad'" in msg and "max_steps=2" not in msg


def test_overriding_a_source_drops_the_file_keys_the_new_source_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = {"shapes": ["source", "n", "num_points"], "files": ["source", "root", "num_points"]}
    monkeypatch.setattr(cfgmod, "_source_keys", [keys.get])
    path = tmp_path / "job.yaml"
    path.write_text("data: {source: shapes, n: 256, num_points: 64}\ntest_data: {source: shapes, n: 8}\n")
    cfg = load_config(Job, path, ["data.source=files", "data.root=./clouds", "test_data.source=files"])
    assert cfg.data == {"source": "files", "num_points": 64, "root": "./clouds"}  # n belonged to 'shapes'
    assert cfg.test_data == {"source": "files"}
    notes = capsys.readouterr().err.splitlines()
    assert notes == [
        f"note: data.source=files (override) replaces the source 'shapes' of file '{path}': dropped its keys "
        "data.n, which files does not have",
        f"note: test_data.source=files (override) replaces the source 'shapes' of file '{path}': dropped its "
        "keys test_data.n, which files does not have",
    ]
    # the same source, or a source the hook does not know: the file's keys stay (and are checked later)
    assert load_config(Job, path, ["data.source=shapes"]).data["n"] == 256
    assert load_config(Job, path, ["data.source=unknown"]).data == {"source": "unknown", "n": 256, "num_points": 64}
    assert load_config(Job, path, ["data.n=3"]).data["n"] == 3


def test_an_overridden_alternative_clears_the_one_the_file_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("run: {lr: 0.001}\n")
    assert load_config(Job, path).run.lr == 0.001
    cfg = load_config(Job, path, ["run.blr=0.5"])
    assert cfg.run.blr == 0.5 and cfg.run.lr is None  # the command line wins; the file's lr is cleared
    assert capsys.readouterr().err == f"note: run.blr (override) replaces run.lr=0.001 of file '{path}'\n"
    assert load_config(Job, path, ["run.lr=0.01"]).run.lr == 0.01
    for file in (path, None):
        msg = _error(load_config, Job, file, ["run.blr=0.5", "run.lr=0.01"])
        assert msg == "overrides 'run.blr' and 'run.lr' say the same thing two ways; give only one"
