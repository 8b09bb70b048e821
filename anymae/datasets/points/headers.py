"""Headers of point-cloud and mesh files, read and checked against the file size before any reader
allocates what they declare (a 40-byte OFF header may announce a billion vertices).

`read_ply_header`, `read_pcd_header` and `read_off_counts` parse a header and return what it
declares; each `check_*` computes the fewest bytes the declared data need (binary rows exactly;
text rows at their shortest, e.g. "0 0 0\\n" for a vertex) and refuses the file with `DataError`
through `skips.check_declared_size` when it is shorter. Binary rows of fixed size are described as
numpy structured dtypes, so the readers can map them (`np.memmap`) instead of loading them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anymae.datasets.scan import display_name
from anymae.datasets.skips import COMPRESSED_EXPANSION, DataError, check_declared_size

MAX_HEADER_BYTES = 1 << 16  # a header longer than this is not a header

_PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
    "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}
_PCD_TYPES: dict[tuple[str, int], str] = {
    ("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
    ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
}


def _header_lines(path: Path, end: tuple[bytes, ...], what: str) -> tuple[list[str], int]:
    """The header's lines up to and including the first one starting with an `end` word, and its byte length."""
    with open(path, "rb") as f:
        head = f.read(MAX_HEADER_BYTES)
    lines, offset = [], 0
    for raw in head.splitlines(keepends=True):
        offset += len(raw)
        line = raw.decode("ascii", "replace").strip()
        lines.append(line)
        if line.split(" ")[0].encode() in end:
            return lines, offset
    raise DataError(f"cannot parse {what} {display_name(path)}: no {end[0].decode()!r} line ending the header "
                    f"in its first {len(head):,} bytes")


@dataclass
class PlyElement:
    """One `element` of a PLY header: its rows and properties (scalar type, or list count/item types)."""

    name: str
    count: int
    scalars: list[tuple[str, str]] = field(default_factory=list)  # (name, numpy type) in order
    lists: list[tuple[str, str, str]] = field(default_factory=list)  # (name, count type, item type)

    def row_dtype(self, endian: str) -> np.dtype | None:
        """The structured dtype of one binary row, or None when a row holds lists (variable size)."""
        if self.lists:
            return None
        return np.dtype([(name, endian + t) for name, t in self.scalars])


@dataclass
class PlyHeader:
    format: str  # "ascii", "binary_little_endian" or "binary_big_endian"
    elements: list[PlyElement]
    size: int  # bytes of the header (data start here)

    @property
    def endian(self) -> str:
        return ">" if self.format == "binary_big_endian" else "<"


def read_ply_header(path: Path) -> PlyHeader:
    """Parse a PLY header (raises `DataError` naming the file for anything that is not one)."""
    lines, size = _header_lines(path, (b"end_header",), "PLY file")
    bad = lambda why: DataError(f"cannot parse PLY file {display_name(path)}: {why}")
    if not lines or lines[0] != "ply":
        raise bad("the first line is not 'ply'")
    fmt, elements = None, []
    for line in lines[1:-1]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append(PlyElement(words[1], int(words[2])))
            elif words[0] == "property" and words[1] == "list":
                elements[-1].lists.append((words[4], _PLY_TYPES[words[2]], _PLY_TYPES[words[3]]))
            elif words[0] == "property":
                elements[-1].scalars.append((words[2], _PLY_TYPES[words[1]]))
            else:
                raise bad(f"unknown header line {line[:60]!r}")
        except (IndexError, ValueError, KeyError) as err:
            if isinstance(err, DataError):
                raise
            raise bad(f"malformed header line {line[:60]!r}") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise bad(f"format {fmt!r}: expected ascii, binary_little_endian or binary_big_endian")
    if any(e.count < 0 for e in elements):
        raise bad("negative element count")
    return PlyHeader(fmt, elements, size)


def check_ply(path: Path, header: PlyHeader) -> None:
    """Refuse a PLY file shorter than its header's elements need (binary: rows × row bytes, lists
    counted at their count field only; ascii: 2 bytes per value, a digit and a separator)."""
    need, what = 0, []
    for e in header.elements:
        if header.format == "ascii":
            need += e.count * 2 * (len(e.scalars) + len(e.lists))
        else:
            need += e.count * (sum(np.dtype(t).itemsize for _, t in e.scalars)
                               + sum(np.dtype(c).itemsize for _, c, _ in e.lists))
        what.append(f"{e.count:,} {e.name}(s)")
    check_declared_size(path, header.size + need, what=", ".join(what) or "no elements")


@dataclass
class PcdHeader:
    fields: list[str]
    dtype: np.dtype  # one row (fields with COUNT > 1 as sub-arrays)
    points: int
    data: str  # "ascii", "binary" or "binary_compressed"
    size: int


def read_pcd_header(path: Path) -> PcdHeader:
    """Parse a PCD (v0.7) header up to its DATA line (raises `DataError` naming the file)."""
    lines, size = _header_lines(path, (b"DATA",), "PCD file")
    bad = lambda why: DataError(f"cannot parse PCD file {display_name(path)}: {why}")
    keys = {ln.split()[0].upper(): ln.split()[1:] for ln in lines if ln and not ln.startswith("#")}
    try:
        fields, sizes, types = keys["FIELDS"], [int(v) for v in keys["SIZE"]], keys["TYPE"]
        counts = [int(v) for v in keys.get("COUNT", ["1"] * len(fields))]
        points = int(keys["POINTS"][0]) if "POINTS" in keys else int(keys["WIDTH"][0]) * int(keys["HEIGHT"][0])
        data = keys["DATA"][0].lower()
        if not len(fields) == len(sizes) == len(types) == len(counts):
            raise bad("FIELDS, SIZE, TYPE and COUNT differ in length")
        names = [n if fields.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(fields)]  # PCD pads with "_"
        dtype = np.dtype([(name, "<" + _PCD_TYPES[(t.upper(), s)], (c,) if c > 1 else ())
                          for name, s, t, c in zip(names, sizes, types, counts, strict=True)])
    except (KeyError, IndexError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise bad(f"incomplete or malformed header ({type(err).__name__}: {err})") from None
    if points < 0 or data not in ("ascii", "binary", "binary_compressed") or min(counts, default=1) < 1:
        raise bad(f"POINTS {points}, DATA {data!r}: expected POINTS >= 0 and DATA ascii, binary or binary_compressed")
    return PcdHeader(fields, dtype, points, data, size)


def check_pcd(path: Path, header: PcdHeader) -> None:
    """Refuse a PCD file shorter than its POINTS need (binary exactly; compressed at most
    `COMPRESSED_EXPANSION`:1; ascii 2 bytes per value)."""
    what = f"{header.points:,} points of {header.dtype.itemsize} bytes"
    if header.data == "binary":
        check_declared_size(path, header.size + header.points * header.dtype.itemsize, what=what)
    elif header.data == "binary_compressed":
        stored = max(0, Path(path).stat().st_size - header.size - 8)
        check_declared_size(path, header.points * header.dtype.itemsize, what=what, stored=stored,
                            expansion=COMPRESSED_EXPANSION)
    else:
        values = sum(int(np.prod(header.dtype[n].shape or (1,))) for n in header.dtype.names or ())
        check_declared_size(path, header.size + header.points * 2 * values, what=what)


def read_off_counts(path: Path) -> tuple[int, int]:
    """(vertices, faces) announced by an OFF header (also ModelNet's glued `OFF490 518 0`)."""
    with open(path, "rb") as f:
        head = f.read(MAX_HEADER_BYTES).decode("ascii", "replace")
    lines = [ln.split("#")[0].strip() for ln in head.splitlines()]
    lines = [ln for ln in lines if ln]
    bad = lambda why: DataError(f"cannot parse OFF file {display_name(path)}: {why}")
    if not lines or not lines[0].upper().startswith("OFF"):
        raise bad("no 'OFF' header line")
    counts = lines[0][3:].split() or (lines[1].split() if len(lines) > 1 else [])
    try:
        nv, nf = int(counts[0]), int(counts[1])
    except (IndexError, ValueError):
        raise bad(f"expected 'vertices faces edges' counts after OFF, found {' '.join(counts)[:60]!r}") from None
    if nv < 0 or nf < 0:
        raise bad(f"negative counts {nv} vertices, {nf} faces")
    return nv, nf


def check_off(path: Path) -> tuple[int, int]:
    """Refuse an OFF file shorter than its counts need ("0 0 0\\n" per vertex, "3 0 1 2\\n" per face)."""
    nv, nf = read_off_counts(path)
    check_declared_size(path, 6 * nv + 8 * nf, what=f"{nv:,} vertices and {nf:,} faces")
    return nv, nf
