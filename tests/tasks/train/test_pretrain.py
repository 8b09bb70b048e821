from __future__ import annotations

from pathlib import Path

import torch

from anymae.tasks.train.checkpoint import load_checkpoint
from anymae.tasks.train.pretrain import PretrainConfig, run_pretrain
from anymae.tasks.train.config import OptimConfig, RunConfig


def _run(out: Path, seed: int) -> dict[str, torch.Tensor]:
    cfg = PretrainConfig(
        model={"name": "mae_vit_tiny_patch4", "img_size": 8, "depth": 1, "decoder_depth": 1},
        data={"source": "synthetic_images", "n": 4, "img_size": 8},
        optim=OptimConfig(batch_size=2, epochs=1, warmup_epochs=0),
        run=RunConfig(out_dir=str(out), seed=seed, max_steps=1, num_workers=0, tensorboard=False),
    )
    run_pretrain(cfg)
    return load_checkpoint(out / "last.pt")["model"]


def test_model_init_comes_from_the_run_seed_not_the_global_rng(tmp_path: Path, one_thread: None) -> None:
    torch.manual_seed(1)
    a = _run(tmp_path / "a", seed=3)
    torch.manual_seed(2)  # a different global state must not change the run
    b = _run(tmp_path / "b", seed=3)
    c = _run(tmp_path / "c", seed=4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.blocks.0.attn.qkv.weight"], c["encoder.blocks.0.attn.qkv.weight"])
