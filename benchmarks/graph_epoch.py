"""GraphMAE epoch time and peak memory: full-batch vs mini-batches of sampled subgraphs.

A generated graph (default 100k nodes, 1M directed edges, 128 sparse binary features) is
pretrained with the Cora recipe's GAT (hidden and heads configurable) for a few epochs:

- full batch: the whole graph is one sample (one step per epoch, GraphMAE's transductive setup);
- mini-batches: the nodes in `--parts` random partitions, `--parts-per-batch` induced subgraphs
  packed per step (`anymae.datasets.graph.dataset.NodePartitions`; pyg-lib / torch-sparse, which PyG's
  NeighborLoader and GraphSAINT need, have no wheels here). Edges between parts are dropped.

Prints seconds per epoch and peak memory (CUDA: max allocated; CPU: the process's max RSS, which
only grows, so the CPU run measures full batch first and reports the increase).

    python benchmarks/graph_epoch.py --quick          # < 1 minute on a CPU
    python benchmarks/graph_epoch.py                  # 100k nodes, 1M edges
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

import anymae
from anymae.datasets.graph.dataset import NodePartitions
from anymae.modalities.graph_data import Graphs, collate_graphs


def random_graph(nodes: int, edges: int, features: int, seed: int = 0) -> Graphs:
    """Uniform random directed edges (no self-loops) and sparse binary features (~5% ones)."""
    gen = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, nodes, (2, edges), generator=gen)
    ei = ei[:, ei[0] != ei[1]]
    x = (torch.rand(nodes, features, generator=gen) < 0.05).float()
    return Graphs(x=x, edge_index=ei)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_epochs(model: torch.nn.Module, batches: list[Graphs], epochs: int, device: torch.device) -> float:
    """Seconds per epoch (after one warm-up step) of Adam steps over `batches`."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=2e-4)
    model.to(device).train()

    def step(g: Graphs, i: int) -> None:
        loss = model(g.to(device), seeds=torch.tensor([i])).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(batches[0], 0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for e in range(epochs):
        for i, g in enumerate(batches):
            step(g, e * len(batches) + i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2k nodes, 20k edges, 1 epoch")
    p.add_argument("--nodes", type=int, default=100_000)
    p.add_argument("--edges", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=128)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--parts", type=int, default=64)
    p.add_argument("--parts-per-batch", type=int, default=4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    if a.quick:
        a.nodes, a.edges, a.epochs, a.hidden, a.parts = 2000, 20_000, 1, 64, 8
    device = torch.device(a.device)
    torch.manual_seed(0)
    graph = random_graph(a.nodes, a.edges, a.features)
    model = anymae.create_model("graphmae_gat_cora", in_dim=a.features, num_hidden=a.hidden, num_heads=a.heads)
    params = sum(q.numel() for q in model.parameters())
    print(f"graph: {a.nodes} nodes, {graph.edge_index.shape[1]} edges, {a.features} features; GAT {a.hidden} hidden, "
          f"{a.heads} heads ({params / 1e6:.2f}M params); device {device}")

    base = _peak_mb(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    full = run_epochs(model, [graph], a.epochs, device)
    full_mem = _peak_mb(device) - (base if device.type == "cpu" else 0)
    print(f"full batch      : {full:8.3f} s/epoch  (1 step/epoch)        peak {full_mem:9.1f} MB")

    parts = NodePartitions(graph, a.parts, seed=0)
    subgraphs = [parts[i][0] for i in range(len(parts))]
    k = a.parts_per_batch
    batches = [collate_graphs(subgraphs[i : i + k]) for i in range(0, len(subgraphs), k)]
    kept = sum(b.edge_index.shape[1] for b in batches) / graph.edge_index.shape[1]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    mini = run_epochs(model, batches, a.epochs, device)
    mini_mem = _peak_mb(device) - (base if device.type == "cpu" else 0)
    note = " (CPU max RSS only grows: not below full batch)" if device.type == "cpu" else ""
    print(f"mini-batches    : {mini:8.3f} s/epoch  ({len(batches)} steps/epoch, {kept:.0%} of edges kept)  "
          f"peak {mini_mem:9.1f} MB{note}")
    print(f"ratio mini/full : {mini / full:.2f}x time per epoch")


if __name__ == "__main__":
    main()
