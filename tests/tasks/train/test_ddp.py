from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from anymae.tasks.train.checkpoint import load_checkpoint
from tests.tasks.train._train_script import main

SCRIPT = Path(__file__).with_name("_train_script.py")
STEPS = ["--max-steps", "10"]  # 8 steps per epoch: crosses into epoch 1


def _losses(run_dir: Path) -> dict[int, float]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # 2 ranks × batch 2 × accum 2 (no gradient sync on the first micro-batch) = 8 samples per step;
    # one launch trains with DDP into two/ddp, with FSDP into two/fsdp, then with DDP around a
    # compiled step (run.compile; aot_eager: Dynamo + AOTAutograd, no code generation) into two/ddp_aot_eager
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           str(SCRIPT), str(two), *STEPS, "--batch-size", "2", "--accum", "2",
           "--strategy", "ddp,fsdp,ddp:aot_eager"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threads = torch.get_num_threads()
    try:
        main([str(one), *STEPS, "--batch-size", "8"])  # the one-process reference, while the ranks start up
    finally:
        torch.set_num_threads(threads)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert out.count("compile: torch.compile(backend=aot_eager) of the model's step") == 1  # rank 0's log, third run

    ckpt_one, losses_one = load_checkpoint(one / "last.pt"), _losses(one)
    assert sorted(losses_one) == list(range(1, 11))
    for strategy in ("ddp", "fsdp", "ddp_aot_eager"):
        ckpt = load_checkpoint(two / strategy / "last.pt")
        assert ckpt["run"]["world_size"] == 2 and ckpt["run"]["samples_per_step"] == 8
        assert ckpt["run"]["peak_lr"] == ckpt_one["run"]["peak_lr"] and ckpt["step"] == 10
        losses = _losses(two / strategy)  # rank 0 logs the mean over ranks
        assert sorted(losses) == sorted(losses_one)
        assert [losses[s] for s in losses_one] == pytest.approx(list(losses_one.values()), rel=1e-5), strategy
        for key, value in ckpt_one["model"].items():  # FSDP: the full state dict, gathered
            torch.testing.assert_close(ckpt["model"][key], value, rtol=1e-5, atol=1e-6, msg=f"{strategy} {key}")
