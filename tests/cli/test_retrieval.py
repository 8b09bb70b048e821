"""`anymae retrieval` end to end: pretrain the CAV-MAE CPU config (made smaller) on clips with
sound, then retrieve audio <-> video on a held-out folder, JSON and table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("av")

from anymae.cli import main
from anymae.datasets.audiovisual.synthetic import write_av_folder

SMALL = ["model.embed_dim=32", "model.num_heads=2", "model.depth=2", "model.modality_depth=1",
         "model.decoder_embed_dim=32", "model.decoder_num_heads=2", "model.decoder_depth=1",
         "model.target_length=64", "model.num_mel_bins=32", "model.img_size=16",
         "data.target_length=64", "data.num_mel_bins=32", "data.img_size=16"]
RUN = ["run.num_workers=0", "run.device=cpu", "run.tensorboard=false", "optim.batch_size=4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("retrieval_cli")
    write_av_folder(root / "clips", num_classes=2, per_class=2, seconds=0.5, size=32, seed=0)
    write_av_folder(root / "held", num_classes=3, per_class=2, seconds=0.5, size=32, seed=1)
    assert main(["pretrain", "--config", "configs/cavmae_tiny_cpu.yaml", f"data.root={root / 'clips'}",
                 f"run.out_dir={root / 'run'}", "run.max_steps=1", *SMALL, *RUN]) == 0
    return root


def test_retrieval_writes_both_directions(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["retrieval", "--checkpoint", str(run / "run/last.pt"), f"data.root={run / 'held'}",
                 "--out", str(run / "r.json")]) == 0
    table = capsys.readouterr().out
    result = json.loads((run / "r.json").read_text())
    for d in ("a2v", "v2a"):
        assert all(0 <= result[f"{d}_r{k}"] <= 1 for k in (1, 5, 10))
        assert result[f"{d}_r10"] == 1.0  # 6 items: every rank is at most 6
        assert 1 <= result[f"{d}_mean_rank"] <= 6 and 1 <= result[f"{d}_median_rank"] <= 6
        assert d in table
    assert result["num_items"] == 6 and result["chance_r1"] == pytest.approx(1 / 6) and result["init"] == "checkpoint"


def test_random_init_and_label_matching(run: Path) -> None:
    assert main(["retrieval", "--checkpoint", str(run / "run/last.pt"), f"data.root={run / 'held'}",
                 "retrieval.init=random", "retrieval.match=label", "--out", str(run / "r0.json")]) == 0
    result = json.loads((run / "r0.json").read_text())
    assert result["init"] == "random" and result["match"] == "label" and result["chance_r1"] == pytest.approx(2 / 6)


def test_retrieval_refuses_a_modality_the_model_lacks(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["retrieval", "--checkpoint", str(run / "run/last.pt"), f"data.root={run / 'held'}",
                 "retrieval.modalities=[audio,depth]"])
    assert code == 2 and "no modality ['depth']" in capsys.readouterr().err
