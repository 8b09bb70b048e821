"""GraphMAE's message-passing backbones (GAT, GIN, GCN) from torch_geometric's convolutions.

Every backbone is `backbone(x: B×N×D_in, tokens) -> B×N×D_out` (the replacement MAE's interface)
and reads its edges from `tokens.extra["edge_index"]` (2×E into the flattened B·N nodes; the
graph tokenizer makes one row, with self-loops added as GraphMAE's preprocessing does).

Layers follow the reference (THUDM/GraphMAE `graphmae/models/{gat,gin,gcn}.py`): each layer is
`dropout(in_drop) -> conv -> (+ residual of the dropped-out input) -> norm -> activation`;
hidden layers have activation, residual and norm; the last layer keeps them only in an encoder
(`encoding=True`). GAT layers use `num_hidden // nhead` features per head, heads concatenated,
attention dropout `attn_drop`, and the reference's init (xavier-normal with the ReLU gain for
the projection, both attention vectors and the residual projection; bias 0). GIN layers are
`GINConv(eps=0)` over an MLP (Linear, norm, act, Linear) followed, except in a decoder's last
layer, by norm and act (the reference's `ApplyNodeFunc`).

Importing this module needs torch_geometric (the `graph` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from anymae.core.tokens import Tokens
from anymae.extras import require

_pyg_nn = require("torch_geometric.nn", "graph", purpose="graph neural network layers")


# torch_geometric renders a jinja template of `propagate` / `edge_updater` for every
# MessagePassing class a process builds and writes it to a new `NamedTemporaryFile(delete=False)`
# in the temp dir (`torch_geometric.template.module_from_template`): one new .py file per conv
# class per run, never removed. The code is only a TorchScript aid; MessagePassing refuses to
# template a class that defines its own `propagate` / `edge_updater` and keeps that method, so
# the convolutions here define both as plain calls of the generic ones: no generated code at all.


def _generic_propagate(self: Any, edge_index: Tensor, size: Any = None, **kwargs: Any) -> Tensor:
    return _pyg_nn.MessagePassing.propagate(self, edge_index, size, **kwargs)


def _generic_edge_updater(self: Any, edge_index: Tensor, size: Any = None, **kwargs: Any) -> Tensor:
    return _pyg_nn.MessagePassing.edge_updater(self, edge_index, size, **kwargs)


class GATConv(_pyg_nn.GATConv):  # type: ignore[misc, name-defined]
    """PyG's `GATConv` without generated code (see above)."""

    propagate = _generic_propagate
    edge_updater = _generic_edge_updater


class GINConv(_pyg_nn.GINConv):  # type: ignore[misc, name-defined]
    """PyG's `GINConv` without generated code (see above)."""

    propagate = _generic_propagate
    edge_updater = _generic_edge_updater


class GCNConv(_pyg_nn.GCNConv):  # type: ignore[misc, name-defined]
    """PyG's `GCNConv` without generated code (see above)."""

    propagate = _generic_propagate
    edge_updater = _generic_edge_updater


def make_activation(name: str | None) -> nn.Module:
    """The reference's `create_activation`: prelu, relu, gelu, elu or None (identity)."""
    table = {"prelu": nn.PReLU, "relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU}
    if name is None:
        return nn.Identity()
    if name not in table:
        raise ValueError(f"activation={name!r}: expected one of {sorted(table)} or None")
    return table[name]()


def make_norm(name: str | None, dim: int) -> nn.Module:
    """The reference's `create_norm`: batchnorm, layernorm or None (identity)."""
    if name is None:
        return nn.Identity()
    if name == "batchnorm":
        return nn.BatchNorm1d(dim)
    if name == "layernorm":
        return nn.LayerNorm(dim)
    raise ValueError(f"norm={name!r}: expected 'batchnorm', 'layernorm' or None (graphnorm is not supported)")


def _residual(in_dim: int, out_dim: int, enabled: bool) -> nn.Module | None:
    if not enabled:
        return None
    return nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim, bias=False)


class GNNLayer(nn.Module):
    """`dropout -> conv(x, edge_index) -> (+ res(dropped x)) -> norm -> act`: N×D_in -> N×D_out."""

    def __init__(
        self,
        conv: nn.Module,
        in_dim: int,
        out_dim: int,
        *,
        dropout: float,
        residual: bool = False,
        norm: str | None = None,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.conv = conv
        self.res = _residual(in_dim, out_dim, residual)
        self.norm = make_norm(norm, out_dim)
        self.act = make_activation(activation)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = self.dropout(x)
        out = self.conv(h, edge_index)
        if self.res is not None:
            out = out + self.res(h)
        return self.act(self.norm(out))


class GNN(nn.Module):
    """A stack of `GNNLayer`s as a backbone over node tokens: B×N×in_dim -> B×N×out_dim."""

    def __init__(self, layers: Sequence[GNNLayer], in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: Tensor, tokens: Tokens) -> Tensor:
        edge_index = tokens.extra["edge_index"] if tokens.extra else None
        if edge_index is None:
            raise ValueError("a GNN backbone needs tokens.extra['edge_index'] (use the graph tokenizer)")
        h = x.reshape(-1, x.shape[-1])  # (B·N)×D_in
        for layer in self.layers:
            h = layer(h, edge_index)
        return h.view(*x.shape[:-1], h.shape[-1])  # B×N×D_out


def _gat_conv(in_dim: int, per_head: int, heads: int, attn_drop: float, negative_slope: float) -> nn.Module:
    conv = GATConv(
        in_dim, per_head, heads, concat=True, negative_slope=negative_slope, dropout=attn_drop,
        add_self_loops=False, bias=True,  # self-loops come with the tokens (GraphMAE adds them to the graph)
    )
    gain = nn.init.calculate_gain("relu")  # the reference's GATConv.reset_parameters
    nn.init.xavier_normal_(conv.lin.weight, gain=gain)
    nn.init.xavier_normal_(conv.att_src, gain=gain)
    nn.init.xavier_normal_(conv.att_dst, gain=gain)
    nn.init.zeros_(conv.bias)
    return conv


def gat(
    in_dim: int,
    num_hidden: int,
    out_dim: int,
    num_layers: int,
    *,
    nhead: int,
    nhead_out: int,
    in_drop: float,
    attn_drop: float,
    negative_slope: float = 0.2,
    residual: bool = False,
    norm: str | None = None,
    activation: str | None = "prelu",
    encoding: bool,
) -> GNN:
    """GraphMAE's GAT: `num_hidden` and `out_dim` are per head; outputs `out_dim * nhead_out` wide.

    One layer (the decoder): `GATConv(in, out, nhead_out)` without activation, residual or norm
    (also when encoding, as the reference's one-layer branch).
    """
    def layer(i: int, o: int, heads: int, last: bool) -> GNNLayer:
        keep = encoding or not last
        res = residual and keep
        lay = GNNLayer(
            _gat_conv(i, o, heads, attn_drop, negative_slope), i, o * heads, dropout=in_drop, residual=res,
            norm=norm if keep else None, activation=activation if keep and num_layers > 1 else None,
        )
        if isinstance(lay.res, nn.Linear):
            nn.init.xavier_normal_(lay.res.weight, gain=nn.init.calculate_gain("relu"))
        return lay

    if num_layers == 1:
        layers = [layer(in_dim, out_dim, nhead_out, True)]
    else:
        layers = [layer(in_dim, num_hidden, nhead, False)]
        layers += [layer(num_hidden * nhead, num_hidden, nhead, False) for _ in range(1, num_layers - 1)]
        layers.append(layer(num_hidden * nhead, out_dim, nhead_out, True))
    return GNN(layers, in_dim, out_dim * nhead_out)


def _mlp(in_dim: int, hidden: int, out_dim: int, norm: str | None, activation: str | None) -> nn.Sequential:
    """The reference's 2-layer `MLP`: Linear, norm, act, Linear."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), make_norm(norm, hidden), make_activation(activation), nn.Linear(hidden, out_dim)
    )


def gin(
    in_dim: int,
    num_hidden: int,
    out_dim: int,
    num_layers: int,
    *,
    in_drop: float,
    residual: bool = False,
    norm: str | None = "batchnorm",
    activation: str | None = "prelu",
    encoding: bool,
) -> GNN:
    """GraphMAE's GIN: sum aggregation, eps 0 (not learned), MLP apply functions."""
    def layer(i: int, o: int, last: bool) -> GNNLayer:
        keep = encoding or not last
        apply: nn.Module = _mlp(i, num_hidden, o, norm, activation)
        if keep:  # the reference's ApplyNodeFunc: norm and activation after the MLP
            apply = nn.Sequential(apply, make_norm(norm, o), make_activation(activation))
        conv = GINConv(apply, eps=0.0, train_eps=False)
        return GNNLayer(conv, i, o, dropout=in_drop, residual=residual and keep)

    if num_layers == 1:
        layers = [layer(in_dim, out_dim, True)]
    else:
        layers = [layer(in_dim, num_hidden, False)]
        layers += [layer(num_hidden, num_hidden, False) for _ in range(1, num_layers - 1)]
        layers.append(layer(num_hidden, out_dim, True))
    return GNN(layers, in_dim, out_dim)


def gcn(
    in_dim: int,
    num_hidden: int,
    out_dim: int,
    num_layers: int,
    *,
    in_drop: float,
    residual: bool = False,
    norm: str | None = None,
    activation: str | None = "prelu",
    encoding: bool,
) -> GNN:
    """GraphMAE's GCN with PyG's `GCNConv` (symmetric normalization over the given self-looped edges).

    Deviation: the reference's `GraphConv` adds its bias before the right degree normalization;
    `GCNConv` adds it after.
    """
    def layer(i: int, o: int, last: bool) -> GNNLayer:
        keep = encoding or not last
        conv = GCNConv(i, o, add_self_loops=False, normalize=True, bias=True)
        return GNNLayer(
            conv, i, o, dropout=in_drop, residual=residual and keep, norm=norm if keep else None,
            activation=activation if keep else None,
        )

    if num_layers == 1:
        layers = [layer(in_dim, out_dim, True)]
    else:
        layers = [layer(in_dim, num_hidden, False)]
        layers += [layer(num_hidden, num_hidden, False) for _ in range(1, num_layers - 1)]
        layers.append(layer(num_hidden, out_dim, True))
    return GNN(layers, in_dim, out_dim)


def edge_attention_mask(tokens: Tokens) -> Tensor:
    """1×1×N×N bool: node i may attend to node j when an edge j -> i exists, or i == j.

    For the graph-transformer option (`core.skeleton.TransformerBackbone`). Dense: N² memory.
    """
    n = tokens.x.shape[1]
    if tokens.x.shape[0] != 1:
        raise ValueError("edge_attention_mask expects one packed row of nodes")
    edge_index = tokens.extra["edge_index"] if tokens.extra else None
    if edge_index is None:
        raise ValueError("the graph transformer needs tokens.extra['edge_index']")
    if n > 20000:
        raise ValueError(f"the graph transformer's dense N×N attention mask is too large for {n} nodes")
    mask = torch.eye(n, dtype=torch.bool, device=tokens.x.device)
    mask[edge_index[1], edge_index[0]] = True  # row = query (target), column = key (source)
    return mask.view(1, 1, n, n)
