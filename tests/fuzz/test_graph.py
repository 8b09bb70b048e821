"""Fuzz: every kind of bad input (`bad_inputs.KINDS`) fed to the graph readers, as `anymae pretrain` reads them.

Four formats, each through `graph_folder` (`build_dataset`, what pretraining and the probes build):
an edge list with feature and label tables (CSV / `.npy`), TUDataset raw text, Planetoid's pickled
`ind.*` files, a networkx file (GraphML). A graph is read whole when the dataset is built, so a bad
file is a one-line `DataError` naming it (there is no per-item skip). Declared-size bombs are
refused before anything is allocated (`bounded_memory`); nothing is unpickled outside the format.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from anymae.datasets.skips import DataError
from anymae.datasets.sources import build_dataset
from anymae.modalities.graph_data import stochastic_block_graph
from tests.datasets.graph.test_files import write_planetoid, write_tu
from tests.fuzz.bad_inputs import (
    assert_named_error,
    bounded_memory,
    make_dangling_link,
    make_dir_named_like_file,
    make_escape_link,
    make_link_loop,
    non_utf8_path,
    write_empty,
    write_random,
)

pytestmark = pytest.mark.timeout(60)
NX = pytest.importorskip("networkx")


def _edge_folder(root: Path) -> Path:
    g = stochastic_block_graph((5, 5), 0.6, 0.1, 4, generator=torch.Generator().manual_seed(0))
    root.mkdir(parents=True, exist_ok=True)
    (root / "edges.csv").write_text("src,dst\n" + "".join(f"{a},{b}\n" for a, b in g.edge_index.T.tolist()))
    np.save(root / "features.npy", g.x.numpy())
    (root / "labels.csv").write_text("node,label\n" + "".join(f"{i},{int(v)}\n" for i, v in enumerate(g.y)))
    return root


def _graphml(root: Path, name: str = "g.graphml") -> Path:
    graph = NX.Graph()
    for i in range(6):
        graph.add_node(i, x=f"[{i}.0, 1.0]", y=i % 2)
    graph.add_edges_from([(i, i + 1) for i in range(5)])
    root.mkdir(parents=True, exist_ok=True)
    NX.write_graphml(graph, root / name)
    return root / name


def _tu(root: Path) -> Path:
    write_tu(root, attributes=True)
    return root


def _planetoid(root: Path) -> Path:
    write_planetoid(root, n_all=20, n_test=4)
    return root


FORMATS: dict[str, tuple[Callable[[Path], Path], list[str]]] = {  # maker, the files to spoil
    "edge_list": (_edge_folder, ["edges.csv", "features.npy", "labels.csv"]),
    "tu": (_tu, ["TOY_A.txt", "TOY_graph_indicator.txt", "TOY_node_labels.txt"]),
    "planetoid": (_planetoid, ["ind.toy.allx", "ind.toy.graph", "ind.toy.test.index"]),
    "networkx": (lambda root: _graphml(root).parent, ["g.graphml"]),
}
CASES = [(fmt, name) for fmt, (_, names) in FORMATS.items() for name in names]
MODEL = {"in_dim": 5}


def _build(root: Path) -> object:
    return build_dataset({"source": "graph_folder", "root": str(root)}, split="pretrain", model_config=MODEL)


def _cut_mid_row(data: bytes) -> bytes:
    """Text cut just after a separator in its second half (a row left with one value); binary: the first half."""
    for sep in (b",", b" ", b">"):
        at = data.find(sep, len(data) // 2)
        if at > 0 and data[:at].isascii() and data.count(b"\n") > 1:
            return data[: at + 1]
    return data[: len(data) // 2]


def _other_format(name: str, folder: Path) -> bytes:
    """A good file of another format: an .npy for text names, a text table for binary ones."""
    if name.endswith((".csv", ".txt", ".graphml", "test.index")):
        np.save(folder / "_other.npy", np.eye(3))
        return (folder / "_other.npy").read_bytes()
    return b"src,dst\n0,1\n1,2\n"


@pytest.mark.parametrize("kind", ["empty", "truncated", "random_bytes", "wrong_extension", "symlink_loop",
                                  "unreadable_dir", "unreadable_link"])
@pytest.mark.parametrize("fmt, name", CASES)
def test_a_spoiled_file_is_a_named_one_line_error(tmp_path: Path, fmt: str, name: str, kind: str) -> None:
    root = FORMATS[fmt][0](tmp_path / "data")
    _build(root)  # the good data reads
    target = root / name
    good = target.read_bytes()
    other = _other_format(name, tmp_path)
    target.unlink()
    if kind == "empty":
        write_empty(target)
    elif kind == "truncated":
        target.write_bytes(_cut_mid_row(good))
    elif kind == "random_bytes":
        write_random(target, seed=len(name))
    elif kind == "wrong_extension":
        target.write_bytes(other)
    elif kind == "symlink_loop":
        make_link_loop(root, name)
    elif kind == "unreadable_dir":
        make_dir_named_like_file(root, name)
    else:
        make_dangling_link(root, name)
    with bounded_memory(200):
        message = assert_named_error(lambda: _build(root), target, error=DataError)
    expected = {"empty": "empty", "symlink_loop": "looping symbolic link", "unreadable_dir": "directory",
                "unreadable_link": "dangling symbolic link"}.get(kind)
    assert expected is None or expected in message, message


def _npy_header(path: Path, shape: tuple[int, ...], descr: str = "<f4", *remove: str) -> Path:
    """A .npy header declaring `shape` and no data (`remove`: files of the folder to delete first)."""
    for name in remove:
        os.remove(path.parent / name)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
    return path


def _pickle(path: Path, value: object) -> Path:
    path.write_bytes(pickle.dumps(value))
    return path


def _features(root: Path, value: np.ndarray) -> Path:
    np.save(root / "features.npy", value)
    return root / "features.npy"


def _write(path: Path, text: str | bytes, *remove: str) -> Path:
    for name in remove:
        os.remove(path.parent / name)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _edges_npy(root: Path, value: np.ndarray, *remove: str) -> Path:
    for name in ("edges.csv", *remove):
        os.remove(root / name)
    np.save(root / "edges.npy", value)
    return root / "edges.npy"


def _graphml_nan(root: Path) -> Path:
    path = root / "g.graphml"
    return _write(path, path.read_text().replace("[3.0, 1.0]", "[nan, 1.0]"))


def _empty_graphml(root: Path) -> Path:
    NX.write_graphml(NX.Graph(), root / "g.graphml")
    return root / "g.graphml"


LATIN1_LABELS = ("node,club\n" + "".join(f"{i},Gr\xfcn\n" for i in range(10))).encode("latin-1")
NDARRAY_CALL = b"\x80\x04cnumpy\nndarray\n(J\x00\xe4\x0bT\x85tR."  # numpy.ndarray((200_000_000_000,)) by hand

SPECIAL: dict[str, tuple[str, Callable[[Path], Path], str]] = {  # format, spoil(root) -> the bad file, text expected
    "nan_feature_npy": ("edge_list", lambda r: _features(r, np.where(np.eye(10, 4) > 0, np.nan, 0.0)),
                        "row 1 holds a NaN or infinite"),
    "inf_feature_csv": ("edge_list", lambda r: _write(r / "features.csv", "a,b\n" + "1,2\n" * 7 + "1,inf\n"
                                                      + "1,2\n" * 2, "features.npy"), "row 8 holds a NaN or infinite"),
    "nan_edge_id": ("edge_list", lambda r: _edges_npy(r, np.array([[0.0, 1.0], [np.nan, 2.0]])),
                    "row 2 holds a non-integer value where ids are expected"),
    "nan_tu_attribute": ("tu", lambda r: _write(r / "TOY_node_attributes.txt", "1, 2\n" * 4 + "nan, 1\n" * 5,
                                                "TOY_node_labels.txt"), "row 5 holds a NaN"),
    "nan_planetoid": ("planetoid", lambda r: _pickle(r / "ind.toy.allx", sp.csr_matrix(np.where(np.eye(20, 5) > 0,
                                                                                               np.inf, 0.0))),
                      "row 1 holds a NaN or infinite"),
    "nan_graphml": ("networkx", _graphml_nan, "row 4 holds a NaN"),
    "zero_rows": ("edge_list", lambda r: _features(r, np.zeros((0, 4))), "expected an N×F table (N, F > 0)"),
    "zero_columns": ("edge_list", lambda r: _features(r, np.zeros((10, 0))), "expected an N×F table (N, F > 0)"),
    "zero_nodes": ("edge_list", lambda r: _edges_npy(r, np.zeros((0, 2)), "features.npy", "labels.csv"),
                   "the graph has no nodes"),
    "zero_tu_nodes": ("tu", lambda r: _write(r / "TOY_graph_indicator.txt", "graph\n"), "holds no rows"),
    "zero_planetoid_width": ("planetoid", lambda r: _pickle(r / "ind.toy.allx", sp.csr_matrix((20, 0))), "no columns"),
    "zero_graphml": ("networkx", _empty_graphml, "has no nodes"),
    "bomb_features_npy": ("edge_list", lambda r: _npy_header(r / "features.npy", (10**9, 10**9)), "header declares"),
    "bomb_edges_npy": ("edge_list", lambda r: _npy_header(r / "edges.npy", (10**10, 2), "<i8", "edges.csv"),
                       "header declares"),
    "bomb_planetoid_sparse": ("planetoid", lambda r: _pickle(r / "ind.toy.allx", sp.csr_matrix((20, 10**9))),
                              "declares a 20×1000000000 feature"),
    "bomb_planetoid_ndarray": ("planetoid", lambda r: _write(r / "ind.toy.ally", NDARRAY_CALL),
                               "not a readable Planetoid pickle (TypeError"),
    "latin1_labels": ("edge_list", lambda r: _write(r / "labels.csv", LATIN1_LABELS), "not UTF-8 text (byte 0xfc"),
    "string_npy_features": ("edge_list", lambda r: _features(r, np.array([["a"] * 4] * 10)), "<U1"),
    "object_npy_labels": ("edge_list", lambda r: _npy_header(r / "labels.npy", (10,), "|O", "labels.csv"), "object"),
}


@pytest.mark.parametrize("case", sorted(SPECIAL))
def test_nan_zero_size_bombs_and_strings_are_named(tmp_path: Path, case: str) -> None:
    fmt, spoil, expected = SPECIAL[case]
    root = FORMATS[fmt][0](tmp_path / "data")
    bad = spoil(root)
    with bounded_memory(100):
        message = assert_named_error(lambda: _build(root), bad, error=DataError)
    assert expected in message, message


def test_non_utf8_names_read_and_are_named(tmp_path: Path) -> None:
    good = _graphml(tmp_path, os.fsdecode(non_utf8_path(tmp_path, ".graphml").name))
    assert build_dataset({"source": "graph_folder", "root": str(good)}, split="test", model_config={"in_dim": 2})[0][
        0].num_nodes == 6
    edges = non_utf8_path(tmp_path, ".csv")
    edges.write_text("0,1\n1,2\n")
    assert _build(edges)[0][0].num_nodes == 3  # an edge file as the root
    write_random(edges)
    message = assert_named_error(lambda: _build(edges), edges, error=DataError)
    assert "\\xff\\xfe" in message and "not UTF-8 text" in message  # shown, not a UnicodeEncodeError
    write_random(good)
    assert "not a readable .graphml graph" in assert_named_error(lambda: _build(good), good, error=DataError)


def test_a_link_out_of_the_root_is_not_read(tmp_path: Path) -> None:
    outside = _edge_folder(tmp_path / "outside")
    root = tmp_path / "data"
    root.mkdir()
    make_escape_link(root, outside)  # root/escape -> a good edge folder elsewhere
    message = assert_named_error(lambda: _build(root), root, error=DataError)
    assert "no graph data recognized" in message
    loop = root / "loop.graphml"
    make_link_loop(root, loop.name)
    assert "looping symbolic link" in assert_named_error(lambda: _build(loop), loop, error=DataError)


def test_a_planted_planetoid_pickle_runs_nothing(tmp_path: Path) -> None:
    root = _planetoid(tmp_path / "data")
    marker = tmp_path / "ran"
    (root / "ind.toy.graph").write_bytes(f"cos\nsystem\n(Vtouch {marker}\ntR.".encode())  # protocol 0 by hand
    assert "refused to unpickle the global os.system" in assert_named_error(
        lambda: _build(root), root / "ind.toy.graph", error=DataError)
    assert not marker.exists()
