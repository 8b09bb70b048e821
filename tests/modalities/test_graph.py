"""The graph modality: GraphMAE presets (sizes = the reference's), backbones vs brute force, tokens, pictures."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import anymae
from anymae.modalities import graph_backbones as gb
from anymae.modalities.graph import GraphTokenizer
from anymae.modalities.graph_data import Graphs, collate_graphs, stochastic_block_graph


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# Trainable parameters computed from the layer shapes of THUDM/GraphMAE (DGL GATConv: fc, attn_l,
# attn_r, bias, PReLU per layer; GIN: MLP(Linear, BN, PReLU, Linear) + BN + PReLU per encoder layer).
@pytest.mark.parametrize("name, encoder, total", [
    ("graphmae_gat_cora", 998_914, 2_000_486),    # + e2d 262,144 + GAT decoder 737,995 + [MASK] 1,433
    ("graphmae_gin_mutag", 10_410, 12_793),       # + e2d 1,024 + GIN decoder 1,352 + [MASK] 7
    ("graphmae_gin_proteins", 1_321_478, 1_848_845),
])
def test_preset_sizes_match_reference(name: str, encoder: int, total: int) -> None:
    model = anymae.create_model(name)
    assert _count(model.encoder) == encoder and _count(model) == total
    assert model.config["name"] == name and model.loss_params == {"gamma": model.config["gamma"]}


def test_cora_recipe_values() -> None:
    m = anymae.create_model("graphmae_gat_cora")
    c = m.config
    assert (c["num_hidden"], c["num_heads"], c["num_layers"], c["mask_ratio"], c["replace_rate"], c["gamma"]) == (
        512, 4, 2, 0.5, 0.05, 3.0)
    convs = [layer.conv for layer in m.encoder.layers]
    assert [(cv.heads, cv.out_channels, cv.dropout) for cv in convs] == [(4, 128, 0.1), (4, 128, 0.1)]
    assert [layer.dropout.p for layer in m.encoder.layers] == [0.2, 0.2]
    dec = m.decoder.layers[0]
    assert (dec.conv.heads, dec.conv.out_channels, type(dec.act).__name__) == (1, 1433, "Identity")
    assert m.encoder_to_decoder.bias is None and torch.equal(m.mask_token, torch.zeros(1, 1, 1433))


def _dense_gat(layer: gb.GNNLayer, x: Tensor, edge_index: Tensor) -> Tensor:
    """GraphMAE's GATConv by hand: per-edge attention, softmax over each node's in-edges."""
    conv = layer.conv
    h_, c = conv.heads, conv.out_channels
    h = (x @ conv.lin.weight.T).view(-1, h_, c)  # N×H×C
    src, dst = edge_index
    e = F.leaky_relu((h[src] * conv.att_src).sum(-1) + (h[dst] * conv.att_dst).sum(-1), 0.2)  # E×H
    out = torch.zeros_like(h)
    for i in range(x.shape[0]):
        sel = dst == i
        alpha = torch.softmax(e[sel], dim=0)  # k×H
        out[i] = (alpha.unsqueeze(-1) * h[src[sel]]).sum(0)
    out = out.reshape(x.shape[0], -1) + conv.bias
    return layer.act(out)


def test_gat_layer_matches_brute_force() -> None:
    torch.manual_seed(0)
    net = gb.gat(6, 4, 4, 2, nhead=2, nhead_out=2, in_drop=0.2, attn_drop=0.1, encoding=True).eval()
    g = stochastic_block_graph((5, 5), 0.5, 0.2, 6, generator=torch.Generator().manual_seed(1))
    tok = GraphTokenizer(6)(g)
    ei = tok.extra["edge_index"]
    x = g.x
    expected = _dense_gat(net.layers[1], _dense_gat(net.layers[0], x, ei), ei)
    assert torch.allclose(net(x.unsqueeze(0), tok)[0], expected, atol=1e-5)


def test_gin_layer_is_sum_over_self_looped_neighbours() -> None:
    torch.manual_seed(0)
    net = gb.gin(3, 8, 5, 1, in_drop=0.0, norm=None, encoding=False).eval()
    g = Graphs(x=torch.randn(4, 3), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    tok = GraphTokenizer(3)(g)
    mlp = net.layers[0].conv.nn
    agg = torch.zeros(4, 3)
    for s, d in tok.extra["edge_index"].T.tolist():
        agg[d] += g.x[s]
    expected = mlp(g.x + agg)  # eps 0: x + sum over in-neighbours including the self-loop = 2x + others
    assert torch.allclose(net(g.x.unsqueeze(0), tok)[0], expected, atol=1e-6)


def test_tokenizer_self_loops_segments_and_errors() -> None:
    g1 = Graphs(x=torch.ones(3, 2), edge_index=torch.tensor([[0, 1, 1], [1, 1, 2]]))  # has a self-loop 1->1
    g2 = Graphs(x=torch.zeros(2, 2), edge_index=torch.tensor([[0], [1]]))
    batch = collate_graphs([g1, g2])
    tok = GraphTokenizer(2)(batch)
    ei = tok.extra["edge_index"]
    assert tok.x.shape == (1, 5, 2) and tok.grid == (5,)
    assert sorted(map(tuple, ei.T.tolist())) == sorted([(0, 1), (1, 2), (3, 4)] + [(i, i) for i in range(5)])
    seg, num = GraphTokenizer(2).segments(tok)
    assert seg.tolist() == [0, 0, 0, 1, 1] and num == 2
    with pytest.raises(ValueError, match="set model.in_dim=2"):
        GraphTokenizer(3)(batch)
    with pytest.raises(ValueError, match="outside"):
        GraphTokenizer(2)(Graphs(x=torch.ones(2, 2), edge_index=torch.tensor([[0], [5]])))


def test_graph_level_features_and_training_step() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("graphmae_gin_mutag", in_dim=8, num_hidden=8, num_layers=2)
    batch = model.tokenizer.example(3)
    feats = model.features(batch)
    assert feats.tokens.shape == (1, 36, 8) and feats.pooled("sum").shape == (3, 8)
    assert torch.allclose(feats.pooled("sum")[1], feats.tokens[0, 12:24].sum(0), atol=1e-5)
    out = model(batch, seeds=torch.arange(3))
    assert out.mask.sum() == int(0.75 * 36)
    out.loss.backward()


def test_graph_transformer_option_attends_along_edges_only() -> None:
    torch.manual_seed(0)
    model = anymae.create_model("graphmae_transformer_tiny", in_dim=4, num_hidden=8, num_heads=2).eval()
    g = Graphs(x=torch.randn(4, 4), edge_index=torch.tensor([[0, 1], [1, 0]]))  # 0-1 linked, 2, 3 alone
    base = model.features(g).tokens[0]
    moved = model.features(g.replace(x=g.x + torch.tensor([[0.0], [0.0], [1.0], [0.0]]))).tokens[0]
    assert torch.allclose(base[[0, 1, 3]], moved[[0, 1, 3]], atol=1e-5) and not torch.allclose(base[2], moved[2])


def test_pictures_render_feature_matrices() -> None:
    tok = GraphTokenizer(3)
    g = collate_graphs([Graphs(x=torch.tensor([[0.0, 1.0, 0.5]]), edge_index=torch.zeros(2, 0, dtype=torch.long))] * 2)
    pics = tok.to_pictures(g, max_nodes=2, max_features=4)
    assert pics.shape == (2, 4, 8, 3) and pics.dtype.name == "uint8"
    assert pics[0, 0, :6:2, 0].tolist() == [0, 255, 128] and pics[0, 2:, :, :].max() == 0
    fill = tok.picture_fill(tok(g))
    assert tok.to_pictures(g.replace(x=fill.view(1, 1).expand(2, 3)), max_nodes=1, max_features=3)[0, 0, 0, 0] == 128


def test_graphmae_optimizer_is_adam_decaying_every_parameter() -> None:
    from anymae.tasks.train.optim import build_optimizer

    model = anymae.create_model("graphmae_gat_tiny", in_dim=8, num_hidden=8, num_heads=2)
    opt = build_optimizer(model, lr=1e-3, weight_decay=2e-4, betas=(0.9, 0.999), optimizer="adam", decay_all=True)
    assert type(opt) is torch.optim.Adam and len(opt.param_groups) == 1
    assert opt.param_groups[0]["weight_decay"] == 2e-4 and len(opt.param_groups[0]["params"]) == len(list(model.parameters()))
    default = build_optimizer(model, lr=1e-3, weight_decay=2e-4)
    assert type(default) is torch.optim.AdamW and {g["weight_decay"] for g in default.param_groups} == {0.0, 2e-4}


_BUILD_TWICE = """
import torch, anymae
from anymae.modalities.graph_data import stochastic_block_graph
g = stochastic_block_graph((5, 5), 0.5, 0.1, 8, generator=torch.Generator().manual_seed(0))
for _ in range(2):
    for enc in ("gat", "gin", "gcn"):
        model = anymae.create_model("graphmae_gat_tiny", in_dim=8, num_hidden=8, num_heads=2, encoder=enc, decoder=enc)
        model.eval().features(g)
"""


def test_building_graph_models_writes_no_code_into_the_temp_dir(tmp_path) -> None:
    """torch_geometric writes a new generated `*_propagate_*.py` into the temp dir for each conv class
    in each fresh process; a fresh process that builds and runs GAT / GIN / GCN twice writes none."""
    import os
    import subprocess
    import sys

    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    subprocess.run([sys.executable, "-c", _BUILD_TWICE], env=env, check=True, timeout=240)
    assert sorted(p.name for p in temp.rglob("*.py")) == []
