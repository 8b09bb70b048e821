"""Bad input of every kind, made on disk, and the one assertion every reader must meet.

Issue: hostile but realistic input must give a named one-line error (`DataError` naming the file)
or, with the user's consent (`on_error="skip"`), a counted skip blamed on the right file; never a
traceback from deep inside a library, a hang, unbounded memory, or silent garbage.

The kinds (`KINDS`), each a function `make(dir, name) -> Path`:
  empty, truncated (first half of a good file), random_bytes (right extension), wrong_extension
  (a good file of another format under this extension), nan_inf (where the format holds floats),
  zero_size (a header that declares 0 items), size_bomb (a header that declares ~1e9 items),
  symlink_loop, symlink_escape (a link out of the data root), non_utf8_name, unreadable (a path
  that exists but cannot be read as a file: a directory named like one, a dangling link).
CI runs as root, so `chmod 000` is no test of "unreadable"; the two stand-ins above are.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anymae.datasets.skips import DataError

KINDS: tuple[str, ...] = (
    "empty", "truncated", "random_bytes", "wrong_extension", "nan_inf", "zero_size", "size_bomb",
    "symlink_loop", "symlink_escape", "non_utf8_name", "unreadable",
)


def write_empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def write_random(path: Path, size: int = 4096, seed: int = 0) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def write_truncated(good: Path, path: Path, keep: float = 0.5) -> Path:
    data = good.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def non_utf8_path(folder: Path, suffix: str) -> Path:
    """A path whose name is not valid UTF-8 (bytes 0xff 0xfe), as Linux file systems allow."""
    name = os.fsdecode(b"clip_\xff\xfe" + suffix.encode())
    return folder / name


def make_dir_named_like_file(folder: Path, name: str) -> Path:
    path = folder / name
    path.mkdir(parents=True)
    return path


def make_dangling_link(folder: Path, name: str) -> Path:
    path = folder / name
    path.symlink_to(folder / "does_not_exist_target")
    return path


def make_link_loop(folder: Path, name: str) -> Path:
    """`name` -> `name.loop` -> `name`: a file link that never resolves."""
    a, b = folder / name, folder / f"{name}.loop"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def make_dir_self_links(root: Path) -> None:
    """Two directory links that point back up the tree (a scan that follows them never ends)."""
    (root / "self").symlink_to(root, target_is_directory=True)
    (root / "up").symlink_to(root.parent, target_is_directory=True)


def make_escape_link(root: Path, outside: Path) -> Path:
    """A directory link inside `root` that leads to `outside` (files there are not the user's data)."""
    link = root / "escape"
    link.symlink_to(outside, target_is_directory=True)
    return link


def assert_named_error(fn: Callable[[], Any], path: Path | str, *, error: type[Exception] = DataError) -> str:
    """`fn()` raises `error` whose message is one line and names the file; returns the message."""
    with pytest.raises(error) as info:
        fn()
    message = str(info.value)
    name = os.fsdecode(Path(path).name) if isinstance(path, Path) else os.fsdecode(path)
    shown = os.fsencode(name).decode("utf-8", "backslashreplace")  # as `scan.display_name` shows it
    assert name in message or shown in message or repr(name)[1:-1] in message, (
        f"error does not name {name!r}: {message}"
    )
    assert "\n" not in message.strip(), f"error is not one line: {message!r}"
    return message


@contextmanager
def bounded_memory(limit_mb: float) -> Iterator[None]:
    """Fail when Python/numpy allocations (traced) peak above `limit_mb` inside the block."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit_mb * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB > {limit_mb} MiB"
