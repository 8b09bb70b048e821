"""Node-label tables (a label per row, or `node,label` rows; indices or class names) and stratified splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anymae.datasets.graph.dataset import stratified_split
from anymae.datasets.graph.readers import read_edge_list, read_networkx
from anymae.datasets.graph.tables import GraphDataError, read_labels
from anymae.datasets.skips import DataError
from anymae.datasets.sources import build_dataset
from tests.fuzz.bad_inputs import assert_named_error

# Zachary's karate club: the members of "Mr. Hi"'s club (the others followed the "Officer").
HI = {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 16, 17, 19, 21}


def _karate_folder(root: Path, labels: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "edges.csv").write_text("src,dst\n" + "".join(f"{i},{(i + 1) % 34}\n" for i in range(34)))
    (root / "labels.csv").write_text(labels)
    return root


def test_node_club_table_reads_the_club_column_and_maps_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order = list(range(33, -1, -1))  # rows in any order: the id column maps them to nodes
    rows = "".join(f"{i},{'Mr. Hi' if i in HI else 'Officer'}\n" for i in order)
    root = _karate_folder(tmp_path / "karate", "node,club\n" + rows)
    ds = build_dataset({"source": "graph_folder", "root": str(root), "train_ratio": 0.1, "val_ratio": 0.1},
                       split="test", model_config={"in_dim": 8})
    g = ds[0][0]
    assert g.y.tolist() == [0 if i in HI else 1 for i in range(34)]  # 2 classes, not the 34 node ids
    said = "labels.csv: class names mapped to indices in sorted order: 'Mr. Hi'=0, 'Officer'=1"
    assert said in capsys.readouterr().out
    # the 3 training nodes (int(0.1 × 34)) hold both clubs: 17 + 17 split 2 + 1
    assert [int((g.y[g.train_mask] == c).sum()) for c in (0, 1)] == [2, 1]
    assert [int((g.y[g.val_mask] == c).sum()) for c in (0, 1)] == [2, 1]
    assert [int((g.y[g.test_mask] == c).sum()) for c in (0, 1)] == [13, 15]


def test_two_numeric_columns_are_id_then_label(tmp_path: Path) -> None:
    root = _karate_folder(tmp_path, "node,club\n" + "".join(f"{i},{int(i not in HI)}\n" for i in range(34)))
    y = read_edge_list(root / "edges.csv", labels=root / "labels.csv").y
    assert y.tolist() == [int(i not in HI) for i in range(34)]
    (root / "labels.csv").write_text("".join(f"{i}\t{int(i not in HI)}\n" for i in (5, 4, 3, 2, 1, 0)))  # no header
    y = read_labels(root / "labels.csv", 34)
    assert y[:6].tolist() == [0, 0, 0, 0, 0, 0] and (y[6:] == -1).all()  # nodes not listed: unlabelled


def test_one_column_of_names_with_or_without_a_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["cat", "dog", "cat", "bird"]
    (tmp_path / "labels.csv").write_text("species\n" + "\n".join(names) + "\n")
    assert read_labels(tmp_path / "labels.csv", 4).tolist() == [1, 2, 1, 0]  # sorted: bird, cat, dog
    (tmp_path / "labels.csv").write_text("\n".join(names) + "\n")
    assert read_labels(tmp_path / "labels.csv", 4).tolist() == [1, 2, 1, 0]
    (tmp_path / "labels.csv").write_text("label\n1\n0\n1\n1\n")
    assert read_labels(tmp_path / "labels.csv", 4).tolist() == [1, 0, 1, 1]
    np.save(tmp_path / "labels.npy", np.array([[0, 2], [1, 0], [2, 1], [3, 1]]))
    assert read_labels(tmp_path / "labels.npy", 4).tolist() == [2, 0, 1, 1]
    assert "'bird'=0, 'cat'=1, 'dog'=2" in capsys.readouterr().out


def test_label_table_errors_name_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("node,club\n0,a\n7,b\n")
    assert "row 3: node id '7' is not an id in 0..3" in assert_named_error(lambda: read_labels(path, 4), path)
    path.write_text("0,a\n1,b\n0,b\n")
    assert "row 3: node 0 is labelled twice" in assert_named_error(lambda: read_labels(path, 4), path)
    path.write_text("0,a\n5,\n")  # a row cut after its separator
    assert "row 2: node 5 has an empty label" in assert_named_error(lambda: read_labels(path, 6), path)
    path.write_text("0,a,x\n1,b,y\n")
    assert "expected one column" in assert_named_error(lambda: read_labels(path, 4), path)
    path.write_bytes("node,club\n0,M\xfcller\n".encode("latin-1"))
    assert "not UTF-8 text (byte 0xfc" in assert_named_error(lambda: read_labels(path, 2), path)
    np.save(tmp_path / "labels.npy", np.array(["a", "b"]))
    assert "<U1" in assert_named_error(lambda: read_labels(tmp_path / "labels.npy", 2), tmp_path / "labels.npy")
    path.write_text("1\n-3\n")
    assert "label -3 of node 1" in assert_named_error(lambda: read_labels(path, 2), path)


def test_networkx_class_names_are_mapped(tmp_path: Path) -> None:
    nx = pytest.importorskip("networkx")
    graph = nx.Graph()
    for i in range(4):
        graph.add_node(i, club="Officer" if i % 2 else "Mr. Hi")
    graph.add_edges_from([(0, 1), (1, 2), (2, 3)])
    nx.write_graphml(graph, tmp_path / "karate.graphml")
    assert read_networkx(tmp_path / "karate.graphml", label_key="club").y.tolist() == [0, 1, 0, 1]
    (tmp_path / "bad.graphml").write_text("<graphml><graph><node id='0'>")
    message = assert_named_error(lambda: read_networkx(tmp_path / "bad.graphml"), tmp_path / "bad.graphml")
    assert "not a readable .graphml graph" in message


def test_stratified_split_counts_by_hand() -> None:
    labels = torch.tensor([0] * 50 + [1] * 10 + [-1] * 5)
    tr, va, te = stratified_split(labels, 0.5, 0.2, seed=3)
    # 60 labelled: 30 train (25 + 5), 12 val (10 + 2), the rest test (15 + 3); unlabelled in no mask
    assert [[int((labels[m] == c).sum()) for c in (0, 1)] for m in (tr, va, te)] == [[25, 5], [10, 2], [15, 3]]
    assert not (tr | va | te)[60:].any() and not (tr & va).any() and not (va & te).any() and not (tr & te).any()
    again = stratified_split(labels, 0.5, 0.2, seed=3)
    assert all(torch.equal(a, b) for a, b in zip((tr, va, te), again))  # deterministic from the seed
    assert not torch.equal(tr, stratified_split(labels, 0.5, 0.2, seed=4)[0])
    tiny = torch.tensor([0, 0, 0, 1, 1, 1])  # 3 train nodes in every seed: never one class only
    assert all(len(torch.unique(tiny[stratified_split(tiny, 0.5, 0.0, s)[0]])) == 2 for s in range(20))
    with pytest.raises(GraphDataError, match="train=0.8, val=0.3"):
        stratified_split(tiny, 0.8, 0.3, 0)


def test_a_looping_or_dangling_label_table_is_named_not_ignored(tmp_path: Path) -> None:
    root = _karate_folder(tmp_path, "")
    (root / "labels.csv").unlink()
    (root / "labels.csv").symlink_to(root / "labels.csv")
    cfg = {"source": "graph_folder", "root": str(root)}
    msg = assert_named_error(lambda: build_dataset(cfg, split="test", model_config={"in_dim": 8}),
                             root / "labels.csv", error=DataError)
    assert "looping symbolic link" in msg
