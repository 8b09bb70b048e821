"""Audio end to end through `anymae`: pretrain on real files, resume, reconstruct, fine-tune with mAP, stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from anymae.cli import main
from anymae.datasets.audio.synthetic import write_audio_folder, write_audioset_csv
from anymae.tasks.train.checkpoint import load_checkpoint

MODEL = {"name": "audiomae_tiny_patch16", "depth": 1, "embed_dim": 32, "num_heads": 2, "decoder_embed_dim": 32,
         "decoder_num_heads": 2, "local_decoder_depth": 2}
RUN = {"num_workers": 0, "tensorboard": False, "log_every": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two pretraining steps on real flac files at 22.05 kHz (resampled), the second one resumed."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("audio_cli")
    clips = write_audio_folder(root / "clips", 2, fmt="flac", sr=22050, seconds=1.3)
    cfg = {"model": MODEL, "data": {"source": "audio_folder", "root": str(clips), "roll_mag_aug": True},
           "optim": {"epochs": 1, "warmup_epochs": 0, "batch_size": 3}, "run": {"out_dir": str(root / "run"), **RUN}}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["pretrain", "--config", str(root / "cfg.yaml"), "run.max_steps=1"]) == 0
    assert load_checkpoint(root / "run/last.pt")["step"] == 1
    assert main(["pretrain", "--config", str(root / "cfg.yaml"), "--resume"]) == 0
    return root


def test_pretrain_resumes_to_the_end_of_the_epoch(run: Path) -> None:
    state = load_checkpoint(run / "run/last.pt")
    assert state["step"] == 2  # 6 clips / batch 3, the second step after resuming
    saved = yaml.safe_load((run / "run/config.yaml").read_text())
    assert saved["model"]["decoder"] == "local" and saved["model"]["mask_ratio"] == 0.8


def test_reconstruct_from_a_file(run: Path) -> None:
    one = next((run / "clips").rglob("*.flac"))
    assert main(["reconstruct", "--checkpoint", str(run / "run/last.pt"), "--input", str(one),
                 "--out", str(run / "one.png")]) == 0
    with Image.open(run / "one.png") as img:
        assert img.format == "PNG" and img.height > 100


def test_finetune_multilabel_reports_map(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clips = run / "clips"
    labels = {str(p.relative_to(clips)): ["/m/a"] if "tone" in p.name else ["/m/b", "/m/c"] if "chirp" in p.name
              else ["/m/c"] for p in clips.rglob("*.flac")}
    table, classes = write_audioset_csv(clips, labels, ["/m/a", "/m/b", "/m/c"])
    cfg = {"checkpoint": str(run / "run/last.pt"),
           "data": {"source": "audio_csv", "csv": str(table), "class_index_csv": str(classes)},
           "finetune": {"num_classes": 3, "task": "multi_label", "mixup": 0, "cutmix": 0,
                        "optim": {"epochs": 1, "warmup_epochs": 0, "batch_size": 3}},
           "run": {"out_dir": str(run / "ft"), "max_steps": 1, **RUN}}
    (run / "ft.yaml").write_text(yaml.safe_dump(cfg))
    capsys.readouterr()
    assert main(["finetune", "--config", str(run / "ft.yaml")]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{"):])
    assert 0 < result["mAP"] <= 100 and result["num_val"] == 6 and "mAP" in result["protocol"]


def test_stats_prints_a_data_snippet(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["stats", "data.source=audio_folder", f"data.root={run / 'clips'}", "model.num_mel_bins=64",
                 "model.target_length=128"]) == 0
    out = capsys.readouterr().out
    snippet = yaml.safe_load(out)
    assert snippet["data"]["std"] > 0 and -20 < snippet["data"]["mean"] < 5 and "6 samples" in out
