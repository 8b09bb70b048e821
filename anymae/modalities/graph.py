"""Graphs: GraphMAE — masked node features, re-masking, scaled cosine error.

Tokens are nodes: a batch of graphs (`Graphs`, one graph or a packed mini-batch) becomes one row
of N node tokens whose inputs and targets are the node features (1×N×F), with the edges (plus
one self-loop per node, GraphMAE's preprocessing) in `tokens.extra`. The model is the core's
`MaskedAutoencoder` in replace mode (`ReplaceMode`): hidden nodes' features become the learned
[MASK] vector (a `replace_rate` share: other random nodes' features), a message-passing encoder
(GAT / GIN / GCN, or the shared transformer with edges as the attention constraint) sees the
whole graph, its output is projected (Linear, no bias), re-masked (hidden rows = 0) and decoded
by one GNN layer to the features; the loss is the scaled cosine error on hidden nodes.

Presets follow GraphMAE's `configs.yml` (THUDM/GraphMAE): Cora (GAT), MUTAG and PROTEINS (GIN);
plus CPU-sized ones. Needs torch_geometric (the `graph` extra) to build a model; this module
imports without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from anymae.core.build import config_dict, resolve_config
from anymae.core.encoder import EncoderConfig
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import register_model
from anymae.core.skeleton import ReplaceMode, TransformerBackbone
from anymae.core.tokens import Tokens
from anymae.modalities.graph_data import Graphs, collate_graphs, stochastic_block_graph, with_self_loops

Backbone = Literal["gat", "gin", "gcn", "transformer"]

# uint8 mid-gray (128) on [0, 1], as the image modality's.
MID_GRAY: float = 128 / 255


def as_graphs(batch: Any) -> Graphs:
    """`Graphs` as is; a torch_geometric `Data` / `Batch` converted."""
    if isinstance(batch, Graphs):
        return batch
    if hasattr(batch, "x") and hasattr(batch, "edge_index"):
        return Graphs.from_pyg(batch)
    raise TypeError(f"expected a Graphs batch (or a torch_geometric Data / Batch), got {type(batch).__name__}")


class GraphTokenizer(nn.Module):
    """Graphs -> node tokens (see the module doc). No parameters.

    Args:
        in_dim: node feature width F the model is built for.
        self_loops: replace self-loops by exactly one per node (GraphMAE's preprocessing).
        example_nodes: nodes per graph of `example()` batches.
    """

    def __init__(self, in_dim: int, *, self_loops: bool = True, example_nodes: int = 12) -> None:
        super().__init__()
        self.dim, self.self_loops, self.example_nodes = in_dim, self_loops, example_nodes
        self.pos_embed = None  # nodes carry no positions

    def forward(self, batch: Any) -> Tokens:
        graphs = as_graphs(batch)
        n, f = graphs.x.shape
        if f != self.dim:
            raise ValueError(
                f"the graphs have {f} node features but the model was built for in_dim={self.dim}; "
                f"set model.in_dim={f}"
            )
        edge_index = graphs.edge_index
        if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
            raise ValueError(f"edge_index holds node ids outside [0, {n}) (min {int(edge_index.min())}, "
                             f"max {int(edge_index.max())})")
        if self.self_loops:
            edge_index = with_self_loops(edge_index, n)
        x = graphs.x.unsqueeze(0)  # 1×N×F: one packed row of every node of the batch
        return Tokens(x=x, target=x, grid=(n,), extra={"edge_index": edge_index, "graphs": graphs})

    def segments(self, tokens: Tokens) -> tuple[Tensor, int]:
        """(N graph ids of the nodes, number of graphs): per-graph pooling of packed features."""
        graphs: Graphs = tokens.extra["graphs"]  # type: ignore[index]
        return graphs.batch, graphs.num_graphs  # type: ignore[return-value]

    def untokenize(self, values: Tensor, tokens: Tokens) -> Graphs:
        """1×N×F per-node values -> the batch's graphs with those node features."""
        return tokens.extra["graphs"].replace(x=values[0])  # type: ignore[index]

    def example(self, batch_size: int) -> Graphs:
        """`batch_size` random two-block SBM graphs of `example_nodes` nodes, packed."""
        gen = torch.Generator().manual_seed(0)
        half = self.example_nodes // 2
        sizes = (half, self.example_nodes - half)
        return collate_graphs(
            [stochastic_block_graph(sizes, 0.6, 0.1, self.dim, generator=gen) for _ in range(batch_size)]
        )

    def to_pictures(
        self, batch: Any, vmin: float = 0.0, vmax: float = 1.0, max_nodes: int = 48, max_features: int = 48
    ) -> np.ndarray:
        """One picture per graph: its node-feature matrix (first `max_nodes` nodes as rows, first
        `max_features` features as columns) in gray levels, `vmin` black and `vmax` white,
        each value a 2×2 pixel cell; unused cells are black.

        Returns:
            G×(2·max_nodes)×(2·max_features)×3 uint8.
        """
        graphs = as_graphs(batch)
        x = ((graphs.x.detach().float().cpu() - vmin) / (vmax - vmin)).clamp(0, 1)  # N×F on [0, 1]
        canvas = torch.zeros(graphs.num_graphs, max_nodes, max_features)
        batch_ids = graphs.batch.cpu()  # type: ignore[union-attr]
        for g in range(graphs.num_graphs):
            rows = x[batch_ids == g][:max_nodes, :max_features]  # n×f
            canvas[g, : rows.shape[0], : rows.shape[1]] = rows
        cells = canvas.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # G×2n×2f
        return (cells.unsqueeze(-1).expand(-1, -1, -1, 3) * 255).round().to(torch.uint8).numpy()

    def picture_fill(self, tokens: Tokens, level: float = MID_GRAY, vmin: float = 0.0, vmax: float = 1.0,
                     **_: Any) -> Tensor:
        """The feature value `to_pictures` renders as gray `level`: 1×1×1, broadcast over B×N×F."""
        return torch.full((1, 1, 1), vmin + level * (vmax - vmin)).to(tokens.x)


@dataclass
class GraphMAEConfig:
    """GraphMAE's options (names as its argparse flags; defaults: its Cora `configs.yml` entry).

    `num_hidden` is the encoder's output width (GAT: `num_hidden // num_heads` per head, heads
    concatenated); the decoder is one layer of type `decoder` to `in_dim` (GAT: `num_out_heads`
    heads). `gamma` is the SCE exponent (`alpha_l`). `pooling` is the per-graph readout of
    graph-level features. The transformer option uses `num_hidden` / `num_layers` / `num_heads`
    for the shared transformer, attention restricted to edges + self, and a one-block decoder.
    """

    in_dim: int = 1433
    encoder: Backbone = "gat"
    decoder: Backbone = "gat"
    num_hidden: int = 512
    num_layers: int = 2
    num_heads: int = 4
    num_out_heads: int = 1
    activation: Literal["prelu", "relu", "gelu", "elu"] | None = "prelu"
    in_drop: float = 0.2
    attn_drop: float = 0.1
    negative_slope: float = 0.2
    residual: bool = False
    norm: Literal["batchnorm", "layernorm"] | None = None
    mask_ratio: float = 0.5
    replace_rate: float = 0.05
    gamma: float = 3.0
    masking: str = "random_hide"  # a core.masking.MASKINGS name; random_hide hides int(ratio * N)
    pooling: Literal["mean", "sum", "max"] = "mean"
    self_loops: bool = True


def _backbone(cfg: GraphMAEConfig, kind: str, in_dim: int, out_dim: int, *, encoding: bool) -> nn.Module:
    """One encoder (`encoding`, `num_layers`) or decoder (one layer) backbone of type `kind`."""
    from anymae.modalities import graph_backbones as gb  # needs torch_geometric

    layers = cfg.num_layers if encoding else 1
    common = {"in_drop": cfg.in_drop, "residual": cfg.residual, "norm": cfg.norm, "activation": cfg.activation}
    if kind == "gat":
        heads = cfg.num_heads if encoding else cfg.num_out_heads
        if out_dim % heads:
            raise ValueError(f"GAT width {out_dim} is not divisible by {heads} heads")
        return gb.gat(
            in_dim, cfg.num_hidden // cfg.num_heads, out_dim // heads, layers, nhead=cfg.num_heads,
            nhead_out=heads, attn_drop=cfg.attn_drop, negative_slope=cfg.negative_slope, encoding=encoding, **common,
        )
    if kind == "gin":
        return gb.gin(in_dim, cfg.num_hidden, out_dim, layers, encoding=encoding, **common)
    if kind == "gcn":
        return gb.gcn(in_dim, cfg.num_hidden, out_dim, layers, encoding=encoding, **common)
    if kind == "transformer":
        tcfg = EncoderConfig(dim=cfg.num_hidden, depth=layers, num_heads=cfg.num_heads, cls_token=False)
        return TransformerBackbone(
            tcfg, in_dim, None if encoding else out_dim, attn_mask=gb.edge_attention_mask
        )  # the encoder outputs the transformer width; the decoder has a Linear head to the features
    raise ValueError(f"backbone {kind!r}: expected 'gat', 'gin', 'gcn' or 'transformer'")


def build_graphmae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered graph preset with overrides (e.g. in_dim=500, encoder="gin")."""
    cfg = resolve_config(GRAPH_PRESETS[name], overrides, what=f"model {name!r}")  # type: ignore[type-var]
    encoder = _backbone(cfg, cfg.encoder, cfg.in_dim, cfg.num_hidden, encoding=True)
    decoder = _backbone(cfg, cfg.decoder, cfg.num_hidden, cfg.in_dim, encoding=False)
    return MaskedAutoencoder(
        GraphTokenizer(cfg.in_dim, self_loops=cfg.self_loops),
        encoder,
        decoder,
        make_masking(cfg.masking, cfg.mask_ratio),
        mode=ReplaceMode(cfg.replace_rate),
        loss="sce",
        loss_params={"gamma": cfg.gamma},
        config=config_dict(name, cfg),  # type: ignore[arg-type]
    )


GRAPH_PRESETS: dict[str, GraphMAEConfig] = {
    # THUDM/GraphMAE configs.yml, cora: GAT 2 layers, 512 hidden, 4 heads, PReLU, in_drop 0.2,
    # attn_drop 0.1, mask 0.5, replace 0.05, alpha_l 3 (1433 bag-of-words features).
    "graphmae_gat_cora": GraphMAEConfig(),
    # configs.yml, MUTAG: GIN 5 layers, 32 hidden, batchnorm, mask 0.75, replace 0.1, alpha_l 2,
    # sum pooling; 7 node-label one-hot features.
    "graphmae_gin_mutag": GraphMAEConfig(
        in_dim=7, encoder="gin", decoder="gin", num_hidden=32, num_layers=5, norm="batchnorm",
        mask_ratio=0.75, replace_rate=0.1, gamma=2.0, pooling="sum",
    ),
    # configs.yml, PROTEINS: GIN 3 layers, 512 hidden, batchnorm, mask 0.5, replace 0 (default),
    # alpha_l 1, max pooling; 3 node-label one-hot features.
    "graphmae_gin_proteins": GraphMAEConfig(
        in_dim=3, encoder="gin", decoder="gin", num_hidden=512, num_layers=3, norm="batchnorm",
        mask_ratio=0.5, replace_rate=0.0, gamma=1.0, pooling="max",
    ),
    # Not in the paper: CPU-sized GAT and the graph-transformer option (edges + self as attention mask).
    "graphmae_gat_tiny": GraphMAEConfig(in_dim=64, num_hidden=64, num_heads=2),
    "graphmae_transformer_tiny": GraphMAEConfig(
        in_dim=64, encoder="transformer", decoder="transformer", num_hidden=64, num_heads=4, num_layers=2,
    ),
}

for _name, _cfg in GRAPH_PRESETS.items():
    register_model(
        _name,
        build_graphmae,
        modality="graph",
        summary=f"{_cfg.encoder.upper()} x{_cfg.num_layers}, {_cfg.num_hidden} hidden, {_cfg.in_dim} features",
        small={"in_dim": 8, "num_hidden": 8, "num_layers": 2, "num_heads": 2},
    )
