"""Graph datasets: one graph (node-level), graphs with labels (graph-level), node partitions.

Items are `(Graphs, label)` (label -1 when unlabeled), batched with `collate_graphs` (`collate_x`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset
from anymae.datasets.graph.tables import GraphDataError
from anymae.modalities.graph_data import Graphs, collate_graphs, stochastic_block_graph


def _apportion(total: int, sizes: list[int], caps: list[int]) -> list[int]:
    """`total` split over classes in proportion to `sizes` (Hamilton's largest remainders; ties to
    the lower class), no class above its cap."""
    whole = sum(sizes)
    exact = [total * s / whole for s in sizes]
    out = [min(int(e), c) for e, c in zip(exact, caps)]
    order = sorted(range(len(sizes)), key=lambda k: (-(exact[k] - int(exact[k])), k))
    while sum(out) < total and any(o < c for o, c in zip(out, caps)):
        for k in order:
            if sum(out) < total and out[k] < caps[k]:
                out[k] += 1
    return out


def stratified_split(labels: Tensor, train: float, val: float, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Three disjoint N bool masks over the labelled nodes (label >= 0), stratified by class.

    Of the L labelled nodes `int(train·L)` train and `int(val·L)` validate, the rest test; each
    class gives each split a share proportional to its size (`_apportion`), its nodes taken in the
    order of a permutation drawn per class (classes in increasing order) from one generator
    seeded with `seed`. Unlabelled nodes (-1) are in no mask.
    """
    if not (0 < train and 0 <= val and train + val < 1):
        raise GraphDataError(f"split ratios train={train}, val={val}: expected train > 0, val >= 0, train + val < 1")
    classes = torch.unique(labels[labels >= 0])  # C, sorted
    members = [torch.nonzero(labels == c).flatten() for c in classes]
    sizes = [len(m) for m in members]
    n = sum(sizes)
    n_train = _apportion(int(train * n), sizes, sizes) if n else []
    n_val = _apportion(int(val * n), sizes, [s - t for s, t in zip(sizes, n_train)]) if n else []
    gen = torch.Generator().manual_seed(seed)
    masks = [torch.zeros(len(labels), dtype=torch.bool) for _ in range(3)]
    for nodes, k_tr, k_va in zip(members, n_train, n_val):
        nodes = nodes[torch.randperm(len(nodes), generator=gen)]
        masks[0][nodes[:k_tr]], masks[1][nodes[k_tr : k_tr + k_va]], masks[2][nodes[k_tr + k_va :]] = True, True, True
    return masks[0], masks[1], masks[2]


class GraphNodeDataset(Dataset, SampleDataset):
    """One graph as a dataset of one item `(graph, -1)` (node-level pretraining and probes)."""

    collate_x = staticmethod(collate_graphs)

    def __init__(self, graph: Graphs) -> None:
        self.graph = graph

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> tuple[Graphs, int]:
        if index != 0:
            raise IndexError(index)
        return self.graph, -1


class GraphListDataset(Dataset, SampleDataset):
    """Graphs with one label each, `(graph_i, label_i)` (graph-level pretraining, SVM probes)."""

    collate_x = staticmethod(collate_graphs)

    def __init__(self, graphs: Sequence[Graphs], labels: Tensor | None = None) -> None:
        if labels is not None and len(labels) != len(graphs):
            raise GraphDataError(f"{len(labels)} graph labels for {len(graphs)} graphs")
        self.graphs, self.labels = list(graphs), labels

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> tuple[Graphs, int]:
        return self.graphs[index], int(self.labels[index]) if self.labels is not None else -1


def node_subgraph(graph: Graphs, nodes: Tensor) -> Graphs:
    """The subgraph induced by `nodes` (sorted ids), relabelled 0..k-1; labels and splits kept."""
    keep = torch.zeros(graph.num_nodes, dtype=torch.bool)
    keep[nodes] = True
    relabel = torch.full((graph.num_nodes,), -1, dtype=torch.long)
    relabel[nodes] = torch.arange(len(nodes))
    ei = graph.edge_index
    inside = keep[ei[0]] & keep[ei[1]]

    def pick(t: Tensor | None) -> Tensor | None:
        return None if t is None else t[nodes]

    return Graphs(
        x=graph.x[nodes], edge_index=relabel[ei[:, inside]], y=pick(graph.y), train_mask=pick(graph.train_mask),
        val_mask=pick(graph.val_mask), test_mask=pick(graph.test_mask),
    )


class NodePartitions(Dataset, SampleDataset):
    """A large graph as `num_parts` induced subgraphs of a fixed random node partition.

    Mini-batch pretraining without pyg-lib / torch-sparse (which NeighborLoader / GraphSAINT
    need): the partition is drawn once from `seed`; batches of parts are packed like graphs, so
    edges between parts of one batch are dropped. Items are `(subgraph, -1)`.
    """

    collate_x = staticmethod(collate_graphs)

    def __init__(self, graph: Graphs, num_parts: int, seed: int = 0) -> None:
        if not 1 <= num_parts <= graph.num_nodes:
            raise GraphDataError(f"num_parts={num_parts}: expected 1..{graph.num_nodes} (the node count)")
        perm = torch.randperm(graph.num_nodes, generator=torch.Generator().manual_seed(seed))
        self.graph, self.parts = graph, [p.sort().values for p in perm.chunk(num_parts)]

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, index: int) -> tuple[Graphs, int]:
        return node_subgraph(self.graph, self.parts[index]), -1


def sbm_graph_dataset(n: int, nodes: int, feature_dim: int, *, seed: int = 0) -> GraphListDataset:
    """Graph classification toy data: class 0 = 2-block SBMs, class 1 = 3-block SBMs (same size)."""
    gen = torch.Generator().manual_seed(seed)
    graphs, labels = [], []
    for i in range(n):
        k = 2 + i % 2
        sizes = [nodes // k + (1 if j < nodes % k else 0) for j in range(k)]
        graphs.append(stochastic_block_graph(sizes, 0.7, 0.05, feature_dim, noise=0.5, generator=gen).replace(y=None))
        labels.append(i % 2)
    return GraphListDataset(graphs, torch.tensor(labels))

