"""LV-MAE from the command line on a folder of .npy feature files, and the checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import torch

from anymae.cli import main
from anymae.datasets.features.synthetic import write_feature_folder
from anymae.modalities.features import FeatureBatch
from anymae.tasks.train.pretrain import load_pretrained

REPO = Path(__file__).resolve().parents[2]


def test_lvmae_tiny_pretrains_on_npy_files_and_reloads(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = write_feature_folder(tmp_path / "features", 10, dim=64, min_len=3, max_len=50, fmt="npy")
    out = tmp_path / "run"
    args = ["pretrain", "--config", str(REPO / "configs" / "lvmae_tiny_cpu.yaml"), f"data.root={data}",
            f"run.out_dir={out}", "run.max_steps=2", "optim.batch_size=4", "run.num_workers=0",
            "run.tensorboard=false", "model.masking=random"]  # fmt: skip
    assert main(args) == 0
    model = load_pretrained(out / "last.pt").eval()
    assert model.config["name"] == "lvmae_tiny" and model.config["masking"] == "random"
    rows = torch.randn(2, 12, 64)
    valid = torch.arange(12)[None] < torch.tensor([12, 5])[:, None]
    feats = model.features(FeatureBatch(rows, valid))
    assert feats.tokens.shape == (2, 12, 64) and torch.isfinite(feats.tokens).all()
