"""`Graphs`: the graph modality's batch — one graph or a mini-batch packed as a disjoint union.

Plain tensors only (no torch_geometric needed to hold, move or batch graphs); `Graphs.from_pyg`
and `to_pyg` convert from and to torch_geometric's `Data` / `Batch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class Graphs:
    """G graphs with N nodes and E directed edges in total (PyG's `Batch` layout).

    Attributes:
        x: N×F float node features.
        edge_index: 2×E long (source row 0, target row 1), node ids in [0, N).
        batch: N long, the graph of each node, non-decreasing in [0, G).
        num_graphs: G.
        y: optional N long node labels (-1 = unknown), for node classification.
        train_mask, val_mask, test_mask: optional N bool node splits.
    """

    x: Tensor
    edge_index: Tensor
    batch: Tensor | None = None
    num_graphs: int = 1
    y: Tensor | None = None
    train_mask: Tensor | None = None
    val_mask: Tensor | None = None
    test_mask: Tensor | None = None

    def __post_init__(self) -> None:
        if self.x.ndim != 2:
            raise ValueError(f"Graphs.x must be N×F node features, got shape {tuple(self.x.shape)}")
        if self.edge_index.ndim != 2 or self.edge_index.shape[0] != 2:
            raise ValueError(f"Graphs.edge_index must be 2×E, got shape {tuple(self.edge_index.shape)}")
        if self.batch is None:
            self.batch = torch.zeros(self.x.shape[0], dtype=torch.long, device=self.x.device)

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def shape(self) -> torch.Size:
        """The node-feature matrix's shape N×F (what changes when a graph is reconstructed)."""
        return self.x.shape

    def replace(self, **changes: Any) -> Graphs:
        """A copy with some fields changed (e.g. `x=` reconstructed features)."""
        return dataclasses.replace(self, **changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Graphs:
        """Every tensor moved to `device`."""
        moved = {
            f.name: v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }
        return Graphs(**moved)

    @classmethod
    def from_pyg(cls, data: Any) -> Graphs:
        """From a torch_geometric `Data` (one graph) or `Batch` (several)."""
        batch = getattr(data, "batch", None)
        num_graphs = int(getattr(data, "num_graphs", 1) or 1) if batch is not None else 1
        y = getattr(data, "y", None)
        node_y = y if y is not None and y.ndim == 1 and y.shape[0] == data.num_nodes else None
        return cls(
            x=data.x.float(), edge_index=data.edge_index.long(), batch=batch, num_graphs=num_graphs, y=node_y,
            train_mask=getattr(data, "train_mask", None), val_mask=getattr(data, "val_mask", None),
            test_mask=getattr(data, "test_mask", None),
        )

    def to_pyg(self) -> Any:
        """A torch_geometric `Data` (needs the graph extra)."""
        from anymae.extras import require

        data = require("torch_geometric.data", "graph", purpose="torch_geometric graphs")
        fields = {k: v for k, v in dataclasses.asdict(self).items() if isinstance(v, Tensor)}
        return data.Data(**fields)


def collate_graphs(graphs: Sequence[Graphs]) -> Graphs:
    """Pack graphs into one disjoint union: node ids offset, `batch` numbering the graphs.

    Node labels and splits are kept when every graph has them.
    """
    if not graphs:
        raise ValueError("collate_graphs: no graphs to batch")
    if len(graphs) == 1 and graphs[0].num_graphs == 1:
        return graphs[0]
    sizes = torch.tensor([g.num_nodes for g in graphs])
    offsets = torch.cumsum(sizes, 0) - sizes  # G
    edges = torch.cat([g.edge_index + int(o) for g, o in zip(graphs, offsets)], dim=1)  # 2×E
    counts = [g.num_graphs for g in graphs]
    bases = torch.cumsum(torch.tensor(counts), 0) - torch.tensor(counts)
    batch = torch.cat([g.batch + int(b) for g, b in zip(graphs, bases)])  # N  # type: ignore[operator]

    def cat(name: str) -> Tensor | None:
        parts = [getattr(g, name) for g in graphs]
        return torch.cat(parts) if all(p is not None for p in parts) else None

    return Graphs(
        x=torch.cat([g.x for g in graphs]), edge_index=edges, batch=batch, num_graphs=sum(counts),
        y=cat("y"), train_mask=cat("train_mask"), val_mask=cat("val_mask"), test_mask=cat("test_mask"),
    )


def without_self_loops(edge_index: Tensor) -> Tensor:
    """2×E -> 2×E' with every i -> i edge removed."""
    return edge_index[:, edge_index[0] != edge_index[1]]


def with_self_loops(edge_index: Tensor, num_nodes: int) -> Tensor:
    """GraphMAE's `remove_self_loop().add_self_loop()`: exactly one i -> i edge per node, appended."""
    loops = torch.arange(num_nodes, device=edge_index.device).expand(2, -1)  # 2×N
    return torch.cat([without_self_loops(edge_index), loops], dim=1)


def stochastic_block_graph(
    sizes: Sequence[int],
    p_in: float,
    p_out: float,
    feature_dim: int,
    *,
    noise: float = 0.3,
    words: int = 8,
    generator: torch.Generator | None = None,
) -> Graphs:
    """A stochastic-block-model graph with sparse bag-of-words features (tests, demos, benchmarks).

    Nodes of block k connect with probability `p_in` inside the block and `p_out` across blocks
    (undirected: both directions stored, no self-loops). Each block has a topic, a random set of
    `max(1, F // 4)` words; a node's binary features mark `words` draws, each from its block's
    topic with probability `1 - noise`, else uniform over all F words (Cora-like sparse rows).
    Node labels are the blocks.

    Args:
        sizes: nodes per block.
        p_in, p_out: edge probabilities.
        feature_dim: F.
        noise: share of off-topic words.
        words: word draws per node.
        generator: the random source.
    """
    k = len(sizes)
    block = torch.repeat_interleave(torch.arange(k), torch.tensor(list(sizes)))  # N
    n = int(block.numel())
    probs = torch.where(block[:, None] == block[None, :], p_in, p_out)  # N×N
    upper = torch.triu(torch.rand(n, n, generator=generator) < probs, diagonal=1)
    src, dst = upper.nonzero(as_tuple=True)
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)  # 2×E, both directions
    topic_size = max(1, feature_dim // 4)
    topics = torch.stack([torch.randperm(feature_dim, generator=generator)[:topic_size] for _ in range(k)])  # K×T
    pick = torch.randint(0, topic_size, (n, words), generator=generator)  # N×W
    on_topic = topics[block.unsqueeze(1), pick]  # N×W word ids from the block's topic
    uniform = torch.randint(0, feature_dim, (n, words), generator=generator)  # N×W
    off = torch.rand(n, words, generator=generator) < noise
    ids = torch.where(off, uniform, on_topic)  # N×W
    x = torch.zeros(n, feature_dim).scatter_(1, ids, 1.0)  # N×F binary
    return Graphs(x=x, edge_index=edge_index, y=block)
