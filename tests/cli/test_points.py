"""`anymae` on a folder of real point-cloud and mesh files: pretrain, resume, reconstruct, fine-tune,
probe (SVM), few-shot, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from anymae.cli import main
from anymae.datasets.points.synthetic import synthetic_shape, write_cloud
from anymae.tasks.train.checkpoint import load_checkpoint
from anymae.tasks.interop.points import point_mae_to_anymae

TINY = {"name": "point_mae_tiny", "num_points": 64, "num_group": 8, "group_size": 8, "depth": 1,
        "decoder_depth": 1, "embed_dim": 32, "decoder_embed_dim": 32, "num_heads": 2, "decoder_num_heads": 2}
FORMATS = (".ply", ".pcd", ".xyz", ".pts", ".npy", ".txt")


def _write_folder(root: Path) -> Path:
    """Two classes (sphere, cube) of six point files each, plus one mesh per class."""
    rng = np.random.default_rng(0)
    for shape in ("cube", "sphere"):
        for i, ext in enumerate(FORMATS):
            write_cloud(root / shape / f"{shape}_{i}{ext}", synthetic_shape(shape, 150, rng))
    import open3d as o3d

    box = o3d.geometry.TriangleMesh.create_box()
    write_cloud(root / "cube" / "box.off", np.asarray(box.vertices), faces=np.asarray(box.triangles))
    ball = o3d.geometry.TriangleMesh.create_sphere(resolution=6)
    write_cloud(root / "sphere" / "ball.obj", np.asarray(ball.vertices), faces=np.asarray(ball.triangles))
    return root


def _config(root: Path, out: str, **optim: int) -> Path:
    cfg = {
        "model": TINY,
        "data": {"source": "point_files", "root": str(root / "clouds")},
        "optim": {"lr": 1e-3, "betas": [0.9, 0.999], "epochs": 2, "warmup_epochs": 1, "batch_size": 4, **optim},
        "run": {"out_dir": str(root / out), "num_workers": 0, "tensorboard": False, "log_every": 1, "device": "cpu"},
    }
    path = root / f"{out}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("points_cli")
    _write_folder(root / "clouds")
    torch.manual_seed(0)  # the model's initialization (the run's seed drives data, masks and dropout)
    assert main(["pretrain", "--config", str(_config(root, "run"))]) == 0
    return root


def test_pretrain_checkpoints_every_file(run: Path) -> None:
    state = load_checkpoint(run / "run/last.pt")
    assert state["step"] == 6  # 14 files / batch 4 -> 3 steps per epoch (last partial), 2 epochs
    assert state["config"]["model"]["num_group"] == 8 and state["config"]["model"]["masking"] == "random_hide"


def test_resume_continues_exactly(run: Path) -> None:
    cfg = _config(run, "resumed")
    torch.manual_seed(0)
    assert main(["pretrain", "--config", str(cfg), "run.max_steps=3"]) == 0
    assert main(["pretrain", "--config", str(cfg), "--resume"]) == 0
    a, b = load_checkpoint(run / "run/last.pt"), load_checkpoint(run / "resumed/last.pt")
    assert b["step"] == 6
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_reconstruct_a_mesh_file(run: Path) -> None:
    out = run / "recon.png"
    mesh = run / "clouds/cube/box.off"
    assert main(["reconstruct", "--checkpoint", str(run / "run/last.pt"), "--input", str(mesh), "--out", str(out)]) == 0
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 300


def test_finetune_with_the_point_transformer_head(run: Path) -> None:
    data = ["data.source=point_files", f"data.root={run / 'clouds'}"]
    cfg = ["finetune.num_classes=2", "finetune.pool=cls_max", "finetune.head=mlp", "finetune.mixup=0",
           "finetune.cutmix=0", "finetune.label_smoothing=0", "finetune.optim.epochs=1", "finetune.optim.warmup_epochs=0",
           "finetune.optim.batch_size=4", "finetune.optim.layer_decay=null", f"run.out_dir={run / 'ft'}",
           "run.num_workers=0", "run.tensorboard=false", "run.device=cpu"]
    assert main(["finetune", f"checkpoint={run / 'run/last.pt'}", *data, *cfg]) == 0
    state = load_checkpoint(run / "ft/last.pt")["model"]
    assert state["cls_pos"].shape == (1, 1, 32) and state["head.0.weight"].shape == (256, 64)  # [cls, max] = 2·D
    assert "head.1.running_mean" in state


def test_probe_svm_and_fewshot(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["data.source=point_files", f"data.root={run / 'clouds'}"]
    settings = ["probe.protocols=[svm,knn]", "probe.pool=mean", "probe.svm_pool=mean_max", "run.num_workers=0",
                f"out={run / 'probe.json'}", "run.device=cpu"]
    assert main(["probe", "--checkpoint", str(run / "run/last.pt"), *data, *settings]) == 0
    results = json.loads((run / "probe.json").read_text())
    assert set(results) == {"svm", "knn"} and all(0 <= v <= 100 for v in results.values())
    fs = ["fewshot.way=2", "fewshot.shot=3", "fewshot.query=3", "fewshot.folds=2", f"out={run / 'fs.json'}", "run.device=cpu"]
    assert main(["fewshot", "--checkpoint", str(run / "run/last.pt"), *data, *fs]) == 0
    result = json.loads((run / "fs.json").read_text())
    assert len(result["fold_top1"]) == 2 and "±" in capsys.readouterr().out


def test_export_official_point_mae_format(run: Path) -> None:
    out = run / "point_mae.pth"
    assert main(["export", "--checkpoint", str(run / "run/last.pt"), "--format", "official", "--out", str(out)]) == 0
    base = torch.load(out, weights_only=True)["base_model"]
    assert "MAE_encoder.blocks.blocks.0.attn.qkv.weight" in base and base["increase_dim.0.weight"].ndim == 3
    ours = load_checkpoint(run / "run/last.pt")["model"]
    back = point_mae_to_anymae(base)
    assert back.keys() == ours.keys() and all(torch.equal(back[k], ours[k]) for k in ours)
