from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from anymae.tasks.train import checkpoint as ckpt_mod
from anymae.tasks.train.checkpoint import (
    CheckpointError,
    NonFiniteWeightsError,
    check_finite,
    latest_checkpoint,
    load_checkpoint,
    load_state_dict_checked,
    save_checkpoint,
    step_filename,
)


def _state(value: float) -> dict:
    return {
        "model": {"w": torch.full((2, 3), value), "b": torch.zeros(3)},
        "step": 4,
        "config": {"name": "x", "betas": (0.9, 0.95), "lr": None, "flags": [True, 1, 2.5, "s"]},
    }


def test_roundtrip_keeps_tensors_and_plain_values(tmp_path):
    path = save_checkpoint(tmp_path / "sub" / "last.pt", _state(1.5))
    back = load_checkpoint(path)
    assert torch.equal(back["model"]["w"], torch.full((2, 3), 1.5))
    assert back["step"] == 4 and back["config"]["betas"] == (0.9, 0.95) and back["config"]["lr"] is None
    assert back["config"]["flags"] == [True, 1, 2.5, "s"]
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)


def test_refuses_non_plain_values_naming_the_key_path(tmp_path):
    path = tmp_path / "last.pt"
    with pytest.raises(TypeError, match=r"'config\.opts\[1\]' holds a Namespace"):
        save_checkpoint(path, {"config": {"opts": [1, __import__("argparse").Namespace(a=1)]}})
    with pytest.raises(TypeError, match=r"'optimizer\.state\.0\.step' holds a complex"):
        save_checkpoint(path, {"optimizer": {"state": {0: {"step": 1j}}}})
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_failing_save_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(1.0))

    def broken_save(obj, f):  # writes half a file, then the disk is "full"
        f.write(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, _state(2.0))
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((2, 3), 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(missing)
    good = save_checkpoint(tmp_path / "good.pt", _state(1.0))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated.pt.*truncated, corrupt"):
        load_checkpoint(truncated)
    pickled = tmp_path / "pickled.pt"
    torch.save({"opt": __import__("argparse").Namespace(a=1)}, pickled)
    with pytest.raises(CheckpointError, match="pickled.pt"):
        load_checkpoint(pickled)
    not_dict = tmp_path / "list.pt"
    torch.save([1, 2], not_dict)
    with pytest.raises(CheckpointError, match="list.pt' holds a list"):
        load_checkpoint(not_dict)


class _Net(nn.Module):
    def __init__(self, out: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Linear(2, out)
        self.head = nn.Linear(out, 1)


def test_load_state_dict_checked_lists_every_problem():
    net = _Net()
    sd = {k: v.clone() for k, v in _Net(out=4).state_dict().items()}  # encoder/head shapes differ
    del sd["head.bias"]
    sd["decoder.w"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_state_dict_checked(net, sd)
    text = str(err.value)
    assert "missing keys (1): head.bias" in text
    assert "unexpected keys (1): decoder.w" in text
    assert "encoder.weight (checkpoint [4, 2] vs model [3, 2])" in text
    assert "head.weight (checkpoint [1, 4] vs model [1, 3])" in text


def test_load_state_dict_checked_ignore_filter_and_non_strict():
    src, dst = _Net(), _Net()
    sd = dict(src.state_dict())
    sd["decoder.w"] = torch.zeros(1)
    report = load_state_dict_checked(dst, sd, ignore=lambda k: k.startswith("decoder."))
    assert report.ok and report.ignored == ["decoder.w"]
    assert torch.equal(dst.encoder.weight, src.encoder.weight)

    other = _Net()
    before = other.head.weight.clone()
    partial = {"encoder.weight": src.encoder.weight, "head.weight": torch.zeros(9)}
    report = load_state_dict_checked(other, partial, strict=False)
    assert not report.ok and report.missing == ["encoder.bias", "head.bias"]
    assert [k for k, _, _ in report.mismatched] == ["head.weight"]
    assert torch.equal(other.encoder.weight, src.encoder.weight)  # matching key loaded
    assert torch.equal(other.head.weight, before)  # mismatched key left alone


def test_latest_checkpoint_prefers_last_then_highest_step(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for step in (5, 40, 120):
        save_checkpoint(tmp_path / step_filename(step), {"step": step})
    (tmp_path / "step_junk.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path).name == "step_000120.pt"
    save_checkpoint(tmp_path / "last.pt", {"step": 120})
    assert latest_checkpoint(tmp_path).name == "last.pt"


def test_an_empty_file_is_named_not_a_crash_of_the_message(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"checkpoint '.*empty.pt' is empty \(0 bytes\)"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match=r"'.*' is not a file"):
        load_checkpoint(tmp_path)


def test_non_finite_weights_are_never_written(tmp_path):
    state = _state(1.0)
    state["model"]["w"][0, 1] = float("nan")
    state["model"]["b"][2] = float("-inf")
    with pytest.raises(NonFiniteWeightsError, match=r"to be written to '.*last.pt' holds NaN/Inf values in 2 "
                                                    r"tensor\(s\): model.w \(1 of 6\), model.b \(1 of 3\)"):
        save_checkpoint(tmp_path / "last.pt", state)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left


def test_non_finite_weights_are_never_accepted(tmp_path):
    state = _state(1.0)
    state["model"]["w"][1] = float("nan")  # 3 of 6 values
    state["optimizer"] = {"state": {0: {"exp_avg": torch.ones(2)}}, "steps": [torch.tensor([1.0, float("inf")])]}
    torch.save(state, tmp_path / "diverged.pt")  # written by something else than save_checkpoint
    with pytest.raises(NonFiniteWeightsError, match=r"checkpoint '.*diverged.pt' holds NaN/Inf values in 2 tensor"
                                                    r"\(s\): model.w \(3 of 6\), optimizer.steps\[0\] \(1 of 2\)"):
        load_checkpoint(tmp_path / "diverged.pt")
    assert issubclass(NonFiniteWeightsError, CheckpointError)
    check_finite({"ids": torch.tensor([1, 2]), "empty": torch.zeros(0), "w": torch.ones(2)}, "x")  # no error
