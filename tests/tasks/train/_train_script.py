"""A tiny pretraining run for the engine tests; also launched as a subprocess (kill / torchrun).

    python tests/tasks/train/_train_script.py OUT_DIR [--resume] [--batch-size B] [--accum A] ...
    python -m torch.distributed.run --nproc_per_node 2 --standalone tests/tasks/train/_train_script.py OUT_DIR ...

The model is anymae's real tiny MAE shrunk further (16 px, 32-d, 2 + 1 blocks); the data are 64
fixed random pictures plus per-sample noise drawn under ``SeededSamples``' per-sample seed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

if __name__ == "__main__":  # run as a file: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import anymae
from anymae.datasets.seeding import SeededSamples
from anymae.tasks.train.distributed import shutdown
from anymae.tasks.train.engine import TrainResult, pretrain_objective, train
from anymae.tasks.train.config import OptimConfig, RunConfig

IMG = 16


def tiny_model(drop_path: float = 0.0) -> nn.Module:
    """The registered tiny MAE, shrunk to 16 px / 32-d / 2 encoder + 1 decoder blocks; seed 0 init.

    No qkv bias: the key bias has an exactly-zero true gradient (softmax ignores it), and Adam
    turns the float noise there into ±lr steps, so two equivalent runs that merely sum in another
    order (accumulation, DDP) would differ in those weights only.
    """
    torch.manual_seed(0)
    return anymae.create_model(
        "mae_vit_tiny_patch4", img_size=IMG, embed_dim=32, depth=2, num_heads=2, qkv_bias=False,
        decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, drop_path=drop_path,
    )  # fmt: skip


class NoisyPictures(Dataset):
    """``num`` fixed 3×16×16 pictures; each access adds noise from the global torch RNG.

    Under ``SeededSamples`` that noise depends only on (seed, epoch, index): an "augmentation".
    """

    def __init__(self, num: int = 64) -> None:
        self.base = torch.randn(num, 3, IMG, IMG, generator=torch.Generator().manual_seed(123))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.base[i] + 0.1 * torch.randn(3, IMG, IMG), i % 4


class HangAt:
    """An objective that behaves like ``pretrain_objective`` but sleeps forever on one micro-call."""

    def __init__(self, call: int) -> None:
        self.call, self.calls = call, 0

    def __call__(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
        if self.calls == self.call:
            while True:  # wait to be killed, mid-step
                time.sleep(1)
        self.calls += 1
        return pretrain_objective(model, batch)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("out_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--ckpt-every", type=int, default=5)
    p.add_argument("--drop-path", type=float, default=0.0)
    p.add_argument("--strategy", default="ddp", help="ddp, fsdp, or a comma list: one run per strategy "
                   "in OUT_DIR/<strategy>, in one launch; STRATEGY:BACKEND also compiles the step (run.compile)")
    p.add_argument("--hang-at-step", type=int, default=None, help="sleep in this step (fresh runs only)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[TrainResult]:
    args = parse(argv)
    torch.set_num_threads(1)  # same float reduction order in every process
    strategies = args.strategy.split(",")
    try:  # under torchrun every train() call reuses the process group made by the first
        results = [_run(args, strategy, len(strategies) > 1) for strategy in strategies]
    finally:
        shutdown()
    return results


def _run(args: argparse.Namespace, spec: str, subdir: bool) -> TrainResult:
    """One training run with ``spec`` (a strategy, or STRATEGY:BACKEND compiled), into OUT_DIR (or
    OUT_DIR/<strategy>[_<backend>] with ``subdir``)."""
    strategy, _, backend = spec.partition(":")
    out_dir = str(Path(args.out_dir) / spec.replace(":", "_")) if subdir else args.out_dir
    optim = OptimConfig(
        blr=2e-2, min_lr=1e-4, epochs=args.epochs, warmup_epochs=1,
        batch_size=args.batch_size, accum_iter=args.accum, clip_grad=1.0,
    )  # fmt: skip
    run = RunConfig(
        out_dir=out_dir, seed=7, ckpt_every=args.ckpt_every, log_every=1, max_steps=args.max_steps,
        precision="fp32", device="cpu", num_workers=0, resume=args.resume, tensorboard=False,
        strategy=strategy, compile=backend or False,
    )  # fmt: skip
    objective = pretrain_objective
    if args.hang_at_step is not None:
        objective = HangAt((args.hang_at_step - 1) * args.accum)
    data = SeededSamples(NoisyPictures(), base_seed=7)
    full = {"script": "tests/tasks/train/_train_script.py", "args": vars(args)}
    return train(tiny_model(args.drop_path), data, objective, optim, run, full_config=full)


if __name__ == "__main__":
    main()
