"""Training metrics: a CSV file (flushed every row), optional TensorBoard scalars, a progress bar.

Only rank 0 logs; other ranks build a disabled logger so the training loop has no branches.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from anymae.core.io import atomic_write

METRICS_FILE = "metrics.csv"
log = logging.getLogger(__name__)


class MetricsLogger:
    """Appends one row per logged step to ``out_dir/metrics.csv`` and, optionally, TensorBoard.

    The CSV header is written once, from the first row's keys: every metric an objective returns
    (e.g. each loss part) must be present from the first logged step on. A resumed run appends
    under the existing header, after dropping the rows of steps after ``keep_until`` (the
    checkpoint's step: those steps are redone, so each step keeps one row); keys missing from the
    header are left out of the CSV, with one warning naming them, and still reach TensorBoard.

    Args:
        out_dir: run directory.
        append: keep an existing metrics.csv (resume); False starts a new one.
        keep_until: with ``append``, the rows whose step is above it are dropped first (rewritten
            atomically); None keeps every row.
        tensorboard: also write ``train/<key>`` scalars to ``out_dir/tensorboard``.
        enabled: False makes every call a no-op (ranks other than 0).
    """

    def __init__(self, out_dir: str | os.PathLike[str], *, append: bool, tensorboard: bool, enabled: bool = True,
                 keep_until: int | None = None):
        self.enabled = enabled
        self.path = Path(out_dir) / METRICS_FILE
        self._file: Any = None
        self._writer: csv.DictWriter[str] | None = None
        self._tb: Any = None
        self._dropped: set[str] = set()
        if not enabled:
            return
        header = None
        if append and self.path.is_file() and self.path.stat().st_size > 0:
            header = _keep_rows_until(self.path, keep_until)
        self._file = open(self.path, "a" if header else "w", newline="")  # noqa: SIM115 (closed in close())
        if header:
            self._writer = csv.DictWriter(self._file, fieldnames=header, extrasaction="ignore", restval="")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # optional and slow to import

            self._tb = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))

    def log(self, row: dict[str, int | float]) -> None:
        """Write ``row`` (must hold ``step``); numbers only, NaN allowed."""
        if not self.enabled:
            return
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=list(row), extrasaction="ignore", restval="")
            self._writer.writeheader()
        new = [key for key in row if key not in self._writer.fieldnames and key not in self._dropped]
        if new:
            self._dropped.update(new)
            log.warning("metrics %s are not columns of %s (its header: %s); they are not written there",
                        new, self.path, ", ".join(self._writer.fieldnames))
        self._writer.writerow(row)
        self._file.flush()
        if self._tb is not None:
            for key, value in row.items():
                if key != "step" and math.isfinite(value):
                    self._tb.add_scalar(f"train/{key}", value, global_step=int(row["step"]))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _keep_rows_until(path: Path, last_step: int | None) -> list[str] | None:
    """Drop the rows of ``path`` whose step is above ``last_step`` (rewritten atomically); its header."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0] if rows else None
    if header is None or last_step is None or "step" not in header:
        return header
    col = header.index("step")

    def keep(row: list[str]) -> bool:
        try:
            return float(row[col]) <= last_step
        except (IndexError, ValueError):  # a row cut by a kill: not a step that counts
            return False

    kept = [header, *(row for row in rows[1:] if keep(row))]
    if len(kept) < len(rows):
        text = io.StringIO(newline="")
        csv.writer(text).writerows(kept)
        with atomic_write(path, "wb") as f:
            f.write(text.getvalue().encode())
        log.info("dropped %d row(s) of %s after step %d (redone after the resume)", len(rows) - len(kept),
                 path, last_step)
    return header


def progress_bar(total: int, initial: int, *, enabled: bool) -> tqdm:
    """A tqdm bar over optimizer steps (shows step/total and the ETA); disabled off rank 0."""
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The rows of a metrics.csv as floats (empty cells are skipped)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
