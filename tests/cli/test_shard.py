"""`anymae shard`, then `data.source=shards` for pretrain (stopped and resumed), probe, finetune and fewshot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from anymae.cli import main
from anymae.datasets.image.synthetic import write_image_folder
from anymae.tasks.train.checkpoint import load_checkpoint

TINY = {"name": "mae_vit_tiny_patch4", "depth": 1, "decoder_depth": 1, "embed_dim": 32, "decoder_embed_dim": 32,
        "num_heads": 2, "decoder_num_heads": 2, "img_size": 16}  # fmt: skip


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 train and 8 test pictures (2 classes), sharded by `anymae shard` into train/ and test/."""
    root = tmp_path_factory.mktemp("cli_shard")
    for split, n in (("train", 8), ("test", 4)):
        images = write_image_folder(root / f"images_{split}", n, 2, size=20, fmt="png", seed=len(split))
        argv = ["shard", "data.source=image_folder", f"data.root={images}", "--out", str(root / split),
                "shard.max_count=5", f"shard.prefix={split}"]  # fmt: skip
        assert main(argv) == 0
    return root


def _losses(run: Path) -> dict[int, float]:
    with open(run / "metrics.csv", newline="") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}  # the last row per step


def _pretrain(root: Path, run: Path, *extra: str) -> int:
    cfg = {
        "model": TINY,
        "data": {"source": "shards", "root": str(root / "train" / "train-{000000..000003}.tar"), "shuffle_buffer": 6},
        "optim": {"epochs": 2, "warmup_epochs": 1, "batch_size": 4},
        "run": {"out_dir": str(run), "num_workers": 2, "tensorboard": False, "log_every": 1, "ckpt_every": 1,
                "device": "cpu", "precision": "fp32", "seed": 3},
    }  # fmt: skip
    run.parent.mkdir(parents=True, exist_ok=True)
    (run.parent / "pretrain.yaml").write_text(yaml.safe_dump(cfg))
    return main(["pretrain", "--config", str(run.parent / "pretrain.yaml"), *extra])


def test_shard_prints_its_manifest_summary(shards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = shards / "images_train"
    assert main(["shard", "data.source=image_folder", f"data.root={images}", "--out", str(shards / "again"),
                 "shard.max_count=5"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "wrote 16 samples in 4 shard(s)" in out and "class_0 8, class_1 8" in out
    assert f"{shards / 'again' / 'train-{000000..000003}.tar'}" in out
    manifest = json.loads((shards / "again" / "manifest.json").read_text())
    assert [s["count"] for s in manifest["shards"]] == [5, 5, 5, 1]


def test_shard_errors_are_one_line_naming_the_problem(shards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["shard", "data.source=synthetic_images", "--out", str(shards / "x")]) == 1
    assert "cannot be sharded" in capsys.readouterr().err
    assert main(["shard", "data.source=image_folder", f"data.root={shards / 'images_train'}",
                 "--out", str(shards / "train")]) == 1  # fmt: skip
    assert "already holds shards" in capsys.readouterr().err


def test_pretraining_on_shards_stopped_and_resumed_equals_an_uninterrupted_run(shards: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert _pretrain(shards, tmp_path / "ref" / "run") == 0  # 16 samples / batch 4: 4 steps × 2 epochs
        assert _pretrain(shards, tmp_path / "cut" / "run", "run.max_steps=3") == 0
        assert load_checkpoint(tmp_path / "cut" / "run" / "last.pt")["step"] == 3
        assert _pretrain(shards, tmp_path / "cut" / "run", "--resume") == 0  # crosses into epoch 1
    finally:
        torch.set_num_threads(threads)
    ref, cut = _losses(tmp_path / "ref" / "run"), _losses(tmp_path / "cut" / "run")
    assert sorted(ref) == sorted(cut) == list(range(1, 9))
    assert [cut[s] for s in ref] == list(ref.values())  # bitwise: same batches, same order
    a, b = load_checkpoint(tmp_path / "ref" / "run" / "last.pt"), load_checkpoint(tmp_path / "cut" / "run" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_probe_finetune_and_fewshot_read_shards(shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "pre" / "run"
    assert _pretrain(shards, run, "run.max_steps=2", "run.num_workers=0") == 0
    ckpt = str(run / "last.pt")
    data = ["data.source=shards", f"data.root={shards / 'train'}"]
    test = ["test_data.source=shards", f"test_data.root={shards / 'test' / 'test-{000000..000001}.tar'}"]
    assert main(["probe", "--checkpoint", ckpt, *data, *test, "probe.protocols=[knn]", "run.num_workers=0",
                 "--out", str(tmp_path / "probe.json")]) == 0  # fmt: skip
    assert 0.0 <= json.loads((tmp_path / "probe.json").read_text())["knn"] <= 100.0
    val = ["val_data.source=shards", f"val_data.root={shards / 'test'}"]
    assert main(["finetune", "--checkpoint", ckpt, *data, *val, "finetune.num_classes=2", "finetune.optim.epochs=1",
                 "finetune.optim.warmup_epochs=0", "finetune.optim.batch_size=4", "finetune.mixup=0",
                 "finetune.cutmix=0", "--out", str(tmp_path / "ft"), "run.num_workers=0",
                 "run.tensorboard=false"]) == 0  # fmt: skip
    assert load_checkpoint(tmp_path / "ft" / "last.pt")["step"] == 4  # the 16 streamed samples, batch 4
    assert main(["fewshot", "--checkpoint", ckpt, *data, *test, "fewshot.way=2", "fewshot.shot=2", "fewshot.query=2",
                 "fewshot.folds=2", "--out", str(tmp_path / "fs.json")]) == 0  # fmt: skip
    assert 0.0 <= json.loads((tmp_path / "fs.json").read_text())["mean"] <= 100.0
