"""Every recipe's tiny config runs under 2-process torchrun DDP (gloo), and the two ranks end with
identical model states: gradients are averaged and every non-gradient update (EMA teachers,
schedule buffers, codebooks, batch-norm statistics) stays in sync across ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from anymae.cli import main
from anymae.tasks.train.checkpoint import load_checkpoint
from tests.recipes._contract import REPO, DATA_MAKERS, config_of, recipes

SCRIPT = Path(__file__).with_name("_ddp_script.py")


def test_every_recipe_runs_under_ddp_with_ranks_in_sync(tmp_path: Path) -> None:
    names = recipes()
    if not names:
        pytest.skip("no recipes")
    data = tmp_path / "data"
    for source in sorted({config_of(r)["data"]["source"] for r in names}):
        assert source in DATA_MAKERS, f"no data maker for data.source={source!r} (tests/recipes/_contract.py)"
        DATA_MAKERS[source](data / source)
    images = DATA_MAKERS["image_folder"](tmp_path / "teacher_data")
    teacher_run = tmp_path / "teacher"
    assert main(["pretrain", "--config", str(REPO / "configs" / "mae_vit_tiny_cpu.yaml"), f"data.root={images}",
                 f"run.out_dir={teacher_run}", "run.max_steps=1", "optim.batch_size=8", "run.num_workers=0",
                 "run.tensorboard=false", "run.precision=fp32"]) == 0  # fmt: skip
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(SCRIPT),
           str(out), str(data), str(teacher_run / "last.pt"), *names]  # fmt: skip
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    for recipe in names:
        digests = [(out / recipe / f"rank{r}.txt").read_text() for r in (0, 1)]
        assert digests[0] == digests[1], f"{recipe}: the two DDP ranks ended with different model states"
        assert load_checkpoint(out / recipe / "last.pt")["run"]["world_size"] == 2
