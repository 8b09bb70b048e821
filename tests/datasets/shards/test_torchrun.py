"""Two real processes (torchrun, gloo) × two loader workers: each sample once per epoch, and DDP runs through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from anymae.datasets.image.synthetic import write_image_folder
from anymae.datasets.seeding import sample_seed
from anymae.datasets.shards.writer import write_shards
from anymae.tasks.train.checkpoint import load_checkpoint

SCRIPT = Path(__file__).with_name("_ranks_script.py")


def test_two_torchrun_processes_split_the_shards_and_train_in_step(tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "images", 6, 2, size=10, fmt="png")  # 12 samples
    write_shards({"source": "image_folder", "root": str(images), "img_size": 8}, tmp_path / "shards", max_count=5,
                 progress=False)  # 3 uneven shards: 5, 5, 2  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", str(SCRIPT),
           str(tmp_path / "shards"), str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and len(ranks[0]["seeds"]) == len(ranks[1]["seeds"]) == 12
    origin = {sample_seed(4, e, i): (e, i) for e in (0, 1) for i in range(12)}
    seen = Counter(origin[s] for r in ranks for s in r["seeds"])
    assert seen == Counter({(e, i): 1 for e in (0, 1) for i in range(12)})  # 2 epochs, each sample once
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 5 and ckpt["run"]["world_size"] == 2  # 3 steps per epoch: into epoch 1
