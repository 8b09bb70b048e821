"""Errors or counted skips for datasets of files: one mechanism for every reader.

With `on_error="raise"` an unreadable item raises `DataError` naming the file. With
`on_error="skip"` the next readable index is returned instead (i+1, i+2, ... wrapping), the same
one whichever DataLoader worker asks: each unreadable item is flagged in shared memory that
workers (fork, spawn or forkserver) update, so `count` / `report` in the main process see every
worker's skips exactly, and a flagged item is not read again. Each item is logged once when
first flagged (two workers failing on it in the same instant may both log it). No lock: setting
a byte to 1 is idempotent, and a lock would tie the dataset to one start method. Because of the
shared memory, a dataset holding a `Skips` can be pickled only while starting workers.

Blame: a skip flags exactly the item whose file failed. An item that reads a second one while it
loads (a mixup partner, the other half of a pair) draws it through `get_partner`, so a bad partner
is flagged itself and another partner is drawn; the item being loaded is not blamed. Evaluation
drops the flagged items from its scores (`indices`; the dataset contract's `skipped_indices`)
instead of scoring their substitutes.

Guards every reader runs before it trusts a file (one mechanism for all modalities):
`check_file` names what is wrong with a path that is no regular file (missing, a directory, a
dangling or looping link) or an empty one; `check_declared_size` refuses a header that declares more data than
the file can hold, before anything is allocated; `reason` turns any exception into one short line.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from anymae.datasets.scan import display_name

logger = logging.getLogger(__name__)

T = TypeVar("T")


class DataError(ValueError):
    """A data file cannot be used; the message names the file and the reason."""


class NoUsableItems(DataError):
    """Every item of a dataset was skipped: nothing is left to substitute (never blamed on one item)."""

REPORT_NAMES = 10  # how many skipped names a report lists


class Skips:
    """Flags of unreadable items, shared across DataLoader workers, and the read-or-skip loop.

    Args:
        n: number of items.
        noun: what an item is, for messages ("file", "audio file", "video", "point cloud", ...).
        head: how reports start (e.g. "ImageFiles(/data/train)").
        on_error: "raise" or "skip".
        problem: the adjective in messages ("unreadable"; "unusable" where readable files may
            still be refused, e.g. too short).
    """

    def __init__(
        self, n: int, noun: str, head: str, on_error: Literal["raise", "skip"], *, problem: str = "unreadable"
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.n, self.noun, self.head, self.on_error, self.problem = n, noun, head, on_error, problem
        self._bad = multiprocessing.RawArray("b", n)

    def get(self, index: int, load: Callable[[int], T]) -> T:
        """`load(index)`, or with on_error="skip" the first loadable item from `index` on (wrapping)."""
        n = self.n
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} {self.noun}s")
        index %= n
        if self.on_error == "raise":
            return load(index)
        for step in range(n):
            j = (index + step) % n
            if self._bad[j]:
                continue
            try:
                return load(j)
            except NoUsableItems:  # raised by a nested `get_partner`: no one item is to blame
                raise
            except DataError as err:
                self.mark(j, err)
        raise NoUsableItems(f"{self.head}: all {n} {self.noun}s are {self.problem} (on_error='skip')")

    def get_partner(self, index: int, load: Callable[[int], T]) -> tuple[int, T]:
        """`(j, load(j))` for a second item read while another one loads (a mixup partner).

        `j` is `index`, or with on_error="skip" the first loadable item from `index` on (as `get`);
        a partner that fails is flagged itself, so the item being loaded is not blamed for it.
        With on_error="raise" the partner's `DataError` (naming its file) propagates.
        """
        return self.get(index, lambda j: (j, load(j)))

    def mark(self, j: int, err: Exception) -> None:
        """Flag item j as unreadable (logged once)."""
        if not self._bad[j]:  # another worker may have found it meanwhile and logged it
            self._bad[j] = 1
            logger.warning("skipping %s %s (%s)", self.problem, self.noun, err)

    def is_bad(self, j: int) -> bool:
        return bool(self._bad[j])

    def indices(self) -> list[int]:
        """The flagged items, ascending, across all workers (evaluation drops them from its scores)."""
        return [int(j) for j in np.flatnonzero(np.frombuffer(self._bad, dtype=np.int8))]

    def count(self) -> int:
        """Distinct items skipped so far, across all workers."""
        return int(np.frombuffer(self._bad, dtype=np.int8).sum())

    def report(self, name: Callable[[int], str]) -> str:
        """One line for an end-of-run report: the skip count and the first skipped names."""
        bad = np.flatnonzero(np.frombuffer(self._bad, dtype=np.int8))
        if bad.size == 0:
            return f"{self.head}: no {self.problem} files skipped ({self.n} {self.noun}s)"
        names = [name(int(j)) for j in bad[:REPORT_NAMES]]
        more = f", and {bad.size - len(names)} more" if bad.size > len(names) else ""
        return f"{self.head}: skipped {bad.size} {self.problem} {self.noun}(s) of {self.n}: {', '.join(names)}{more}"


# --- guards on untrusted files

COMPRESSED_EXPANSION = 4096  # decoded bytes per stored byte at most, for compressed data (deflate: ~1032)
SMALL_DECODED = 64 << 20  # compressed data may always decode to this much (a flat image compresses without bound)


def file_problem(path: Path | str) -> str | None:
    """Why `path` is no regular file that can be opened ("does not exist", "is a looping symbolic
    link", "is a directory", ...), or None when it is one."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as err:
        if p.is_symlink():
            return "is a looping symbolic link" if err.errno == errno.ELOOP else "is a dangling symbolic link"
        return "does not exist" if err.errno == errno.ENOENT else f"cannot be opened ({os.strerror(err.errno or 0)})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    return None if stat.S_ISREG(st.st_mode) else "is not a regular file"


def check_file(path: Path | str, what: str) -> None:
    """Raise `DataError` naming `path` (a `what`, e.g. "point cloud") unless it is a regular file
    holding at least one byte ("... is empty (0 bytes)" else)."""
    problem = file_problem(path)
    if problem is None and os.stat(path).st_size == 0:
        problem = "is empty (0 bytes)"
    if problem is not None:
        raise DataError(f"{what} {display_name(path)} {problem}")


def check_declared_size(
    path: Path | str, declared: int, *, what: str, expansion: float = 1.0, stored: int | None = None
) -> None:
    """Refuse a header whose sizes need more bytes than the file holds, before anything is allocated.

    Args:
        path: the file (named in the error).
        declared: the fewest bytes the header's sizes need (e.g. vertices × bytes per vertex).
        what: what the header declares, for the message ("999999999 vertices").
        expansion: decoded bytes per stored byte at most: 1 for raw data, `COMPRESSED_EXPANSION`
            for compressed data (which may also decode to `SMALL_DECODED` bytes, whatever it holds).
        stored: the bytes that hold the data (default: the file's size).

    Raises:
        DataError: "<file>: the header declares ..., but the file holds only ... bytes".
    """
    size = os.stat(path).st_size if stored is None else stored
    if declared > (size * expansion if expansion <= 1 else max(size * expansion, SMALL_DECODED)):
        ratio = f" (compressed at most {expansion:g}:1, or {SMALL_DECODED >> 20} MiB)" if expansion > 1 else ""
        raise DataError(
            f"{display_name(path)}: the header declares {what} ({declared:,} bytes), but the file holds only "
            f"{size:,} bytes{ratio}: truncated, corrupt or a size bomb"
        )


def reason(err: BaseException, limit: int = 240) -> str:
    """An exception as one short line, `Type: text` (newlines folded, long text cut)."""
    text = " ".join(str(err).split())
    try:  # file names that are not UTF-8 (surrogate escapes) shown as \xNN, as `display_name` does
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class CountsSkips:
    """The dataset contract's skip methods for a file dataset that holds a `Skips` as `self._skips`.

    Put it before `SampleDataset` in the bases. `item_name(j)` names item j in the report (default:
    the display name of `self.samples[j][0]`, the file of a `(path, label)` sample).
    """

    _skips: Skips

    def item_name(self, index: int) -> str:
        return display_name(self.samples[index][0])  # type: ignore[attr-defined]

    def skipped(self) -> int:
        """Distinct unusable items skipped so far, across all DataLoader workers."""
        return self._skips.count()

    def skip_report(self) -> str:
        """One line: the skip count and the first skipped names."""
        return self._skips.report(self.item_name)

    def skipped_indices(self) -> list[int]:
        """The items skipped so far, ascending (evaluation drops them from its scores)."""
        return self._skips.indices()
