"""Node classification on frozen full-graph embeddings (GraphMAE's linear probe), and graph embeddings
for the SVM graph-classification protocol.

Protocol (THUDM/GraphMAE `graphmae/evaluation.py`, `linear_prob=True`): embeddings are the
encoder's output on the whole unmasked graph (`model.features(graph)`, GraphMAE's `embed`); a
`LogisticRegression` (one Linear, PyTorch's default init) is trained full-batch on the training
nodes with Adam (lr 0.01, weight decay 1e-4 on every parameter) and cross-entropy for 300 epochs;
after every epoch validation and test accuracy are measured. Reported per seed: the final-epoch
test accuracy and the test accuracy at the best validation epoch (ties go to the later epoch, as
the reference's `>=`). Results are mean ± std over seeds (the reference: 20).

Difference by design: the reference re-pretrains the encoder for every seed; here the seeds vary
the probe (its init), the encoder is the one checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anymae.core.config import load_config
from anymae.core.pooling import Pool, pool
from anymae.modalities.graph_data import Graphs
from anymae.tasks.evaluate.labels import check_probe_labels
from anymae.tasks.train.config import EvalRunConfig


@dataclass
class NodeProbeResult:
    """Per-seed accuracies (%) of the node probe.

    Attributes:
        final: test accuracy after the last epoch, one per seed.
        at_best_val: test accuracy at the best validation epoch, one per seed.
        best_val: the best validation accuracy, one per seed.
    """

    final: list[float]
    at_best_val: list[float]
    best_val: list[float]

    def summary(self) -> dict[str, float]:
        """{final_mean, final_std, at_best_val_mean, at_best_val_std, seeds} (population std, as numpy's)."""
        return {
            "final_mean": float(np.mean(self.final)), "final_std": float(np.std(self.final)),
            "at_best_val_mean": float(np.mean(self.at_best_val)), "at_best_val_std": float(np.std(self.at_best_val)),
            "seeds": len(self.final),
        }


@torch.no_grad()
def node_embeddings(model: nn.Module, graph: Graphs, *, device: str | torch.device = "cpu") -> Tensor:
    """N×H frozen embeddings of every node of `graph` (eval mode; the model's mode is restored)."""
    was_training = model.training
    model.to(device).eval()
    try:
        return model.features(graph.to(device)).tokens[0].float().cpu()  # type: ignore[operator]
    finally:
        model.train(was_training)


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    return 100.0 * float((logits.argmax(dim=1) == labels).float().mean()) if len(labels) else float("nan")


def logistic_regression_probe(
    embeddings: Tensor,
    labels: Tensor,
    masks: tuple[Tensor, Tensor, Tensor],
    *,
    lr: float = 0.01,
    weight_decay: float = 1e-4,
    epochs: int = 300,
    seed: int = 0,
) -> tuple[float, float, float]:
    """One seed of GraphMAE's node probe.

    Args:
        embeddings: N×H node features (frozen).
        labels: N long class ids (nodes outside the masks may hold -1).
        masks: (train, val, test) N bool.
        lr, weight_decay, epochs: Adam's settings and the number of full-batch steps.
        seed: seeds the Linear's init.

    Returns:
        (final-epoch test acc, test acc at the best val epoch, best val acc), in %.
    """
    train, val, test = masks
    for name, m in zip(("train", "val", "test"), masks):
        if m.shape != labels.shape or (labels[m] < 0).any():
            raise ValueError(f"node probe: the {name} mask must cover labelled nodes only (labels >= 0)")
    if not train.any() or not test.any():
        raise ValueError("node probe: the train and test masks must select at least one node each")
    check_probe_labels(labels[train], labels[test], where="node probe")
    num_classes = int(labels.max()) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(embeddings.shape[1], num_classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    best_val, at_best, test_acc = -1.0, float("nan"), float("nan")
    for _ in range(epochs):
        head.train()
        loss = F.cross_entropy(head(embeddings[train]), labels[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            head.eval()
            logits = head(embeddings)
            val_acc = _accuracy(logits[val], labels[val]) if val.any() else 0.0
            test_acc = _accuracy(logits[test], labels[test])
        if val_acc >= best_val:
            best_val, at_best = val_acc, test_acc
    return test_acc, at_best, best_val


def probe_nodes(
    embeddings: Tensor,
    graph: Graphs,
    *,
    seeds: list[int] | range = range(20),
    lr: float = 0.01,
    weight_decay: float = 1e-4,
    epochs: int = 300,
) -> NodeProbeResult:
    """GraphMAE's node probe over several seeds on `graph`'s labels and train/val/test masks."""
    if graph.y is None or graph.train_mask is None or graph.test_mask is None:
        raise ValueError("node probe: the graph needs node labels (y) and train/test masks")
    val = graph.val_mask if graph.val_mask is not None else torch.zeros_like(graph.train_mask)
    masks = (graph.train_mask.cpu(), val.cpu(), graph.test_mask.cpu())
    runs = [
        logistic_regression_probe(
            embeddings, graph.y.cpu(), masks, lr=lr, weight_decay=weight_decay, epochs=epochs, seed=s
        )
        for s in seeds
    ]
    return NodeProbeResult(*[[r[i] for r in runs] for i in range(3)])


@torch.no_grad()
def graph_embeddings(
    model: nn.Module, data: Any, *, pooling: Pool | None = None, batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> Any:
    """G×H frozen graph embeddings (a `FeatureSet`) of a graph-level dataset of `(Graphs, label)` items.

    Each batch of graphs is encoded as one packed graph and read out per graph with `pooling`
    (a pool of `anymae.core.pooling` without cls: "mean", "sum", "max", "mean_max"; default: the
    model's `default_pool`, i.e. its `pooling` option, GraphMAE's `pooler`).
    """
    from torch.utils.data import DataLoader

    from anymae.datasets.collate import collate_fn_for
    from anymae.tasks.evaluate.features import FeatureSet, resolve_pool

    kind = resolve_pool(pooling, model, where="graph embeddings")
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_fn_for(data))
    was_training = model.training
    model.to(device).eval()
    feats, labels = [], []
    try:
        for graphs, label in loader:
            feats.append(pool(model.features(graphs.to(device)), kind).float().cpu())  # type: ignore[operator]  # G×D
            labels.append(torch.as_tensor(label).long())
    finally:
        model.train(was_training)
    return FeatureSet(features=torch.cat(feats), labels=torch.cat(labels))


def probe_graphs(model: nn.Module, data: Any, *, pooling: Pool | None = None, folds: int = 10, seed: int = 0) -> Any:
    """GraphMAE's graph-classification protocol: SVC, C from {1e-3 ... 10} by inner grid search,
    10 stratified shuffled folds (`tasks.probe_svm.svm_cross_validate`) on `graph_embeddings`."""
    from anymae.tasks.evaluate.svm import svm_cross_validate

    features = graph_embeddings(model, data, pooling=pooling)
    return svm_cross_validate(features, folds=min(folds, int(torch.bincount(features.labels).min())), seed=seed)


@dataclass
class NodeProbeSettings:
    """The probe's recipe (GraphMAE's Cora values: lr_f 0.01, weight_decay_f 1e-4, max_epoch_f 300, 20 seeds)."""

    lr: float = 0.01
    weight_decay: float = 1e-4
    epochs: int = 300
    seeds: int = 20


@dataclass
class NodeProbeConfig:
    """`anymae probe-nodes`: a checkpoint, a node-level graph with labels and splits, the settings."""

    checkpoint: str
    data: dict[str, Any]
    probe: NodeProbeSettings = field(default_factory=NodeProbeSettings)
    run: EvalRunConfig = field(default_factory=EvalRunConfig)  # run.device (the graph is one full batch)
    out: str | None = None  # `anymae probe-nodes` also writes the results here as JSON


def load_node_probe_config(path: str | None, overrides: list[str]) -> NodeProbeConfig:
    return load_config(NodeProbeConfig, path, overrides)


def run_node_probe(cfg: NodeProbeConfig) -> dict[str, float]:
    """Load the checkpoint's encoder and the graph (`data`, its test split), probe, summarize."""
    from anymae.datasets.sources import build_dataset
    from anymae.tasks.train.distributed import resolve_device
    from anymae.tasks.train.pretrain import load_pretrained

    model = load_pretrained(cfg.checkpoint)
    data = build_dataset(cfg.data, split="test", augment=False, model_config=model.config)
    graph = getattr(data, "graph", None)
    if not isinstance(graph, Graphs) or len(data) != 1:  # type: ignore[arg-type]
        raise ValueError("probe-nodes needs one node-level graph (Planetoid, an edge list, networkx, sbm_graph)")
    emb = node_embeddings(model, graph, device=resolve_device(cfg.run.device))
    p = cfg.probe
    summary = probe_nodes(emb, graph, seeds=range(p.seeds), lr=p.lr, weight_decay=p.weight_decay, epochs=p.epochs)
    return summary.summary()
