"""Training metrics: a CSV file (flushed every row), optional TensorBoard scalars, a progress bar.

Only rank 0 logs; other ranks build a disabled logger so the training loop has no branches.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

METRICS_FILE = "metrics.csv"
log = logging.getLogger(__name__)


class MetricsLogger:
    """Appends one row per logged step to ``out_dir/metrics.csv`` and, optionally, TensorBoard.

    The CSV header is written once, from the first row's keys: every metric an objective returns
    (e.g. each loss part) must be present from the first logged step on. A resumed run appends
    under the existing header (a redone step appears twice: its last row is the one that
    counts); keys missing from the header are left out of the CSV, with one warning naming
    them, and still reach TensorBoard.

    Args:
        out_dir: run directory.
        append: keep an existing metrics.csv (resume); False starts a new one.
        tensorboard: also write ``train/<key>`` scalars to ``out_dir/tensorboard``.
        enabled: False makes every call a no-op (ranks other than 0).
    """

    def __init__(self, out_dir: str | os.PathLike[str], *, append: bool, tensorboard: bool, enabled: bool = True):
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
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), None)
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


def progress_bar(total: int, initial: int, *, enabled: bool) -> tqdm:
    """A tqdm bar over optimizer steps (shows step/total and the ETA); disabled off rank 0."""
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The rows of a metrics.csv as floats (empty cells are skipped)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
