"""Atomic file writes: nothing half-written ever replaces a good file (checkpoints, configs, pictures).

A write goes to a hidden temporary beside its target, ``.NAME.PID-RANDOM.tmp``, which is renamed over
the target once complete. A process killed mid-write leaves its temporary behind; the next write of
the same target removes such stale temporaries (those of processes no longer running on this
machine, and the older ``.NAME.RANDOM.tmp`` form), so killed runs do not pile up hidden files.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (this process counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries that killed writers of ``path`` left beside it; returns those removed.

    A temporary of a writer still running on this machine is kept (it will rename or remove its own).
    """
    target = Path(path)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(?:(\d+)-)?[A-Za-z0-9_]+\.tmp$")
    removed = []
    with contextlib.suppress(OSError):  # a missing or unreadable directory has nothing to clean
        for entry in target.parent.iterdir():
            match = pattern.match(entry.name)
            if match is None or (match.group(1) is not None and _running(int(match.group(1)))):
                continue
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


def writable_dir(path: str | os.PathLike[str], what: str) -> Path:
    """Create directory ``path`` (and its parents) if needed and check that files can be written in it.

    Args:
        path: the directory.
        what: what the directory is for, starting the messages (``"run.out_dir"``).

    Raises:
        NotADirectoryError: ``path`` or one of its parents is a file.
        PermissionError: the directory cannot be created or written to.
    """
    directory = Path(path)
    blocker = next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "is a file" if blocker == directory else f"is below '{blocker}', which is a file"
        raise NotADirectoryError(f"{what}: '{directory}' {where}, not a directory; choose another path")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise PermissionError(f"{what}: cannot create '{directory}' (permission denied)") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{what}: '{directory}' is not writable (permission denied); choose another path")
    return directory


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    For writers that take a file name (safetensors, ...). On any error the temporary file is
    removed and `path` keeps its previous content; stale temporaries of `path` left by killed
    writers are removed first (`remove_stale_temporaries`).
    """
    target = Path(path)
    writable_dir(target.parent, f"cannot write '{target}'")
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; rename it over `path` when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
