"""Graph readers on real files written here: Planetoid pickles, TU raw text, edge CSV + npy, networkx."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from anymae.datasets.graph.dataset import NodePartitions
from anymae.datasets.graph.readers import (
    GraphDataError,
    degree_features,
    read_edge_list,
    read_networkx,
    read_tu,
)
from anymae.datasets.graph.planetoid import read_planetoid
from anymae.datasets.skips import DataError
from anymae.datasets.sources import build_dataset, files_section
from anymae.modalities.graph_data import Graphs, collate_graphs


def write_planetoid(root: Path, name: str = "toy", *, n_train: int = 3, n_all: int = 600, n_test: int = 4) -> None:
    """A tiny Planetoid dataset: a ring over n_all + n_test nodes, 5 features, 2 classes."""
    rng = np.random.default_rng(0)
    n = n_all + n_test
    feats = (rng.random((n, 5)) < 0.5).astype(np.float32)
    labels = np.eye(2)[np.arange(n) % 2]
    test_ids = np.arange(n_all, n)[::-1]  # stored test rows in reverse id order (the format permits it)
    parts = {
        "x": sp.csr_matrix(feats[:n_train]), "y": labels[:n_train],
        "allx": sp.csr_matrix(feats[:n_all]), "ally": labels[:n_all],
        "tx": sp.csr_matrix(feats[test_ids]), "ty": labels[test_ids],
        "graph": {i: [(i + 1) % n, (i - 1) % n] for i in range(n)},
    }
    root.mkdir(parents=True, exist_ok=True)
    for key, value in parts.items():
        with open(root / f"ind.{name}.{key}", "wb") as f:
            pickle.dump(value, f)
    (root / f"ind.{name}.test.index").write_text("\n".join(str(i) for i in test_ids) + "\n")
    np.save(root / "expected_x.npy", feats)


def test_planetoid_reads_raw_files(tmp_path: Path) -> None:
    write_planetoid(tmp_path)
    g = read_planetoid(tmp_path)
    expected = torch.from_numpy(np.load(tmp_path / "expected_x.npy"))
    assert torch.equal(g.x, expected)  # test rows put back at their ids
    assert g.y.tolist() == [i % 2 for i in range(604)]
    assert g.train_mask.sum() == 3 and g.val_mask.sum() == 500 and g.test_mask.sum() == 4
    assert g.test_mask[600:].all() and g.edge_index.shape[1] == 2 * 604  # undirected ring
    ds = build_dataset({"source": "graph_folder", "root": str(tmp_path)}, split="test", model_config={"in_dim": 5})
    assert len(ds) == 1 and ds[0][1] == -1 and torch.equal(ds[0][0].x, expected)


def test_planetoid_names_missing_files_and_bad_rows(tmp_path: Path) -> None:
    write_planetoid(tmp_path)
    (tmp_path / "ind.toy.graph").unlink()
    (tmp_path / "ind.toy.ty").unlink()
    with pytest.raises(GraphDataError, match=r"missing: ind\.toy\.ty, ind\.toy\.graph \(nothing is downloaded\)"):
        read_planetoid(tmp_path)
    write_planetoid(tmp_path)
    allx = np.ones((600, 5))
    allx[17, 2] = np.nan
    with open(tmp_path / "ind.toy.allx", "wb") as f:
        pickle.dump(allx, f)
    with pytest.raises(GraphDataError, match=r"ind\.toy\.allx: row 18 holds a NaN"):
        read_planetoid(tmp_path)
    with pytest.raises(DataError, match=r"ind\.toy\.allx"):  # the common data error catches graph errors too
        read_planetoid(tmp_path)


def write_tu(root: Path, name: str = "TOY", *, attributes: bool = False) -> None:
    """Three graphs: a triangle (label 5), a path of 2 (label 7), a star of 4 (label 5); 1-based ids."""
    root.mkdir(parents=True, exist_ok=True)
    edges = [(1, 2), (2, 1), (2, 3), (3, 2), (1, 3), (3, 1), (4, 5), (5, 4), (6, 7), (7, 6), (6, 8), (8, 6), (6, 9),
             (9, 6), (6, 6)]
    (root / f"{name}_A.txt").write_text("\n".join(f"{a}, {b}" for a, b in edges) + "\n")
    (root / f"{name}_graph_indicator.txt").write_text("\n".join(map(str, [1, 1, 1, 2, 2, 3, 3, 3, 3])) + "\n")
    (root / f"{name}_graph_labels.txt").write_text("5\n7\n5\n")
    (root / f"{name}_node_labels.txt").write_text("\n".join(map(str, [1, 2, 1, 3, 3, 1, 2, 2, 2])) + "\n")
    if attributes:
        (root / f"{name}_node_attributes.txt").write_text("\n".join(f"{i}.5, {-i}" for i in range(9)) + "\n")


def test_tu_reads_graphs_labels_and_features(tmp_path: Path) -> None:
    write_tu(tmp_path)
    graphs, labels = read_tu(tmp_path)
    assert labels.tolist() == [0, 1, 0] and [g.num_nodes for g in graphs] == [3, 2, 4]
    assert torch.equal(graphs[0].x, torch.eye(3)[[0, 1, 0]])  # node labels 1, 2, 1 -> one-hot of 0..2
    assert sorted(map(tuple, graphs[2].edge_index.T.tolist())) == [(0, 1), (0, 2), (0, 3), (1, 0), (2, 0), (3, 0)]
    deg, _ = read_tu(tmp_path, node_features="degree")
    assert torch.equal(deg[2].x.argmax(1), torch.tensor([3, 1, 1, 1])) and deg[2].x.shape[1] == 4  # max degree 3
    wide, _ = read_tu(tmp_path, node_features="degree", feature_dim=3)
    assert wide[2].x.argmax(1).tolist() == [2, 1, 1, 1]  # clipped to the model's width
    write_tu(tmp_path, attributes=True)
    att, _ = read_tu(tmp_path, node_features="attributes")
    assert torch.equal(att[1].x, torch.tensor([[3.5, -3.0], [4.5, -4.0]]))
    ds = build_dataset({"source": "graph_folder", "root": str(tmp_path)}, split="pretrain", model_config={"in_dim": 3})
    assert len(ds) == 3 and ds[1][1] == 1


def test_tu_errors_name_file_and_row(tmp_path: Path) -> None:
    write_tu(tmp_path)
    a = tmp_path / "TOY_A.txt"
    a.write_text(a.read_text() + "9, 12\n")
    with pytest.raises(GraphDataError, match=r"TOY_A\.txt: row 16 has edge \[9, 12\] with a node outside 1\.\.9"):
        read_tu(tmp_path)
    write_tu(tmp_path)
    a.write_text(a.read_text() + "3, 4\n")
    with pytest.raises(GraphDataError, match=r"row 16 joins nodes of different graphs"):
        read_tu(tmp_path)
    write_tu(tmp_path)
    (tmp_path / "TOY_node_labels.txt").write_text("1\n2\n")
    with pytest.raises(GraphDataError, match=r"TOY_node_labels\.txt: 2 rows for 9 nodes"):
        read_tu(tmp_path)
    (tmp_path / "TOY_graph_labels.txt").unlink()
    with pytest.raises(GraphDataError, match="missing: TOY_graph_labels.txt"):
        read_tu(tmp_path)


def test_edge_list_with_tables(tmp_path: Path) -> None:
    (tmp_path / "edges.csv").write_text("src,dst\n0,1\n1,2\n2,2\n3,0\n")
    np.save(tmp_path / "features.npy", np.arange(8, dtype=np.float32).reshape(4, 2))
    (tmp_path / "labels.csv").write_text("0\n1\n0\n1\n")
    ds = build_dataset({"source": "graph_folder", "root": str(tmp_path), "train_ratio": 0.5, "val_ratio": 0.25},
                       split="train", model_config={"in_dim": 2})
    g = ds[0][0]
    assert torch.equal(g.x, torch.arange(8.0).view(4, 2)) and g.y.tolist() == [0, 1, 0, 1]
    assert sorted(map(tuple, g.edge_index.T.tolist())) == [(0, 1), (0, 3), (1, 0), (1, 2), (2, 1), (3, 0)]
    assert (g.train_mask.sum(), g.val_mask.sum(), g.test_mask.sum()) == (2, 1, 1)
    assert not (g.train_mask & g.test_mask).any()
    np.save(tmp_path / "features.npy", np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(GraphDataError, match=r"features\.npy: row 2 holds a NaN"):
        read_edge_list(tmp_path / "edges.csv", features=tmp_path / "features.npy")
    (tmp_path / "edges.csv").write_text("0,1\n1,4\n")
    with pytest.raises(GraphDataError, match=r"edges\.csv: row 2 has edge \[1, 4\] with a node outside 0\.\.3"):
        read_edge_list(tmp_path / "edges.csv", num_nodes=4)
    (tmp_path / "edges.csv").write_text("0,1\n1,2\n")
    (tmp_path / "labels.csv").write_text("0\n1\n")
    with pytest.raises(GraphDataError, match=r"labels\.csv: 2 labels for 3 nodes"):
        read_edge_list(tmp_path / "edges.csv", labels=tmp_path / "labels.csv")
    g = read_edge_list(tmp_path / "edges.csv")  # no features: one-hot degree
    assert torch.equal(g.x, torch.eye(3)[[1, 2, 1]])


def test_networkx_graphml(tmp_path: Path) -> None:
    nx = pytest.importorskip("networkx")
    graph = nx.Graph()
    for i in range(4):
        graph.add_node(f"n{i}", y=i % 2)
    graph.add_edges_from([("n0", "n1"), ("n1", "n2"), ("n2", "n3")])
    nx.write_graphml(graph, tmp_path / "g.graphml")
    g = read_networkx(tmp_path / "g.graphml")
    assert g.y.tolist() == [0, 1, 0, 1] and torch.equal(g.x, torch.eye(3)[[1, 2, 2, 1]])
    assert files_section("graph", str(tmp_path)) == {"source": "graph_folder", "root": str(tmp_path)}
    ds = build_dataset(files_section("graph", str(tmp_path / "g.graphml")), split="test", model_config={"in_dim": 3})
    assert ds[0][0].num_nodes == 4
    graph.add_node("n4")
    nx.write_graphml(graph, tmp_path / "g.graphml")
    with pytest.raises(GraphDataError, match="node 'n4' has no 'y' label"):
        read_networkx(tmp_path / "g.graphml")


def test_partitions_and_collate() -> None:
    g = Graphs(x=torch.arange(6.0).view(6, 1), edge_index=torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]))
    parts = NodePartitions(g, 3, seed=0)
    subs = [parts[i][0] for i in range(3)]
    assert sorted(int(v) for s in subs for v in s.x[:, 0]) == list(range(6))
    batch = collate_graphs(subs)
    assert batch.num_graphs == 3 and batch.batch.tolist() == [0, 0, 1, 1, 2, 2]
    part_of = {int(v): i for i, s in enumerate(subs) for v in s.x[:, 0]}
    inside = sum(part_of[a] == part_of[b] for a, b in g.edge_index.T.tolist())  # edges within one part survive
    assert batch.edge_index.shape[1] == inside
    values = batch.x[:, 0][batch.edge_index]  # 2×E original node ids of the kept edges
    assert all((b - a) == 1 for a, b in values.T.tolist())
    assert degree_features([torch.tensor([0, 5, 2])], max_degree=3)[0].argmax(1).tolist() == [0, 3, 2]
