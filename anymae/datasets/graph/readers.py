"""Graphs from disk: TUDataset raw files, edge lists with feature and label tables, networkx files.

Nothing here downloads: readers check that the raw files exist and name the missing ones. Bad
input (an edge pointing outside the node range, a NaN feature, label counts that do not match the
nodes, a file that is not what its name says) raises `GraphDataError` (a `DataError`), one line
naming the file and the row. Graphs without features get GraphMAE's one-hot degree features.
Tables are read by `graph.tables`, Planetoid's pickled files by `graph.planetoid`, and the
datasets over the graphs read here are in `graph.dataset`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from anymae.datasets.graph.tables import GraphDataError, check_features, class_indices, read_labels, read_table
from anymae.datasets.scan import display_name
from anymae.datasets.skips import check_file, file_problem, reason
from anymae.modalities.graph_data import Graphs, without_self_loops

MAX_DEGREE = 400  # GraphMAE's cap of one-hot degree features (load_graph_classification_dataset)


# ---------------------------------------------------------------- features, edges


def degree_features(in_degrees: Sequence[Tensor], dim: int | None = None, max_degree: int = MAX_DEGREE) -> list[Tensor]:
    """GraphMAE's degree features: one-hot in-degree, capped.

    Args:
        in_degrees: per graph, N_g long in-degrees (self-loops not counted).
        dim: one-hot width; default `min(max degree, max_degree) + 1` over all graphs (the
            reference's); degrees above `dim - 1` are clipped to it.
        max_degree: the cap of the default width.

    Returns:
        Per graph an N_g×dim float one-hot matrix.
    """
    top = max((int(d.max()) for d in in_degrees if d.numel()), default=0)
    width = dim if dim is not None else min(top, max_degree) + 1
    return [torch.nn.functional.one_hot(d.clamp(max=width - 1), width).float() for d in in_degrees]


def in_degree(edge_index: Tensor, num_nodes: int) -> Tensor:
    """N long: edges into each node, self-loops excluded."""
    return torch.bincount(without_self_loops(edge_index)[1], minlength=num_nodes)


def to_undirected(edge_index: Tensor) -> Tensor:
    """Both directions of every edge, duplicates removed (sorted by source, then target)."""
    both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    return torch.unique(both, dim=1)


def _check_edges(
    edges: np.ndarray, num_nodes: int, path: Path | str, *, base: int = 0, row_offset: int = 1,
    counted_in: Path | None = None,
) -> None:
    """edges: E×2 ids starting at `base`; rows are reported 1-based (+ header lines via row_offset);
    `counted_in` names the file the node count comes from (either file may be the wrong one)."""
    bad = (edges < base) | (edges >= num_nodes + base)
    if bad.any():
        row = int(np.argwhere(bad.any(axis=1))[0][0])
        where = f" in {counted_in.name}" if counted_in is not None else ""
        raise GraphDataError(
            f"{display_name(path)}: row {row + row_offset} has edge {edges[row].tolist()} with a node outside "
            f"{base}..{num_nodes - 1 + base} ({num_nodes} nodes{where})"
        )


# ---------------------------------------------------------------- TUDataset raw text


def tu_name(root: Path) -> str:
    found = sorted(p.name[: -len("_A.txt")] for p in root.glob("*_A.txt"))
    if len(found) != 1:
        raise GraphDataError(f"{root}: expected one TUDataset (files DS_A.txt ...), found {found or 'none'}")
    return found[0]


def read_tu(
    root: str | Path,
    name: str | None = None,
    *,
    node_features: Literal["auto", "node_labels", "attributes", "degree"] = "auto",
    feature_dim: int | None = None,
    max_degree: int = MAX_DEGREE,
) -> tuple[list[Graphs], Tensor]:
    """A TUDataset from its raw text files (`DS_A.txt`, `DS_graph_indicator.txt`,
    `DS_graph_labels.txt`, optional `DS_node_labels.txt` / `DS_node_attributes.txt`), never downloading.

    Node features (GraphMAE's `load_graph_classification_dataset`): "auto" = one-hot node labels
    when the file exists, else the attributes, else one-hot degree; or one kind by name. Self-loops
    in the file are dropped (the model adds one per node). Graph labels are remapped to 0..C-1.

    Args:
        root: the folder (or its `raw/` subfolder) holding the files.
        name: DS; default: the one `*_A.txt` in the folder.
        node_features: which features (see above).
        feature_dim: one-hot width for node labels / degrees (the model's `in_dim`); default the
            data's own (max + 1; degrees capped at `max_degree`).
        max_degree: the degree cap of the default width.

    Returns:
        (graphs, G graph labels).
    """
    folder = Path(root)
    if not list(folder.glob("*_A.txt")) and (folder / "raw").is_dir():
        folder = folder / "raw"
    name = name or tu_name(folder)
    required = [folder / f"{name}_{part}.txt" for part in ("A", "graph_indicator", "graph_labels")]
    missing = [p.name for p in required if file_problem(p) == "does not exist"]
    if missing:
        raise GraphDataError(f"{folder}: TUDataset raw files missing: {', '.join(missing)} (nothing is downloaded)")
    indicator = read_table(required[1], dtype=int, columns=1)[:, 0]  # N, 1-based graph ids
    graph_labels = read_table(required[2], dtype=int, columns=1)[:, 0]  # G
    n, g = len(indicator), len(graph_labels)
    if n == 0 or g == 0:
        raise GraphDataError(f"{display_name(required[1 if n == 0 else 2])}: holds no rows (a TUDataset needs "
                             "nodes and graphs)")
    bad = (indicator < 1) | (indicator > g)
    if bad.any():
        row = int(np.argmax(bad))
        raise GraphDataError(f"{display_name(required[1])}: row {row + 1} names graph {indicator[row]} outside 1..{g} "
                             f"({g} rows in {required[2].name})")
    edges = read_table(required[0], dtype=int, columns=2)  # E×2, 1-based
    _check_edges(edges, n, required[0], base=1, counted_in=required[1])
    edges = edges - 1
    cross = indicator[edges[:, 0]] != indicator[edges[:, 1]]
    if cross.any():
        row = int(np.argmax(cross))
        raise GraphDataError(f"{display_name(required[0])}: row {row + 1} joins nodes of different graphs "
                             f"({edges[row] + 1})")
    per_node = _tu_node_features(folder, name, n, node_features, feature_dim, edges, max_degree)
    graph_of_node = torch.from_numpy(indicator - 1)
    edge_t = torch.from_numpy(edges.T.copy())  # 2×E
    order = torch.argsort(graph_of_node, stable=True)
    local = torch.empty(n, dtype=torch.long)
    counts = torch.bincount(graph_of_node, minlength=g)
    starts = torch.cumsum(counts, 0) - counts
    local[order] = torch.arange(n) - starts[graph_of_node[order]]  # node id inside its graph
    edge_graph = graph_of_node[edge_t[0]]
    graphs = []
    for k in range(g):
        nodes = order[starts[k] : starts[k] + counts[k]]
        ei = local[edge_t[:, edge_graph == k]]
        graphs.append(Graphs(x=per_node[nodes], edge_index=without_self_loops(ei)))
    _, labels = np.unique(graph_labels, return_inverse=True)
    return graphs, torch.from_numpy(labels.astype(np.int64))


def _tu_node_features(
    folder: Path, name: str, n: int, kind: str, dim: int | None, edges: np.ndarray, max_degree: int
) -> Tensor:
    labels_file, attr_file = folder / f"{name}_node_labels.txt", folder / f"{name}_node_attributes.txt"
    if kind == "auto":  # a file that is present but broken (a directory, a bad link) is read and named, not passed over
        kind = "node_labels" if os.path.lexists(labels_file) else (
            "attributes" if os.path.lexists(attr_file) else "degree")
    if kind == "degree":
        ei = torch.from_numpy(edges.T.copy())
        return degree_features([in_degree(ei, n)], dim, max_degree)[0]
    path = labels_file if kind == "node_labels" else attr_file
    if not os.path.lexists(path):
        raise GraphDataError(f"{display_name(folder)}: node_features={kind!r} but {path.name} is missing")
    table = read_table(path, dtype=int if kind == "node_labels" else float)
    if len(table) != n:
        raise GraphDataError(f"{display_name(path)}: {len(table)} rows for {n} nodes in {name}_graph_indicator.txt")
    if kind == "attributes":
        check_features(table, path)
        return torch.from_numpy(table).float()
    values = table[:, 0] - table[:, 0].min()
    width = int(values.max()) + 1
    if dim is not None and dim < width:
        raise GraphDataError(f"{display_name(path)}: {width} node label values need in_dim >= {width}, "
                             f"the model has {dim}")
    return torch.nn.functional.one_hot(torch.from_numpy(values), dim or width).float()


# ---------------------------------------------------------------- edge list + tables, networkx


def find_table(root: Path, stem: str) -> Path | None:
    """`root/stem.{npy,csv,txt}`: the first name present, also when it is no readable file (a
    directory, a broken link), so that reading it names the problem instead of ignoring the table."""
    for suffix in (".npy", ".csv", ".txt"):
        if os.path.lexists(root / f"{stem}{suffix}"):
            return root / f"{stem}{suffix}"
    return None


def read_edge_list(
    edges: str | Path,
    *,
    features: str | Path | None = None,
    labels: str | Path | None = None,
    num_nodes: int | None = None,
    undirected: bool = True,
    feature_dim: int | None = None,
) -> Graphs:
    """A graph from an edge table (rows `src,dst`, 0-based ids; CSV / whitespace / `.npy` E×2),
    an optional N×F feature table and optional node labels (`tables.read_labels`: a label per
    row, or `node,label` rows; class indices or class names).

    The node count is the feature rows, else `num_nodes`, else the largest id + 1. Without
    features nodes get one-hot degree features (width `feature_dim` when given).
    """
    edge_arr = read_table(edges, dtype=int, columns=None if str(edges).endswith(".npy") else 2)
    if edge_arr.ndim != 2 or edge_arr.shape[1] != 2:
        raise GraphDataError(f"{display_name(edges)}: expected E×2 source,target rows, got shape {edge_arr.shape}")
    x = None
    if features is not None:
        feat = read_table(features, dtype=float)
        if feat.ndim != 2 or 0 in feat.shape:
            raise GraphDataError(f"{display_name(features)}: expected an N×F table (N, F > 0), got shape {feat.shape}")
        check_features(feat, features)
        x = torch.from_numpy(feat).float()
        num_nodes = len(feat)
    n = num_nodes if num_nodes is not None else (int(edge_arr.max()) + 1 if edge_arr.size else 0)
    if n == 0:
        raise GraphDataError(f"{display_name(edges)}: no edges and no features: the graph has no nodes")
    _check_edges(edge_arr.astype(np.int64), n, edges, counted_in=Path(features) if features is not None else None)
    edge_index = torch.from_numpy(edge_arr.T.astype(np.int64).copy())
    if undirected:
        edge_index = to_undirected(edge_index)
    edge_index = without_self_loops(edge_index)
    if x is None:
        x = degree_features([in_degree(edge_index, n)], feature_dim)[0]
    y = read_labels(labels, n) if labels is not None else None
    return Graphs(x=x, edge_index=edge_index, y=y)


def graph_from_networkx(
    graph: Any, *, feature_key: str = "x", label_key: str = "y", feature_dim: int | None = None, source: str = "graph"
) -> Graphs:
    """A networkx graph -> `Graphs` (nodes in `graph.nodes` order; directed graphs keep directions).

    Node attribute `feature_key` (a number sequence) gives features, else one-hot degree;
    `label_key` (a class index or a class name, `tables.class_indices`) gives node labels,
    required on every node when present on one.
    """
    nodes = list(graph.nodes)
    if not nodes:
        raise GraphDataError(f"{source}: the graph has no nodes")
    index = {v: i for i, v in enumerate(nodes)}
    pairs = [(index[u], index[v]) for u, v in graph.edges()]
    edge_index = torch.tensor(pairs, dtype=torch.long).T.reshape(2, -1)
    if not graph.is_directed():
        edge_index = to_undirected(edge_index)
    edge_index = without_self_loops(edge_index)
    attrs = [graph.nodes[v] for v in nodes]
    x = None
    if any(feature_key in a for a in attrs):
        rows = []
        for v, a in zip(nodes, attrs):
            if feature_key not in a:
                raise GraphDataError(f"{source}: node {v!r} has no '{feature_key}' attribute (other nodes have one)")
            try:
                rows.append(np.asarray(a[feature_key], dtype=np.float64).reshape(-1))
            except (TypeError, ValueError):
                raise GraphDataError(f"{source}: node {v!r} has a non-numeric '{feature_key}' attribute: "
                                     f"{str(a[feature_key])[:60]!r}") from None
        if len({len(r) for r in rows}) != 1:
            raise GraphDataError(f"{source}: node '{feature_key}' attributes have different lengths")
        table = np.stack(rows)
        check_features(table, source)
        x = torch.from_numpy(table).float()
    if x is None:
        x = degree_features([in_degree(edge_index, len(nodes))], feature_dim)[0]
    y = None
    if any(label_key in a for a in attrs):
        missing = [v for v, a in zip(nodes, attrs) if label_key not in a]
        if missing:
            raise GraphDataError(f"{source}: node {missing[0]!r} has no '{label_key}' label (other nodes have one)")
        y = torch.from_numpy(class_indices([_label_text(a[label_key]) for a in attrs], source))
    return Graphs(x=x, edge_index=edge_index, y=y)


def read_networkx(path: str | Path, **kwargs: Any) -> Graphs:
    """A graph file networkx reads (`.graphml`, `.gml`, `.edgelist`, `.adjlist`) -> `Graphs`."""
    from anymae.extras import require

    nx = require("networkx", "graph", purpose="reading networkx graph files")
    path = Path(path)
    check_file(path, "graph file")
    readers = {".graphml": nx.read_graphml, ".gml": nx.read_gml, ".edgelist": nx.read_edgelist,
               ".adjlist": nx.read_adjlist}
    if path.suffix not in readers:
        raise GraphDataError(f"{display_name(path)}: unknown graph file type; expected one of {sorted(readers)}")
    try:
        graph = readers[path.suffix](path)
    except Exception as err:  # XML / GML parse errors, undecodable text, bad node tokens: a bad file
        raise GraphDataError(f"{display_name(path)}: not a readable {path.suffix} graph ({reason(err)})") from None
    key = kwargs.get("feature_key", "x")
    for v, a in graph.nodes(data=True):  # graphml stores sequences as strings: "[1.0, 0.0]" or "1 0"
        if isinstance(a.get(key), str):
            a[key] = a[key].strip("[]").replace(",", " ").split()
    return graph_from_networkx(graph, source=display_name(path), **kwargs)


def _label_text(value: Any) -> str:
    """A label attribute as `class_indices` reads it: whole numbers as integers, anything else as text."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)

