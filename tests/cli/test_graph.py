"""`anymae pretrain` on a graph on disk (edge CSV + features + labels), resume, probe-nodes, reconstruct."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from anymae.cli import main
from anymae.modalities.graph_data import stochastic_block_graph
from anymae.tasks.train.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("graphcli")
    g = stochastic_block_graph((20, 20), 0.3, 0.05, 16, generator=torch.Generator().manual_seed(0))
    data = root / "graph"
    data.mkdir()
    (data / "edges.csv").write_text("src,dst\n" + "\n".join(f"{a},{b}" for a, b in g.edge_index.T.tolist()) + "\n")
    np.save(data / "features.npy", g.x.numpy())
    (data / "labels.csv").write_text("\n".join(str(int(v)) for v in g.y) + "\n")
    cfg = {
        "model": {"name": "graphmae_gat_tiny", "in_dim": 16, "num_hidden": 16, "num_heads": 2},
        "data": {"source": "graph_folder", "root": str(data)},
        "optim": {"optimizer": "adam", "decay_all": True, "lr": 1e-2, "weight_decay": 2e-4, "betas": [0.9, 0.999],
                  "epochs": 6, "warmup_epochs": 0, "batch_size": 1},
        "run": {"out_dir": str(root / "run"), "num_workers": 0, "tensorboard": False, "log_every": 1,
                "max_steps": 3, "ckpt_every": 3},
    }
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["pretrain", "--config", str(root / "cfg.yaml")]) == 0
    return root


def test_pretrain_checkpoints_and_resumes(graph_run: Path) -> None:
    state = load_checkpoint(graph_run / "run/last.pt")
    assert state["step"] == 3 and state["config"]["model"]["encoder"] == "gat"
    assert state["run"]["optim"]["optimizer"] == "adam"
    first = {k: v.clone() for k, v in state["model"].items()}
    assert main(["pretrain", "--config", str(graph_run / "cfg.yaml"), "--resume", "run.max_steps=6"]) == 0
    resumed = load_checkpoint(graph_run / "run/last.pt")
    assert resumed["step"] == 6 and not torch.equal(resumed["model"]["mask_token"], first["mask_token"])
    straight = graph_run / "straight"
    torch.manual_seed(123)  # the global RNG does not matter: the model's init comes from run.seed
    assert main(["pretrain", "--config", str(graph_run / "cfg.yaml"), "run.max_steps=6", f"run.out_dir={straight}"]) == 0
    direct = load_checkpoint(straight / "last.pt")["model"]
    assert all(torch.equal(direct[k], resumed["model"][k]) for k in direct)  # resume continues exactly
    rows = (graph_run / "run/metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]


def test_probe_nodes_command(graph_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = graph_run / "probe.json"
    args = ["probe-nodes", "--checkpoint", str(graph_run / "run/last.pt"), "data.source=graph_folder",
            f"data.root={graph_run / 'graph'}", "probe.seeds=2", "probe.epochs=20", f"out={out}"]
    assert main(args) == 0
    assert "node probe over 2 seeds" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["seeds"] == 2 and 0.0 <= result["final_mean"] <= 100.0


def test_reconstruct_a_graph_folder(graph_run: Path) -> None:
    out = graph_run / "recon.png"
    assert main(["reconstruct", "--checkpoint", str(graph_run / "run/last.pt"), "--input", str(graph_run / "graph"),
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 1000


def test_wrong_feature_width_is_named(graph_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", "--config", str(graph_run / "cfg.yaml"), "model.in_dim=8",
                 f"run.out_dir={graph_run / 'x'}"]) == 1  # one line, no traceback
    err = capsys.readouterr().err
    assert "set model.in_dim=16" in err.splitlines()[-1] and "Traceback" not in err
