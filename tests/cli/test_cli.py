"""Every `anymae` command on tiny settings, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from anymae.cli import main
from anymae.datasets.image.synthetic import write_image_folder
from anymae.tasks.train.checkpoint import load_checkpoint
from anymae.tasks.interop.export import timm_kwargs

TINY = {"name": "mae_vit_tiny_patch4", "depth": 2, "decoder_depth": 1, "embed_dim": 64, "decoder_embed_dim": 32}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny pretraining run on a real image folder, through `anymae pretrain`."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli")
    images = write_image_folder(root / "images", 8, 2, size=40, fmt="png", seed=0)
    cfg = {
        "model": TINY,
        "data": {"source": "image_folder", "root": str(images), "img_size": 32},
        "optim": {"epochs": 2, "warmup_epochs": 1, "batch_size": 8},
        "run": {"out_dir": str(root / "run"), "num_workers": 0, "tensorboard": False, "log_every": 1},
    }
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["pretrain", "--config", str(root / "cfg.yaml")]) == 0
    return root


def test_pretrain_writes_run_directory(run: Path) -> None:
    out = run / "run"
    assert {"config.yaml", "metrics.csv", "last.pt"} <= {p.name for p in out.iterdir()}
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["depth"] == 2 and saved["model"]["num_heads"] == 4  # resolved preset values
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 4  # 16 images / batch 8 × 2 epochs


def test_pretrain_unknown_key_lists_valid_ones(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", "--config", str(run / "cfg.yaml"), "optim.bllr=1"]) == 2
    err = capsys.readouterr().err
    assert "optim.bllr" in err and "did you mean 'optim.blr'" in err and "warmup_epochs" in err


def test_pretrain_unknown_model_option_is_named(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", "--config", str(run / "cfg.yaml"), "model.mask_ration=0.5"]) == 2
    assert "mask_ration" in capsys.readouterr().err


def test_print_config_resolves_overrides(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", "--config", str(run / "cfg.yaml"), "--print-config", "optim.blr=1e-3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["blr"] == pytest.approx(1e-3) and printed["optim"]["betas"] == [0.9, 0.95]


def test_reconstruct_writes_png(run: Path) -> None:
    out = run / "recon.png"
    assert main(["reconstruct", "--checkpoint", str(run / "run/last.pt"), "--out", str(out), "--num", "3"]) == 0
    with Image.open(out) as img:
        assert img.format == "PNG" and img.height > 100


def test_reconstruct_from_an_image_file(run: Path) -> None:
    one = next((run / "images").rglob("*.png"))
    out = run / "one.png"
    assert main(["reconstruct", "--checkpoint", str(run / "run/last.pt"), "--input", str(one), "--out", str(out)]) == 0
    assert out.exists()


def test_export_timm_and_safetensors_load_strict(run: Path) -> None:
    ckpt = str(run / "run/last.pt")
    assert main(["export", "--checkpoint", ckpt, "--format", "timm", "--out", str(run / "enc.pth")]) == 0
    assert main(["export", "--checkpoint", ckpt, "--format", "safetensors", "--out", str(run / "enc.st")]) == 0
    config = load_checkpoint(ckpt)["config"]["model"]
    for state in (torch.load(run / "enc.pth", weights_only=True), load_file(run / "enc.st")):
        vit = timm.create_model("vit_base_patch16_224", pretrained=False, **timm_kwargs(config))
        vit.load_state_dict(state, strict=True)


def test_export_official_format(run: Path) -> None:
    out = run / "official.pth"
    assert main(["export", "--checkpoint", str(run / "run/last.pt"), "--format", "official", "--out", str(out)]) == 0
    state = torch.load(out, weights_only=True)["model"]
    assert "decoder_pred.weight" in state and state["pos_embed"].shape[1] == 65


def test_probe_reports_each_protocol(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["data.source=image_folder", f"data.root={run / 'images'}", "data.img_size=32"]
    settings = ["probe.epochs=2", "probe.warmup_epochs=1", "probe.optimizer=adamw", "probe.batch_size=8",
                "probe.protocols=[knn,linear,attentive]", "run.num_workers=0", f"out={run / 'probe.json'}"]
    assert main(["probe", "--checkpoint", str(run / "run/last.pt"), *data, *settings]) == 0
    results = json.loads((run / "probe.json").read_text())
    assert set(results) == {"knn", "linear", "attentive"}
    assert all(0.0 <= v <= 100.0 for v in results.values())
    assert "attentive" in capsys.readouterr().out


def test_finetune_runs_and_scores(run: Path) -> None:
    data = ["data.source=image_folder", f"data.root={run / 'images'}", "data.img_size=32"]
    cfg = ["finetune.num_classes=2", "finetune.optim.epochs=1", "finetune.optim.warmup_epochs=0",
           "finetune.optim.batch_size=8", f"run.out_dir={run / 'ft'}", "run.num_workers=0", "run.tensorboard=false"]
    assert main(["finetune", f"checkpoint={run / 'run/last.pt'}", *data, *cfg]) == 0
    assert (run / "ft" / "last.pt").exists()


def test_info_lists_presets_with_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "mae_vit_base_patch16" in out and "85.65M" in out and "image_folder" in out


@pytest.mark.parametrize("command", ["pretrain", "finetune", "probe", "reconstruct", "export", "info", "demo"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: anymae " + command in capsys.readouterr().out
