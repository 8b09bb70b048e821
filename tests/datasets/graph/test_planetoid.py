"""Planetoid files are read by a restricted unpickler: planted pickles run nothing, real ones load."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from anymae.datasets.graph.planetoid import load_array_pickle, read_planetoid
from anymae.datasets.graph.tables import GraphDataError
from anymae.datasets.sources import build_dataset
from tests.datasets.graph.test_files import write_planetoid
from tests.fuzz.bad_inputs import assert_named_error


class _Planted:
    """Pickles as a call of `func(*args)`: what a malicious file does."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def _plant(path: Path, value: object, protocol: int = 4) -> None:
    with open(path, "wb") as f:
        pickle.dump(value, f, protocol=protocol)


@pytest.mark.parametrize("part", ["x", "ally", "graph"])
def test_a_planted_pickle_runs_nothing_and_names_the_file_and_global(tmp_path: Path, part: str) -> None:
    write_planetoid(tmp_path)
    marker = tmp_path / "ran.txt"
    payload = _Planted(os.system, f"touch {marker}")
    # nested inside a legitimate-looking structure too: a dict of lists holding the call
    _plant(tmp_path / f"ind.toy.{part}", {0: [payload]} if part == "graph" else payload)
    message = assert_named_error(lambda: read_planetoid(tmp_path), tmp_path / f"ind.toy.{part}")
    assert "refused to unpickle the global posix.system" in message
    with pytest.raises(GraphDataError, match=rf"ind\.toy\.{part}: refused .* posix\.system"):
        build_dataset({"source": "graph_folder", "root": str(tmp_path)}, split="pretrain", model_config={"in_dim": 5})
    assert not marker.exists()


@pytest.mark.parametrize("func, args, shown", [
    (eval, ("1 + 1",), "builtins.eval"),
    (getattr, (dict, "fromkeys"), "builtins.getattr"),  # the classic escape through an allowed type
    (np.load, ("x.npy",), "numpy.load"),  # an allowed module, a name outside the format
    (sp.load_npz, ("x.npz",), "scipy.sparse._matrix_io.load_npz"),
])
def test_every_global_outside_the_format_is_refused(tmp_path: Path, func: object, args: tuple, shown: str) -> None:
    _plant(tmp_path / "ind.toy.x", _Planted(func, *args))
    message = assert_named_error(lambda: load_array_pickle(tmp_path / "ind.toy.x"), tmp_path / "ind.toy.x")
    assert f"refused to unpickle the global {shown}" in message


def test_an_array_allocation_from_a_declared_shape_is_refused(tmp_path: Path) -> None:
    _plant(tmp_path / "ind.toy.allx", _Planted(np.ndarray, (10**12,)))  # 8 TB, declared in a few bytes
    message = assert_named_error(lambda: load_array_pickle(tmp_path / "ind.toy.allx"), tmp_path / "ind.toy.allx")
    assert "not a readable Planetoid pickle (TypeError" in message


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_real_format_files_load_with_every_protocol_and_python2_names(tmp_path: Path, protocol: int) -> None:
    """The raw files as Python 2 wrote them (`numpy.core.multiarray`, `scipy.sparse.csr`, `copy_reg`,
    `__builtin__`, a `collections.defaultdict` of lists) and as Python 3 writes them."""
    write_planetoid(tmp_path)
    for part in ("x", "tx", "allx", "y", "ty", "ally", "graph"):
        path = tmp_path / f"ind.toy.{part}"
        with open(path, "rb") as f:
            value = pickle.load(f)
        if part == "graph":
            value = __import__("collections").defaultdict(list, value)
        data = pickle.dumps(value, protocol=protocol)
        if protocol <= 2:  # text globals: spell them as numpy 1 / old scipy / Python 2 did
            data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            data = data.replace(b"scipy.sparse._csr", b"scipy.sparse.csr")
        path.write_bytes(data)
    g = read_planetoid(tmp_path)
    assert torch.equal(g.x, torch.from_numpy(np.load(tmp_path / "expected_x.npy")))
    assert g.y.tolist() == [i % 2 for i in range(604)] and g.edge_index.shape[1] == 2 * 604
    assert (int(g.train_mask.sum()), int(g.val_mask.sum()), int(g.test_mask.sum())) == (3, 500, 4)


def test_csc_coo_and_lil_features_densify_like_csr(tmp_path: Path) -> None:
    write_planetoid(tmp_path)
    expected = np.load(tmp_path / "expected_x.npy")
    for kind in ("csc_matrix", "coo_matrix", "lil_matrix"):
        _plant(tmp_path / "ind.toy.allx", getattr(sp, kind)(expected[:600]))
        assert torch.equal(read_planetoid(tmp_path).x, torch.from_numpy(expected)), kind


def test_a_sparse_matrix_with_planted_indices_is_refused_before_densifying(tmp_path: Path) -> None:
    write_planetoid(tmp_path)
    m = sp.csr_matrix(np.eye(600, 5, dtype=np.float32))
    m.indices[3] = 10**9  # outside the 5 columns: scipy's C++ densifier would write out of bounds
    _plant(tmp_path / "ind.toy.allx", m)
    message = assert_named_error(lambda: read_planetoid(tmp_path), tmp_path / "ind.toy.allx")
    assert "not a valid sparse feature" in message and "outside the declared shape" in message
    _plant(tmp_path / "ind.toy.allx", sp.csr_matrix((600, 10**9), dtype=np.float32))  # 6e11 entries when dense
    message = assert_named_error(lambda: read_planetoid(tmp_path), tmp_path / "ind.toy.allx")
    assert "declares a 600×1000000000 feature" in message


def test_citeseer_gaps_get_zero_features_and_no_label(tmp_path: Path) -> None:
    """Test ids with a gap (CiteSeer's isolated nodes): node 602 is in no file."""
    write_planetoid(tmp_path)
    feats = np.load(tmp_path / "expected_x.npy")
    test_ids = np.array([603, 601, 600, 604])
    labels = np.eye(2)[test_ids % 2]
    _plant(tmp_path / "ind.toy.tx", sp.csr_matrix(np.vstack([feats[[603, 601, 600]], np.ones((1, 5))])))
    _plant(tmp_path / "ind.toy.ty", labels)
    (tmp_path / "ind.toy.test.index").write_text("\n".join(map(str, test_ids)) + "\n")
    _plant(tmp_path / "ind.toy.graph", {i: [(i + 1) % 605] for i in range(605)})
    g = read_planetoid(tmp_path)
    assert g.num_nodes == 605 and g.y[602] == -1 and not g.x[602].any()
    assert g.y[600:].tolist() == [0, 1, -1, 1, 0] and torch.equal(g.x[604], torch.ones(5))
    assert g.test_mask.nonzero().flatten().tolist() == [600, 601, 603, 604]
    (tmp_path / "ind.toy.test.index").write_text("603\n601\n600\n10\n")  # an id among the allx rows
    with pytest.raises(GraphDataError, match=r"ind\.toy\.test\.index: expected 4 distinct ids >= 600"):
        read_planetoid(tmp_path)
