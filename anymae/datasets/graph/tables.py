"""Tables of graph files: numeric CSV / whitespace text / `.npy` arrays, and node-label tables.

Every failure is a one-line `DataError` naming the file: a path that is no readable file or an
empty one (`skips.check_file`), text that is not UTF-8, a row that is not numeric, a `.npy` that
is not an array of numbers or declares more data than it holds (`multichannel.io.load_npy`: the
header is checked before anything is allocated, nothing is unpickled). Graph-level mistakes
(a row out of range, counts that disagree) are `GraphDataError`s.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from anymae.datasets.multichannel.io import load_npy
from anymae.datasets.scan import display_name
from anymae.datasets.skips import DataError, check_file, reason


class GraphDataError(DataError):
    """Graph files that cannot be read as claimed; the message names the file and the row."""


def check_features(x: np.ndarray, path: Path | str) -> None:
    """Raise a GraphDataError naming the first row of `x` (N×F) holding a NaN or an infinity."""
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise GraphDataError(f"{display_name(path)}: row {row + 1} holds a NaN or infinite feature value")


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_int(text: str) -> int | None:
    """The whole number `text` spells ("3", "3.0"), else None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _integer(text: str) -> bool:
    return _as_int(text) is not None


def _text_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of each non-empty line: comma- or tab-separated (csv quoting), else whitespace."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as err:
        raise GraphDataError(f"{display_name(path)}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                             f"{err.start}); save the table as UTF-8") from None
    except OSError as err:
        raise GraphDataError(f"{display_name(path)}: cannot be read ({reason(err)})") from None
    rows = []
    for line_no, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        sep = "," if "," in text else "\t" if "\t" in text else None
        cells = next(csv.reader([text], delimiter=sep)) if sep else text.split()
        rows.append((line_no, [c.strip() for c in cells]))
    return rows


def read_table(path: str | Path, *, dtype: type = float, columns: int | None = None) -> np.ndarray:
    """A numeric CSV / whitespace table (an optional header line skipped) or a numeric `.npy` array.

    Returns float64 (`dtype=float`) or int64 (`dtype=int`: every value must be a whole number).

    Raises:
        GraphDataError: not a readable file, not UTF-8, a row not numeric or with the wrong column
            count, a non-numeric or size-inconsistent `.npy`, a non-integer where ids are expected.
    """
    path = Path(path)
    check_file(path, "graph table")
    if path.suffix == ".npy":
        arr = load_npy(path).astype(np.float64)
    else:
        values: list[list[float]] = []
        for index, (line_no, cells) in enumerate(_text_rows(path)):
            cells = [c for c in cells if c != ""]
            if index == 0 and not all(_numeric(c) for c in cells):
                continue  # a header line
            try:
                row = [float(c) for c in cells]
            except ValueError:
                shown = " ".join(cells)[:80]
                raise GraphDataError(f"{display_name(path)}: row {line_no} is not numeric: {shown!r}") from None
            if columns is not None and len(row) != columns:
                raise GraphDataError(f"{display_name(path)}: row {line_no} has {len(row)} values, expected {columns}")
            if values and len(row) != len(values[0]):
                raise GraphDataError(f"{display_name(path)}: row {line_no} has {len(row)} values, "
                                     f"row 1 had {len(values[0])}")
            values.append(row)
        arr = np.asarray(values, dtype=np.float64).reshape(len(values), -1 if values else columns or 0)
    if dtype is int:
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise GraphDataError(f"{display_name(path)}: row {row + 1} holds a non-integer value where ids are "
                                 "expected")
        return arr.astype(np.int64)
    return arr


def class_indices(values: list[str], source: str) -> np.ndarray:
    """Labels as class indices: whole numbers are kept (-1 = unlabelled, "" too); otherwise every
    label is a class name, and the sorted names become 0..C-1 (the mapping is printed).

    Returns:
        N int64.
    """
    known = [v for v in values if v != ""]
    if all(_integer(v) for v in known):
        out = np.asarray([_as_int(v) if v != "" else -1 for v in values], dtype=np.int64)
        if (out < -1).any():
            row = int(np.argmax(out < -1))
            raise GraphDataError(f"{source}: label {out[row]} of node {row}: expected a class index >= 0 "
                                 "(-1 = unlabelled)")
        return out
    names = sorted(set(known))
    index = {name: i for i, name in enumerate(names)}
    shown = ", ".join(f"{name!r}={i}" for name, i in index.items())
    print(f"{source}: class names mapped to indices in sorted order: {shown[:300]}")
    return np.asarray([index[v] if v != "" else -1 for v in values], dtype=np.int64)


def _npy_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(row number, cells as text) of a `.npy` of N labels or N×2 (id, label) whole numbers."""
    arr = load_npy(path)
    table = arr.reshape(len(arr), -1) if arr.ndim else arr.reshape(1, 1)
    if not (np.isfinite(table) & (table == np.round(table))).all():
        raise GraphDataError(f"{display_name(path)}: labels in a .npy must be whole numbers (class indices); "
                             "put class names in a CSV")
    return [(i + 1, [str(v) for v in row]) for i, row in enumerate(table.astype(np.int64).tolist())]


def read_labels(path: str | Path, num_nodes: int) -> Tensor:
    """N node labels (-1 = unlabelled) from a table, by class index or class name (`class_indices`).

    Layouts: one column (row i = node i; a first row that is not an integer is a header when the
    file has one row too many or every other row is an integer), or two columns `node,label` (ids
    0..N-1 map rows to nodes, in any order; nodes not listed stay unlabelled; a first row whose id
    is not an integer is a header). CSV / TSV / whitespace text, or a `.npy` (N, or N×2 ids and labels).
    """
    path = Path(path)
    check_file(path, "label table")
    name = display_name(path)
    rows = _npy_rows(path) if path.suffix == ".npy" else _text_rows(path)
    widths = {len(cells) for _, cells in (rows[1:] or rows)}
    if len(widths) > 1 or not widths <= {1, 2}:
        raise GraphDataError(f"{name}: expected one column (a label per node) or two (node id, label) in every row")
    two = widths == {2}
    first_is_text = bool(rows) and not _integer(rows[0][1][0])
    if first_is_text and (two or len(rows) == num_nodes + 1 or all(_integer(c[0]) for _, c in rows[1:])):
        rows = rows[1:]  # a header line
    if not two:
        if len(rows) != num_nodes:
            raise GraphDataError(f"{name}: {len(rows)} labels for {num_nodes} nodes")
        return torch.from_numpy(class_indices([c[0] for _, c in rows], name))
    row_of = np.full(num_nodes, -1, dtype=np.int64)  # N: the row holding each node's label
    for k, (line_no, cells) in enumerate(rows):
        node = _as_int(cells[0])
        if node is None or not 0 <= node < num_nodes:
            raise GraphDataError(f"{name}: row {line_no}: node id {cells[0]!r} is not an id in 0..{num_nodes - 1} "
                                 "(expected node,label rows)")
        if cells[1] == "":
            raise GraphDataError(f"{name}: row {line_no}: node {cells[0]} has an empty label (leave its row out to "
                                 "leave it unlabelled)")
        if row_of[node] >= 0:
            raise GraphDataError(f"{name}: row {line_no}: node {cells[0]} is labelled twice")
        row_of[node] = k
    labels = class_indices([rows[k][1][1] if k >= 0 else "" for k in row_of], name)
    if (row_of < 0).any():
        print(f"{name}: {int((row_of < 0).sum())} of {num_nodes} nodes are not listed and stay unlabelled")
    return torch.from_numpy(labels)
