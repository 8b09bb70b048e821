"""A user's path through `anymae` on real multi-channel files: pretrain, resume, reconstruct,
fine-tune on a channel subset, score channel subsets, channel statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from anymae.cli import main
from anymae.datasets.multichannel.files import synthetic_stacks
from anymae.datasets.multichannel.io import write_stack
from anymae.tasks.evaluate.channel_subsets import load_finetuned
from anymae.tasks.train.checkpoint import load_checkpoint

MODEL = {"name": "chamaevit_tiny_patch8", "img_size": 16, "embed_dim": 32, "depth": 1, "num_heads": 2,
         "decoder_num_heads": 2}  # fmt: skip
RUN = {"num_workers": 0, "tensorboard": False, "log_every": 1, "device": "cpu", "precision": "fp32"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of TIFF and npy stacks (2 classes, 5 channels), pretrained for 2 epochs by the CLI."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("mc")
    for i, (stack, label) in enumerate(synthetic_stacks(8, 5, 20, seed=0)):
        write_stack(root / "stacks" / f"class{label}" / f"s{i}.{'tif' if i % 2 else 'npy'}", stack)
    cfg = {
        "model": MODEL,
        "data": {"source": "multichannel_files", "root": str(root / "stacks")},
        "optim": {"epochs": 2, "warmup_epochs": 1, "batch_size": 4},
        "run": {**RUN, "out_dir": str(root / "run")},
    }
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["pretrain", "--config", str(root / "cfg.yaml")]) == 0
    return root


def test_pretrain_checkpoints_and_resumes(run: Path) -> None:
    state = load_checkpoint(run / "run/last.pt")
    assert state["step"] == 4 and state["config"]["model"]["channels"] == [f"ch{i}" for i in range(5)]
    assert main(["pretrain", "--config", str(run / "cfg.yaml"), "--resume", "optim.epochs=3"]) == 0
    assert load_checkpoint(run / "run/last.pt")["step"] == 6  # continued from step 4


def test_reconstruct_stacks_from_the_run_data_and_from_a_file(run: Path) -> None:
    out = run / "recon.png"
    assert main(["reconstruct", "--checkpoint", str(run / "run/last.pt"), "--out", str(out), "--num", "2"]) == 0
    one = next((run / "stacks").rglob("*.tif"))
    out2 = run / "one.png"
    assert main(["reconstruct", "--checkpoint", str(run / "run/last.pt"), "--input", str(one), "--out", str(out2)]) == 0
    with Image.open(out) as a, Image.open(out2) as b:
        assert a.format == b.format == "PNG" and a.height > b.height  # two rows vs one


def test_finetune_on_a_channel_subset_then_score_subsets(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ft = {
        "checkpoint": str(run / "run/last.pt"),
        "data": {"source": "multichannel_files", "root": str(run / "stacks"), "use": ["ch0", "ch2", "ch4"]},
        "finetune": {"num_classes": 2, "mixup": 0.0, "cutmix": 0.0, "pool": "cls_attn_sigmoid",
                     "optim": {"epochs": 1, "warmup_epochs": 0, "batch_size": 4}},
        "run": {**RUN, "out_dir": str(run / "ft")},
    }  # fmt: skip
    (run / "ft.yaml").write_text(yaml.safe_dump(ft))
    assert main(["finetune", "--config", str(run / "ft.yaml")]) == 0
    assert json.loads(capsys.readouterr().out)["num_val"] == 8
    classifier = load_finetuned(str(run / "ft/last.pt"))
    assert classifier.pool == "cls_attn_sigmoid" and classifier.fusion is not None
    out = run / "subsets.json"
    args = ["channel-subsets", "--checkpoint", str(run / "ft/last.pt"), "--subset", "ch0,ch2,ch4", "--subset", "ch0",
            "--subset", "ch4,ch1", f"out={out}", "data.source=multichannel_files", f"data.root={run / 'stacks'}"]
    assert main(args) == 0
    results = json.loads(out.read_text())
    assert list(results) == ["ch0+ch2+ch4", "ch0", "ch4+ch1"]
    assert all(v in (0.0, 12.5, 25.0, 37.5, 50.0, 62.5, 75.0, 87.5, 100.0) for v in results.values())  # k of 8


def test_unknown_subset_channel_is_named(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["channel-subsets", "--checkpoint", str(run / "ft/last.pt"), "--subset", "ch0,dna",
                 "data.source=multichannel_files", f"data.root={run / 'stacks'}"]) == 2
    err = capsys.readouterr().err
    assert "unknown channel name(s) ['dna']" in err and "ch4" in err


def test_stats_command_prints_per_channel_lists(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "data.source=multichannel_files", f"data.root={run / 'stacks'}",
                 "data.channels=[ch0,ch1,ch2,ch3,ch4]"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert len(printed["data"]["mean"]) == 5 and all(s > 0 for s in printed["data"]["std"])


@pytest.mark.parametrize("name", ["chamaevit_tiny_cpu", "chamaevit_jumpcp"])
def test_config_files_resolve(run: Path, name: str) -> None:
    from anymae.datasets.sources import build_dataset
    from anymae.tasks.train.pretrain import build_model, load_pretrain_config

    cfg = load_pretrain_config(f"configs/{name}.yaml", [])
    model = build_model({**cfg.model, "depth": 1, "img_size": 16})  # the test stacks are 20²
    assert model.masking.ratio == cfg.model["mask_ratio"] and cfg.optim.clip_grad == 1.0
    if name == "chamaevit_tiny_cpu":
        data = build_dataset({**cfg.data, "root": str(run / "stacks")}, split="pretrain", model_config=model.config)
        out = model(data.collate_x([data[i][0] for i in range(2)]), seeds=torch.arange(2))
        assert torch.isfinite(out.loss)
