"""Graph data sources (`data.source=...`); readers are imported when a dataset is built.

    data:
      source: graph_folder      # Planetoid raw files, TUDataset raw text, edges.csv (+ features, labels)
      root: data/cora           #   or a networkx file (.graphml / .gml / .edgelist / .adjlist)

Node-level graphs (one graph: Planetoid, edge lists, networkx, `sbm_graph`) are a dataset of one
item for every split; node splits come from the files (Planetoid) or a seeded split of the
labelled nodes stratified by class (`dataset.stratified_split`). Node labels (`labels.csv` /
`.npy` beside the edges) are a label per row or `node,label` rows, class indices or class names
(sorted names -> 0..C-1, printed). `partitions > 1` pretrains on that many induced subgraphs of a fixed random node
partition instead (mini-batches of a large graph). Graph-level data (TUDataset, `sbm_graphs`) is
one item per graph with its label. One-hot widths (degrees, TU node labels) default to the
model's `in_dim`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from anymae.datasets.sources import SOURCES


@dataclass
class GraphFolderSource:
    """Graphs on disk: Planetoid raw files, TUDataset raw text, an edge list + tables, or a networkx file.

    `format: auto` detects: `ind.NAME.x` -> planetoid; `NAME_A.txt` -> tu; `edges.{csv,npy,txt}`
    (with optional `features.*` / `labels.*` beside it, or a single edge file as root) ->
    edge_list; a `.graphml/.gml/.edgelist/.adjlist` file -> networkx.
    """

    root: str
    format: Literal["auto", "planetoid", "tu", "edge_list", "networkx"] = "auto"
    name: str | None = None
    node_features: Literal["auto", "node_labels", "attributes", "degree"] = "auto"
    max_degree: int = 400
    undirected: bool = True
    feature_key: str = "x"
    label_key: str = "y"
    train_ratio: float = 0.6
    val_ratio: float = 0.2
    split_seed: int = 0
    partitions: int = 1


@dataclass
class SbmGraphSource:
    """One stochastic-block-model graph, labels = blocks (tests, demos): node classification."""

    blocks: list[int] = field(default_factory=lambda: [100, 100, 100])
    p_in: float = 0.1
    p_out: float = 0.01
    feature_dim: int | None = None  # default: the model's in_dim
    noise: float = 0.3
    words: int = 8
    seed: int = 0
    train_ratio: float = 0.6
    val_ratio: float = 0.2
    partitions: int = 1


@dataclass
class SbmGraphsSource:
    """Many small SBM graphs, class 0 = two blocks, class 1 = three blocks: graph classification."""

    n: int = 200
    nodes: int = 20
    feature_dim: int | None = None  # default: the model's in_dim
    seed: int = 0


_NX_SUFFIXES = (".graphml", ".gml", ".edgelist", ".adjlist")


def detect_format(root: Path) -> str:
    """The `format` of `root` (see `GraphFolderSource`), or a GraphDataError saying what was looked for."""
    from anymae.datasets.graph.tables import GraphDataError
    from anymae.datasets.scan import display_name
    from anymae.datasets.skips import file_problem

    if root.is_file():
        if root.suffix in _NX_SUFFIXES:
            return "networkx"
        if root.suffix in (".csv", ".npy", ".txt"):
            return "edge_list"
    elif root.is_dir():
        for folder in (root, root / "raw"):
            if list(folder.glob("ind.*.x")):
                return "planetoid"
            if list(folder.glob("*_A.txt")):
                return "tu"
        if any(os.path.lexists(root / f"edges{s}") for s in (".csv", ".npy", ".txt")):
            return "edge_list"  # also a broken edges file: reading it names the problem
        nx_files = [p for p in root.iterdir() if p.suffix in _NX_SUFFIXES]
        if len(nx_files) == 1:
            return "networkx"
    else:
        raise GraphDataError(f"{display_name(root)} {file_problem(root) or 'is no file or folder'}")
    raise GraphDataError(
        f"{display_name(root)}: no graph data recognized; expected Planetoid raw files (ind.NAME.x ...), TUDataset raw "
        f"files (NAME_A.txt ...), edges.csv / edges.npy (+ features.*, labels.*) or one networkx file "
        f"({', '.join(_NX_SUFFIXES)})"
    )


def _node_level(graph: Any, split: str, partitions: int, train: float, val: float, seed: int) -> Dataset:
    from anymae.datasets.graph.dataset import GraphNodeDataset, NodePartitions, stratified_split

    if graph.y is not None and graph.train_mask is None:
        tr, va, te = stratified_split(graph.y, train, val, seed)
        graph = graph.replace(train_mask=tr, val_mask=va, test_mask=te)
    if split == "pretrain" and partitions > 1:
        return NodePartitions(graph, partitions, seed)
    return GraphNodeDataset(graph)


@SOURCES.register("graph_folder", config=GraphFolderSource, modality="graph", files={})
def _graph_folder(cfg: GraphFolderSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.graph import readers as g
    from anymae.datasets.graph.dataset import GraphListDataset

    root = Path(cfg.root)
    fmt = detect_format(root) if cfg.format == "auto" else cfg.format
    dim = model_config.get("in_dim")
    if fmt == "tu":
        graphs, labels = g.read_tu(
            root, cfg.name, node_features=cfg.node_features, feature_dim=dim, max_degree=cfg.max_degree
        )
        return GraphListDataset(graphs, labels)
    if fmt == "planetoid":
        from anymae.datasets.graph.planetoid import read_planetoid

        graph = read_planetoid(root, cfg.name)
    elif fmt == "edge_list":
        edges = root if root.is_file() else g.find_table(root, "edges")
        if edges is None:
            raise g.GraphDataError(f"{root}: no edges.csv / edges.npy / edges.txt")
        folder = root.parent if root.is_file() else root
        graph = g.read_edge_list(
            edges, features=g.find_table(folder, "features"), labels=g.find_table(folder, "labels"),
            undirected=cfg.undirected, feature_dim=dim,
        )
    elif fmt == "networkx":
        path = root if root.is_file() else next(p for p in root.iterdir() if p.suffix in _NX_SUFFIXES)
        graph = g.read_networkx(path, feature_key=cfg.feature_key, label_key=cfg.label_key, feature_dim=dim)
    else:
        raise g.GraphDataError(f"data.format={fmt!r}: expected auto, planetoid, tu, edge_list or networkx")
    return _node_level(graph, split, cfg.partitions, cfg.train_ratio, cfg.val_ratio, cfg.split_seed)


def _feature_dim(value: int | None, model_config: dict[str, Any]) -> int:
    return int(value if value is not None else model_config.get("in_dim", 64))


@SOURCES.register("sbm_graph", config=SbmGraphSource, modality="graph")
def _sbm_graph(cfg: SbmGraphSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    import torch

    from anymae.modalities.graph_data import stochastic_block_graph

    gen = torch.Generator().manual_seed(cfg.seed)
    graph = stochastic_block_graph(
        cfg.blocks, cfg.p_in, cfg.p_out, _feature_dim(cfg.feature_dim, model_config), noise=cfg.noise,
        words=cfg.words, generator=gen,
    )
    return _node_level(graph, split, cfg.partitions, cfg.train_ratio, cfg.val_ratio, cfg.seed)


@SOURCES.register("sbm_graphs", config=SbmGraphsSource, modality="graph")
def _sbm_graphs(cfg: SbmGraphsSource, split: str, augment: Any, model_config: dict[str, Any]) -> Dataset:
    from anymae.datasets.graph.dataset import sbm_graph_dataset

    return sbm_graph_dataset(cfg.n, cfg.nodes, _feature_dim(cfg.feature_dim, model_config), seed=cfg.seed)
