"""`anymae` on a folder of real mp4 files: pretrain 2 steps, resume to 3, reconstruct (PNG + GIF), fine-tune."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

av = pytest.importorskip("av")  # before decord (see datasets.video_synthetic.write_video)
pytest.importorskip("decord")

from PIL import Image

from anymae.cli import main
from anymae.datasets.video.synthetic import moving_square, write_video
from anymae.tasks.train.checkpoint import load_checkpoint

TINY = {"name": "videomae_vit_tiny_patch8", "num_frames": 4, "depth": 1, "embed_dim": 32, "num_heads": 2,
        "decoder_depth": 1, "decoder_embed_dim": 16, "decoder_num_heads": 2}  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("video_cli")
    rng = np.random.default_rng(0)
    for cls in ("left", "right"):
        (root / "videos" / cls).mkdir(parents=True)
        for i in range(2):
            write_video(root / "videos" / cls / f"{i}.mp4", moving_square(12, 40, 0 if cls == "right" else 1, rng))
    cfg = {
        "model": TINY,
        "data": {"source": "video_files", "root": str(root / "videos"), "sampling_rate": 2, "num_sample": 2},
        "optim": {"epochs": 2, "warmup_epochs": 1, "batch_size": 2},
        "run": {"out_dir": str(root / "run"), "num_workers": 0, "tensorboard": False, "log_every": 1,
                "max_steps": 2},
    }  # fmt: skip
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["pretrain", "--config", str(root / "cfg.yaml")]) == 0
    return root


def test_pretrain_resume_reconstruct_finetune(root: Path) -> None:
    assert load_checkpoint(root / "run" / "last.pt")["step"] == 2
    assert main(["pretrain", "--config", str(root / "cfg.yaml"), "--resume", "run.max_steps=3"]) == 0
    state = load_checkpoint(root / "run" / "last.pt")
    assert state["step"] == 3 and state["config"]["data"]["num_sample"] == 2
    losses = (root / "run" / "metrics.csv").read_text().splitlines()
    assert len(losses) == 4  # header + steps 1, 2, 3

    png, gif = root / "recon.png", root / "recon.gif"
    args = ["reconstruct", "--checkpoint", str(root / "run" / "last.pt"), "--input", str(root / "videos" / "left"),
            "--out", str(png), "--gif", str(gif), "--num", "2"]  # fmt: skip
    assert main(args) == 0
    assert Image.open(png).size[0] > 100
    with Image.open(gif) as im:
        assert im.n_frames == 4  # one GIF frame per video frame
        assert im.size == (4 * 32 + 3 * 2, 2 * 32 + 2)  # input | masked | reconstruction | prediction (norm_pix), 2 rows

    ft = {
        "checkpoint": str(root / "run" / "last.pt"),
        "data": {"source": "video_files", "root": str(root / "videos"), "sampling_rate": 2},
        "val_data": {"source": "video_files", "root": str(root / "videos"), "sampling_rate": 2, "test_clips": 2,
                     "test_crops": 3},
        "finetune": {"num_classes": 2, "mixup": 0.0, "cutmix": 0.0, "eval_batch_size": 2,
                     "optim": {"epochs": 1, "warmup_epochs": 0, "batch_size": 2, "layer_decay": 0.75}},
        "run": {"out_dir": str(root / "ft"), "num_workers": 0, "tensorboard": False, "max_steps": 2},
    }  # fmt: skip
    (root / "ft.yaml").write_text(yaml.safe_dump(ft))
    assert main(["finetune", "--config", str(root / "ft.yaml")]) == 0
    assert load_checkpoint(root / "ft" / "last.pt")["step"] == 2

    # export in VideoMAE's release layout, and import it back into a fresh model
    assert main(["export", "--checkpoint", str(root / "run" / "last.pt"), "--format", "official",
                 "--out", str(root / "videomae.pth")]) == 0  # fmt: skip
    from anymae import create_model
    from anymae.tasks.interop.videomae import load_videomae_weights
    from anymae.tasks.train.pretrain import load_pretrained

    trained = load_pretrained(root / "run" / "last.pt")
    fresh = create_model(**TINY)
    assert load_videomae_weights(fresh, root / "videomae.pth") == ["decoder.pos_embed.table", "tokenizer.pos_embed.table"]
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in fresh.state_dict().items())


def test_corrupt_video_is_named(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = root / "bad"
    bad.mkdir()
    (bad / "broken.mp4").write_bytes(b"\x00" * 4096)
    (bad / "empty.mp4").write_bytes(b"")
    capsys.readouterr()
    assert main(["pretrain", "--config", str(root / "cfg.yaml"), f"data.root={bad}", f"run.out_dir={root / 'r2'}"]) == 1
    err = capsys.readouterr().err  # one line naming the file, no traceback
    assert re.search(r"^anymae pretrain: error: .*(broken|empty)\.mp4", err.splitlines()[-1]) and "Traceback" not in err


@pytest.mark.parametrize("name", ["videomae_vit_base_k400", "videomae2_vit_giant_hybrid", "videomae_vit_tiny_cpu"])
def test_video_configs_load_and_build(name: str) -> None:
    from anymae.tasks.train.pretrain import build_model, load_pretrain_config

    cfg = load_pretrain_config(str(Path(__file__).parents[2] / "configs" / f"{name}.yaml"), [])
    with torch.device("meta"):
        model = build_model(cfg.model)
    assert model.config["mask_ratio"] == cfg.model["mask_ratio"] and cfg.data["source"] == "video_files"
    assert (model.decoder_masking is not None) == ("videomae2" in name)


def test_video_finetune_config_loads() -> None:
    from anymae.tasks.finetune.run import load_finetune_config

    cfg = load_finetune_config(str(Path(__file__).parents[2] / "configs" / "videomae_vit_base_k400_finetune.yaml"), [])
    assert cfg.finetune.optim.layer_decay == 0.75 and cfg.val_data["test_clips"] * cfg.val_data["test_crops"] == 15
