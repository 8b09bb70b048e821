from __future__ import annotations

from pathlib import Path

import pytest

from anymae.core.io import atomic_path, atomic_write


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
