"""Graphs from disk: Planetoid and TUDataset raw files, edge lists with feature tables, networkx.

Nothing here downloads: readers check that the raw files exist and name the missing ones. Bad
input (an edge pointing outside the node range, a NaN feature, label counts that do not match the
nodes) raises `GraphDataError` (a `DataError`) naming the file and the row. Graphs without
features get GraphMAE's one-hot degree features. The datasets over the graphs read here are in
`graph.dataset`.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from anymae.datasets.skips import DataError
from anymae.modalities.graph_data import Graphs, without_self_loops

MAX_DEGREE = 400  # GraphMAE's cap of one-hot degree features (load_graph_classification_dataset)
PLANETOID_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


class GraphDataError(DataError):
    """Graph files that cannot be read as claimed; the message names the file and the row."""


# ---------------------------------------------------------------- features, splits, edges


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


def random_split(n: int, train: float, val: float, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Three disjoint N bool masks from a seeded permutation: `int(train·n)`, `int(val·n)`, the rest."""
    if not (0 < train and 0 <= val and train + val < 1):
        raise GraphDataError(f"split ratios train={train}, val={val}: expected train > 0, val >= 0, train + val < 1")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_tr, n_va = int(train * n), int(val * n)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    for mask, idx in zip(masks, (perm[:n_tr], perm[n_tr : n_tr + n_va], perm[n_tr + n_va :])):
        mask[idx] = True
    return masks[0], masks[1], masks[2]


def to_undirected(edge_index: Tensor) -> Tensor:
    """Both directions of every edge, duplicates removed (sorted by source, then target)."""
    both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    return torch.unique(both, dim=1)


def _check_features(x: np.ndarray, path: Path | str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise GraphDataError(f"{path}: row {row + 1} holds a NaN or infinite feature value")


def _check_edges(edges: np.ndarray, num_nodes: int, path: Path | str, *, base: int = 0, row_offset: int = 1) -> None:
    """edges: E×2 ids starting at `base`; rows are reported 1-based (+ header lines via row_offset)."""
    bad = (edges < base) | (edges >= num_nodes + base)
    if bad.any():
        row = int(np.argwhere(bad.any(axis=1))[0][0])
        raise GraphDataError(
            f"{path}: row {row + row_offset} has edge {edges[row].tolist()} with a node outside "
            f"{base}..{num_nodes - 1 + base} ({num_nodes} nodes)"
        )


# ---------------------------------------------------------------- text tables


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_table(path: str | Path, *, dtype: type = float, columns: int | None = None) -> np.ndarray:
    """A numeric CSV / whitespace table (an optional header line skipped) or a `.npy` array.

    Raises:
        GraphDataError: the file is missing, a row is not numeric, or has the wrong column count.
    """
    path = Path(path)
    if not path.is_file():
        raise GraphDataError(f"{path}: file not found")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        return arr.astype(dtype) if dtype is float else arr
    rows: list[list[float]] = []
    with open(path, newline="", encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            cells = [c for c in (text.split(",") if "," in text else text.split()) if c.strip() != ""]
            if line_no == 1 and not all(_numeric(c) for c in cells):
                continue  # a header line
            try:
                values = [float(c) for c in cells]
            except ValueError:
                raise GraphDataError(f"{path}: row {line_no} is not numeric: {text[:80]!r}") from None
            if columns is not None and len(values) != columns:
                raise GraphDataError(f"{path}: row {line_no} has {len(values)} values, expected {columns}")
            if rows and len(values) != len(rows[0]):
                raise GraphDataError(f"{path}: row {line_no} has {len(values)} values, row 1 had {len(rows[0])}")
            rows.append(values)
    arr = np.asarray(rows, dtype=np.float64)
    if dtype is int:
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            bad = int(np.argwhere(~np.isfinite(arr) | (arr != np.round(arr)))[0][0])
            raise GraphDataError(f"{path}: row {bad + 1} holds a non-integer value where ids are expected")
        return arr.astype(np.int64)
    return arr


# ---------------------------------------------------------------- Planetoid (ind.NAME.*)


def planetoid_name(root: Path) -> str:
    """The NAME of `ind.NAME.x` in `root` (or `root/raw`, PyG's layout)."""
    found = sorted({p.name.split(".")[1] for p in root.glob("ind.*.x")})
    if len(found) != 1:
        raise GraphDataError(f"{root}: expected one Planetoid dataset (files ind.NAME.x ...), found {found or 'none'}")
    return found[0]


def _planetoid_dir(root: Path) -> Path:
    return root / "raw" if not list(root.glob("ind.*")) and (root / "raw").is_dir() else root


def read_planetoid(root: str | Path, name: str | None = None) -> Graphs:
    """A Planetoid citation graph (Cora, CiteSeer, PubMed) from its raw files, never downloading.

    Reads `ind.NAME.{x,tx,allx,y,ty,ally,graph,test.index}` in `root` (or `root/raw`), checks
    them, then assembles with torch_geometric's `read_planetoid_data` (the standard split:
    140/500/1000 nodes for Cora). Edges are made undirected; self-loops are the model's business.
    The raw files are pickles (the format's own): read only files you trust.
    """
    folder = _planetoid_dir(Path(root))
    name = name or planetoid_name(folder)
    missing = [f"ind.{name}.{p}" for p in PLANETOID_PARTS if not (folder / f"ind.{name}.{p}").is_file()]
    if missing:
        raise GraphDataError(f"{folder}: Planetoid raw files missing: {', '.join(missing)} (nothing is downloaded)")
    parts: dict[str, Any] = {}
    for p in PLANETOID_PARTS[:-1]:
        with open(folder / f"ind.{name}.{p}", "rb") as f:
            value = pickle.load(f, encoding="latin1")
        parts[p] = np.asarray(value.todense()) if hasattr(value, "todense") else value
    for feats, labels in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        _check_features(np.asarray(parts[feats], dtype=np.float64), folder / f"ind.{name}.{feats}")
        if len(parts[labels]) != len(parts[feats]):
            raise GraphDataError(
                f"{folder / f'ind.{name}.{labels}'}: {len(parts[labels])} label rows for {len(parts[feats])} "
                f"feature rows in ind.{name}.{feats}"
            )
    test_index = read_table(folder / f"ind.{name}.test.index", dtype=int, columns=1)[:, 0]
    n = len(parts["allx"]) + len(parts["tx"])
    n_full = max(n, int(test_index.max()) + 1) if test_index.size else n  # CiteSeer has isolated test ids
    for key, neighbours in dict(parts["graph"]).items():
        for v in [key, *neighbours]:
            if not 0 <= int(v) < n_full:
                raise GraphDataError(f"{folder / f'ind.{name}.graph'}: node {key} lists neighbour/id {v} outside 0..{n_full - 1}")
    io = _pyg_io()
    data = io.read_planetoid_data(str(folder), name)
    graphs = Graphs.from_pyg(data)
    return graphs.replace(edge_index=to_undirected(graphs.edge_index))


def _pyg_io() -> Any:
    from anymae.extras import require

    return require("torch_geometric.io", "graph", purpose="reading Planetoid files")


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
    missing = [p.name for p in required if not p.is_file()]
    if missing:
        raise GraphDataError(f"{folder}: TUDataset raw files missing: {', '.join(missing)} (nothing is downloaded)")
    indicator = read_table(required[1], dtype=int, columns=1)[:, 0]  # N, 1-based graph ids
    graph_labels = read_table(required[2], dtype=int, columns=1)[:, 0]  # G
    n, g = len(indicator), len(graph_labels)
    bad = (indicator < 1) | (indicator > g)
    if bad.any():
        row = int(np.argmax(bad))
        raise GraphDataError(f"{required[1]}: row {row + 1} names graph {indicator[row]} outside 1..{g} "
                             f"({g} rows in {required[2].name})")
    edges = read_table(required[0], dtype=int, columns=2)  # E×2, 1-based
    _check_edges(edges, n, required[0], base=1)
    edges = edges - 1
    cross = indicator[edges[:, 0]] != indicator[edges[:, 1]]
    if cross.any():
        row = int(np.argmax(cross))
        raise GraphDataError(f"{required[0]}: row {row + 1} joins nodes of different graphs ({edges[row] + 1})")
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
    if kind == "auto":
        kind = "node_labels" if labels_file.is_file() else "attributes" if attr_file.is_file() else "degree"
    if kind == "degree":
        ei = torch.from_numpy(edges.T.copy())
        return degree_features([in_degree(ei, n)], dim, max_degree)[0]
    path = labels_file if kind == "node_labels" else attr_file
    if not path.is_file():
        raise GraphDataError(f"{folder}: node_features={kind!r} but {path.name} is missing")
    table = read_table(path, dtype=int if kind == "node_labels" else float)
    if len(table) != n:
        raise GraphDataError(f"{path}: {len(table)} rows for {n} nodes in {name}_graph_indicator.txt")
    if kind == "attributes":
        _check_features(table, path)
        return torch.from_numpy(table).float()
    values = table[:, 0] - table[:, 0].min()
    width = int(values.max()) + 1
    if dim is not None and dim < width:
        raise GraphDataError(f"{path}: {width} node label values need in_dim >= {width}, the model has {dim}")
    return torch.nn.functional.one_hot(torch.from_numpy(values), dim or width).float()


# ---------------------------------------------------------------- edge list + tables, networkx


def find_table(root: Path, stem: str) -> Path | None:
    for suffix in (".npy", ".csv", ".txt"):
        if (root / f"{stem}{suffix}").is_file():
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
    an optional N×F feature table and optional N labels (CSV / `.npy`).

    The node count is the feature rows, else `num_nodes`, else the largest id + 1. Without
    features nodes get one-hot degree features (width `feature_dim` when given).
    """
    edge_arr = read_table(edges, dtype=int, columns=None if str(edges).endswith(".npy") else 2)
    if edge_arr.ndim != 2 or edge_arr.shape[1] != 2:
        raise GraphDataError(f"{edges}: expected E×2 source,target rows, got shape {edge_arr.shape}")
    x = None
    if features is not None:
        feat = read_table(features, dtype=float)
        if feat.ndim != 2:
            raise GraphDataError(f"{features}: expected an N×F table, got shape {feat.shape}")
        _check_features(feat, features)
        x = torch.from_numpy(feat).float()
        num_nodes = len(feat)
    n = num_nodes if num_nodes is not None else (int(edge_arr.max()) + 1 if edge_arr.size else 0)
    _check_edges(edge_arr.astype(np.int64), n, edges)
    edge_index = torch.from_numpy(edge_arr.T.astype(np.int64).copy())
    if undirected:
        edge_index = to_undirected(edge_index)
    edge_index = without_self_loops(edge_index)
    if x is None:
        x = degree_features([in_degree(edge_index, n)], feature_dim)[0]
    y = None
    if labels is not None:
        lab = read_table(labels, dtype=int)
        lab = lab.reshape(len(lab), -1)[:, 0] if lab.ndim > 1 else lab
        if len(lab) != n:
            raise GraphDataError(f"{labels}: {len(lab)} labels for {n} nodes (rows of {features or edges})")
        y = torch.from_numpy(lab.astype(np.int64))
    return Graphs(x=x, edge_index=edge_index, y=y)


def graph_from_networkx(
    graph: Any, *, feature_key: str = "x", label_key: str = "y", feature_dim: int | None = None, source: str = "graph"
) -> Graphs:
    """A networkx graph -> `Graphs` (nodes in `graph.nodes` order; directed graphs keep directions).

    Node attribute `feature_key` (a number sequence) gives features, else one-hot degree;
    `label_key` (an int) gives node labels, required on every node when present on one.
    """
    nodes = list(graph.nodes)
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
            rows.append(np.asarray(a[feature_key], dtype=np.float64).reshape(-1))
        if len({len(r) for r in rows}) != 1:
            raise GraphDataError(f"{source}: node '{feature_key}' attributes have different lengths")
        table = np.stack(rows)
        _check_features(table, source)
        x = torch.from_numpy(table).float()
    if x is None:
        x = degree_features([in_degree(edge_index, len(nodes))], feature_dim)[0]
    y = None
    if any(label_key in a for a in attrs):
        missing = [v for v, a in zip(nodes, attrs) if label_key not in a]
        if missing:
            raise GraphDataError(f"{source}: node {missing[0]!r} has no '{label_key}' label (other nodes have one)")
        y = torch.tensor([int(a[label_key]) for a in attrs], dtype=torch.long)
    return Graphs(x=x, edge_index=edge_index, y=y)


def read_networkx(path: str | Path, **kwargs: Any) -> Graphs:
    """A graph file networkx reads (`.graphml`, `.gml`, `.edgelist`, `.adjlist`) -> `Graphs`."""
    from anymae.extras import require

    nx = require("networkx", "graph", purpose="reading networkx graph files")
    path = Path(path)
    if not path.is_file():
        raise GraphDataError(f"{path}: file not found")
    readers = {".graphml": nx.read_graphml, ".gml": nx.read_gml, ".edgelist": nx.read_edgelist,
               ".adjlist": nx.read_adjlist}
    if path.suffix not in readers:
        raise GraphDataError(f"{path}: unknown graph file type; expected one of {sorted(readers)}")
    graph = readers[path.suffix](path)
    for v, a in graph.nodes(data=True):  # graphml stores sequences as strings: "[1.0, 0.0]" or "1 0"
        for key in (kwargs.get("feature_key", "x"),):
            if isinstance(a.get(key), str):
                a[key] = [float(t) for t in a[key].strip("[]").replace(",", " ").split()]
    return graph_from_networkx(graph, source=str(path), **kwargs)

