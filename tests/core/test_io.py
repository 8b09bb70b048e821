from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from anymae.core import io as io_module
from anymae.core.io import atomic_path, atomic_write, remove_stale_temporaries, writable_dir


def test_atomic_write_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.txt"
    with atomic_write(target, "w") as f:
        f.write("first")
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target, "w") as f:
            f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "first"  # the good file survives a failed write
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]  # no temp file left


def test_atomic_path_for_writers_that_take_a_name(tmp_path: Path) -> None:
    target = tmp_path / "w.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"\x01\x02")
    assert target.read_bytes() == b"\x01\x02" and oct(target.stat().st_mode & 0o777) == "0o644"


def _dead_pid() -> int:
    """The id of a process that has exited (reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_write_removes_temporaries_that_killed_writers_left(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    dead = tmp_path / f".last.pt.{_dead_pid()}-k1ll3d_x.tmp"  # a writer killed mid-write
    old_form = tmp_path / ".last.pt.ab_cd123.tmp"  # the name form of earlier versions
    live = tmp_path / f".last.pt.{os.getpid()}-w0rking.tmp"  # a writer of this process, still running
    other = tmp_path / f".config.yaml.{_dead_pid()}-zz.tmp"  # another target's: left for its own writes
    for path in (dead, old_form, live, other):
        path.write_bytes(b"partial")
    with atomic_write(target) as f:
        f.write(b"done")
    assert target.read_bytes() == b"done"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name, other.name])
    assert remove_stale_temporaries(tmp_path / "config.yaml") == [other]


def test_writable_dir_names_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(NotADirectoryError, match=r"run.out_dir: '.*taken' is a file, not a directory"):
        writable_dir(tmp_path / "taken", "run.out_dir")
    with pytest.raises(NotADirectoryError, match=r"'.*taken/sub' is below '.*taken', which is a file"):
        writable_dir(tmp_path / "taken" / "sub", "run.out_dir")
    with pytest.raises(NotADirectoryError, match=r"cannot write '.*taken/x.json': '.*taken' is a file"):
        with atomic_write(tmp_path / "taken" / "x.json", "w") as f:
            f.write("{}")
    assert writable_dir(tmp_path / "new" / "run", "run.out_dir").is_dir()


def test_writable_dir_refuses_a_directory_it_cannot_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(io_module.os, "access", lambda path, mode: Path(path) != locked)  # root may write anywhere
    with pytest.raises(PermissionError, match=r"run.out_dir: '.*locked' is not writable \(permission denied\)"):
        writable_dir(locked, "run.out_dir")
