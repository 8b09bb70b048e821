"""Planetoid citation graphs (Cora, CiteSeer, PubMed) from their raw `ind.NAME.*` files, never downloading.

The raw files are Python pickles (the format's own: scipy sparse feature matrices, numpy one-hot
label arrays, a dict of neighbour lists). Unpickling runs whatever a file names, so they are read
with `ArrayUnpickler`, which resolves only the globals these files hold (numpy arrays, dtypes and
their reconstruction helpers, scipy sparse matrices, list / dict / defaultdict) and refuses every
other global with a `GraphDataError` naming the file and the global: a planted file cannot run
code. Nothing else in the package unpickles data files (`.npy` files are read with
`allow_pickle=False`).
"""

from __future__ import annotations

import builtins
import collections
import copyreg
import importlib
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anymae.datasets.graph.readers import to_undirected
from anymae.datasets.graph.tables import GraphDataError, check_features, read_table
from anymae.datasets.scan import display_name
from anymae.datasets.skips import check_file, file_problem, reason
from anymae.modalities.graph_data import Graphs, without_self_loops

PLANETOID_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
VAL_NODES = 500  # the standard split: the 500 nodes after the training nodes validate
MAX_DENSE_ENTRIES = 2**28  # features are densified: refuse a declared matrix larger (Cora: 2.4M, PubMed 9.9M)

_SPARSE = frozenset({"csr_matrix", "csc_matrix", "coo_matrix", "lil_matrix", "csr_array", "csc_array", "coo_array",
                     "lil_array"})
_BUILTINS = frozenset({"list", "dict", "tuple", "set", "frozenset", "object"})
_NUMPY_HELPERS = {"multiarray": ("_reconstruct", "scalar"), "numeric": ("_frombuffer",)}


class _NdarrayToken:
    """Stands for `numpy.ndarray` in a pickle: the format names it only as `_reconstruct`'s first
    argument; calling it (an allocation of any declared size) is refused."""


def _numpy_helper(kind: str, name: str) -> Any:
    """numpy's pickle helper `name` of `numpy._core.<kind>` (numpy 2) or `numpy.core.<kind>` (numpy 1)."""
    for module in (f"numpy._core.{kind}", f"numpy.core.{kind}"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {kind}.{name}")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's `_reconstruct` for plain arrays only; the data and real shape come with `__setstate__`."""
    if subtype is not _NdarrayToken:
        raise pickle.UnpicklingError(f"array reconstruction of {getattr(subtype, '__name__', subtype)!r}, "
                                     "expected numpy.ndarray")
    return _numpy_helper("multiarray", "_reconstruct")(np.ndarray, (0,), dtype)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for bytes (latin-1 only)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}: only latin1 byte strings are expected")
    return text.encode("latin1")


def _allowed_global(module: str, name: str) -> Callable[[], Any] | None:
    """How to resolve the global `module.name` when the Planetoid format holds it, else None.
    Python 2 spellings (`__builtin__`, `copy_reg`, `numpy.core`, `scipy.sparse.csr`) included."""
    if module in ("builtins", "__builtin__") and name in _BUILTINS:
        return lambda: getattr(builtins, name)
    if module in ("copyreg", "copy_reg") and name == "_reconstructor":
        return lambda: copyreg._reconstructor  # type: ignore[attr-defined]
    if module == "collections" and name in ("defaultdict", "OrderedDict"):
        return lambda: getattr(collections, name)
    if module == "_codecs" and name == "encode":
        return lambda: _latin1_encode
    if module == "numpy" and name in ("ndarray", "dtype"):
        return lambda: _NdarrayToken if name == "ndarray" else np.dtype
    for kind, names in _NUMPY_HELPERS.items():
        if module in (f"numpy.core.{kind}", f"numpy._core.{kind}") and name in names:
            return lambda: _reconstruct if name == "_reconstruct" else _numpy_helper(kind, name)
    if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE:
        return lambda: getattr(importlib.import_module("scipy.sparse"), name)
    return None


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of array files (see the module doc)."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="latin1")  # Planetoid's files were written by Python 2
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        resolve = _allowed_global(module, name)
        if resolve is None:
            raise GraphDataError(
                f"{display_name(self.path)}: refused to unpickle the global {module}.{name} (a Planetoid file holds "
                "only numpy arrays, scipy sparse matrices and lists / dicts of them; the file may be malicious)"
            )
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise GraphDataError(f"{display_name(self.path)}: refused a persistent id in the pickle (not a Planetoid file)")


def load_array_pickle(path: Path) -> Any:
    """The object pickled in `path`, through `ArrayUnpickler`.

    Raises:
        GraphDataError: a refused global, or a file that is not a readable pickle (one line, naming the file).
    """
    check_file(path, "Planetoid file")
    try:
        with open(path, "rb") as f:
            return ArrayUnpickler(f, path).load()  # type: ignore[arg-type]
    except GraphDataError:
        raise
    except Exception as err:  # any failure while decoding untrusted bytes is a bad file
        raise GraphDataError(f"{display_name(path)}: not a readable Planetoid pickle ({reason(err)})") from None


# ---------------------------------------------------------------- the dataset


def planetoid_name(root: Path) -> str:
    """The NAME of `ind.NAME.x` in `root` (or `root/raw`, PyG's layout)."""
    found = sorted({p.name.split(".")[1] for p in root.glob("ind.*.x")})
    if len(found) != 1:
        raise GraphDataError(f"{root}: expected one Planetoid dataset (files ind.NAME.x ...), found {found or 'none'}")
    return found[0]


def _planetoid_dir(root: Path) -> Path:
    return root / "raw" if not list(root.glob("ind.*")) and (root / "raw").is_dir() else root


def _sparse_entries(value: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, values) of a csr / csc / coo / lil matrix, read with numpy only: a planted
    matrix's inconsistent internals must fail here, not inside scipy's unchecked C++ loops."""
    fmt = getattr(value, "format", None)
    if fmt in ("csr", "csc"):
        indptr, minor = np.asarray(value.indptr), np.asarray(value.indices)
        major = value.shape[0 if fmt == "csr" else 1]
        if indptr.ndim != 1 or len(indptr) != major + 1 or indptr[0] != 0 or (np.diff(indptr) < 0).any() \
                or indptr[-1] != len(minor):
            raise ValueError(f"inconsistent {fmt} index pointers")
        majors = np.repeat(np.arange(major), np.diff(indptr))
        rows, cols = (majors, minor) if fmt == "csr" else (minor, majors)
        return rows, cols, np.asarray(value.data)
    if fmt == "coo":
        return np.asarray(value.row), np.asarray(value.col), np.asarray(value.data)
    if fmt == "lil":
        rows = [i for i, r in enumerate(value.rows) for _ in r]
        cols = [c for r in value.rows for c in r]
        return np.asarray(rows), np.asarray(cols), np.asarray([v for d in value.data for v in d])
    raise ValueError(f"sparse format {fmt!r}")


def _matrix(value: Any, path: Path, what: str, *, rows: int | None = None, sparse: bool = True) -> np.ndarray:
    """A 2-D float64 array (rows × columns) from a pickled ndarray or (when `sparse`) a csr / csc /
    coo / lil matrix. `rows` (when given) and the declared size are checked before densifying.
    """
    shape = getattr(value, "shape", None)
    is_sparse = sparse and hasattr(value, "format") and not isinstance(value, np.ndarray)
    if not (is_sparse or isinstance(value, np.ndarray)) or not isinstance(shape, tuple) or len(shape) != 2 \
            or not all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape):
        raise GraphDataError(f"{display_name(path)}: expected a 2-D {what} matrix, got {type(value).__name__}"
                             + (f" of shape {shape}" if shape is not None else ""))
    if shape[1] == 0:
        raise GraphDataError(f"{display_name(path)}: a {shape[0]}×0 {what} matrix: no columns")
    if rows is not None and shape[0] != rows:
        raise GraphDataError(f"{display_name(path)}: {shape[0]} {what} rows, expected {rows}")
    if int(shape[0]) * int(shape[1]) > MAX_DENSE_ENTRIES:
        raise GraphDataError(f"{display_name(path)}: declares a {shape[0]}×{shape[1]} {what} matrix, more than "
                             f"{MAX_DENSE_ENTRIES} entries")
    if not is_sparse:
        if value.dtype.kind not in "biuf":
            raise GraphDataError(f"{display_name(path)}: {what} matrix of dtype {value.dtype}, expected numbers")
        return np.asarray(value, dtype=np.float64)
    try:
        r, c, v = _sparse_entries(value)
        if not (r.shape == c.shape == v.shape and r.ndim == 1) or v.dtype.kind not in "biuf" \
                or (r.size and (r.min() < 0 or r.max() >= shape[0] or c.min() < 0 or c.max() >= shape[1])):
            raise ValueError("entries outside the declared shape or not numeric")
        dense = np.zeros(shape, dtype=np.float64)
        np.add.at(dense, (r.astype(np.int64), c.astype(np.int64)), v.astype(np.float64))
    except (ValueError, TypeError, AttributeError, IndexError) as err:
        raise GraphDataError(f"{display_name(path)}: not a valid sparse {what} matrix ({reason(err)})") from None
    return dense


def _neighbour_dict(value: Any, path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(sources, targets) of the `ind.NAME.graph` dict {node: [neighbours]}, ids checked in 0..n-1."""
    if not isinstance(value, dict):
        raise GraphDataError(f"{display_name(path)}: expected a dict of neighbour lists, got {type(value).__name__}")
    total = sum(len(v) if hasattr(v, "__len__") else 0 for v in value.values())
    if total > path.stat().st_size:  # a list costs >= 1 byte per entry unless one list is referenced many times
        raise GraphDataError(f"{display_name(path)}: lists {total} neighbours, more than the file's "
                             f"{path.stat().st_size} bytes can hold (a list repeated by reference)")
    src: list[int] = []
    dst: list[int] = []
    for key, neighbours in value.items():
        if not isinstance(neighbours, (list, tuple, set, np.ndarray)):
            raise GraphDataError(f"{display_name(path)}: node {key!r} lists {type(neighbours).__name__}, "
                                 "expected a list")
        for v in [key, *neighbours]:
            if not isinstance(v, (int, np.integer)) or not 0 <= int(v) < n:
                raise GraphDataError(f"{display_name(path)}: node {key!r} lists neighbour/id {v!r} outside 0..{n - 1}")
        src += [int(key)] * len(neighbours)
        dst += [int(v) for v in neighbours]
    return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)


def read_planetoid(root: str | Path, name: str | None = None) -> Graphs:
    """A Planetoid citation graph (Cora, CiteSeer, PubMed) from its raw files, never downloading.

    Reads `ind.NAME.{x,tx,allx,y,ty,ally,graph,test.index}` in `root` (or `root/raw`) with
    `ArrayUnpickler`, checks them and assembles the standard split: the `len(y)` first nodes
    train, the next 500 validate, the ids of `test.index` test (140/500/1000 for Cora). Row k of
    `tx` / `ty` is node `test.index[k]`; ids between the `allx` rows and the largest test id that
    no file describes (CiteSeer's isolated nodes) get zero features and label -1 (unknown).
    Labels are the argmax of the one-hot rows. Edges are made undirected, self-loops dropped.
    """
    folder = _planetoid_dir(Path(root))
    name = name or planetoid_name(folder)
    files = {p: folder / f"ind.{name}.{p}" for p in PLANETOID_PARTS}
    missing = [f.name for f in files.values() if file_problem(f) == "does not exist"]
    if missing:
        raise GraphDataError(f"{folder}: Planetoid raw files missing: {', '.join(missing)} (nothing is downloaded)")
    parts = {p: load_array_pickle(files[p]) for p in PLANETOID_PARTS[:-1]}
    mats: dict[str, np.ndarray] = {}
    for feats, labels in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        mats[labels] = _matrix(parts[labels], files[labels], "one-hot label", sparse=False)
        mats[feats] = _matrix(parts[feats], files[feats], f"feature (one per row of {files[labels].name})",
                              rows=len(mats[labels]))
        check_features(mats[feats], files[feats])
    allx, tx, ally, ty = mats["allx"], mats["tx"], mats["ally"], mats["ty"]
    if tx.shape[1] != allx.shape[1] or ty.shape[1] != ally.shape[1]:
        raise GraphDataError(f"{display_name(files['tx'])}: {tx.shape[1]} feature / {ty.shape[1]} label columns, "
                             f"{files['allx'].name} has {allx.shape[1]} / {ally.shape[1]}")
    test_index = read_table(files["test.index"], dtype=int, columns=1)[:, 0]  # row k of tx = node test_index[k]
    n_all = len(allx)
    n = max(n_all + len(tx), int(test_index.max()) + 1) if test_index.size else n_all + len(tx)
    if len(test_index) != len(tx) or len(np.unique(test_index)) != len(test_index) or (test_index < n_all).any():
        raise GraphDataError(f"{display_name(files['test.index'])}: expected {len(tx)} distinct ids >= {n_all} "
                             f"(one per row of {files['tx'].name}, after the {n_all} rows of {files['allx'].name})")
    if n == 0:
        raise GraphDataError(f"{display_name(files['allx'])}: no nodes in {files['allx'].name} or {files['tx'].name}")
    x = np.zeros((n, allx.shape[1]), dtype=np.float32)  # N×F
    x[:n_all], x[test_index] = allx, tx
    y = np.full(n, -1, dtype=np.int64)  # N; -1: a node no file describes
    y[:n_all], y[test_index] = ally.argmax(axis=1), ty.argmax(axis=1)
    src, dst = _neighbour_dict(parts["graph"], files["graph"], n)
    edge_index = without_self_loops(to_undirected(torch.from_numpy(np.stack([src, dst]))))  # 2×E
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    n_train = len(mats["y"])
    masks[0][:n_train] = True
    masks[1][n_train : n_train + VAL_NODES] = True
    masks[2][torch.from_numpy(test_index)] = True
    return Graphs(x=torch.from_numpy(x), edge_index=edge_index, y=torch.from_numpy(y), train_mask=masks[0],
                  val_mask=masks[1], test_mask=masks[2])
