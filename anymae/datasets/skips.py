"""Errors or counted skips for datasets of files: one mechanism for every reader.

With `on_error="raise"` an unreadable item raises `DataError` naming the file. With
`on_error="skip"` the next readable index is returned instead (i+1, i+2, ... wrapping), the same
one whichever DataLoader worker asks: each unreadable item is flagged in shared memory that
workers (fork, spawn or forkserver) update, so `count` / `report` in the main process see every
worker's skips exactly, and a flagged item is not read again. Each item is logged once when
first flagged (two workers failing on it in the same instant may both log it). No lock: setting
a byte to 1 is idempotent, and a lock would tie the dataset to one start method. Because of the
shared memory, a dataset holding a `Skips` can be pickled only while starting workers.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from typing import Literal, TypeVar

import numpy as np

logger = logging.getLogger(__name__)

T = TypeVar("T")


class DataError(ValueError):
    """A data file cannot be used; the message names the file and the reason."""

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
            except DataError as err:
                self.mark(j, err)
        raise DataError(f"{self.head}: all {n} {self.noun}s are {self.problem} (on_error='skip')")

    def mark(self, j: int, err: Exception) -> None:
        """Flag item j as unreadable (logged once)."""
        if not self._bad[j]:  # another worker may have found it meanwhile and logged it
            self._bad[j] = 1
            logger.warning("skipping %s %s (%s)", self.problem, self.noun, err)

    def is_bad(self, j: int) -> bool:
        return bool(self._bad[j])

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
