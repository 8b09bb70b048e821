"""Run under torchrun by `test_torchrun.py`: what each rank's stream reads, then a short DDP pretraining.

    python -m torch.distributed.run --nproc_per_node 2 --standalone _ranks_script.py SHARDS OUT

Each rank writes OUT/rank<r>.json: the per-sample seeds of its micro-batches over two epochs (two
loader workers), then pretrains a tiny MAE on the shards for 5 steps with DDP (across an epoch
boundary: ranks that yielded different numbers of batches would hang here).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a file: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch

from anymae.datasets.seeding import SeededSamples
from anymae.datasets.shards.dataset import ShardDataset
from anymae.tasks.train.config import OptimConfig, RunConfig
from anymae.tasks.train.distributed import init_distributed, shutdown
from anymae.tasks.train.pretrain import PretrainConfig, run_pretrain
from anymae.tasks.train.loader.stream import stream_batches

SEED = 4


def main(shards: str, out: str) -> None:
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    try:
        data = SeededSamples(ShardDataset(shards, split="pretrain", augment="pretrain", shuffle_buffer=4), SEED)
        run = RunConfig(out_dir=out, seed=SEED, num_workers=2)
        steps = len(data) // (2 * info.world_size)  # batch 2: steps per epoch
        seeds = [int(s) for batch in stream_batches(data, OptimConfig(batch_size=2), run, info, 0, 2 * steps)
                 for s in batch[2]]  # fmt: skip
        Path(out, f"rank{info.rank}.json").write_text(json.dumps({"seeds": seeds, "world": info.world_size}))
        cfg = PretrainConfig(
            model={"name": "mae_vit_tiny_patch4", "img_size": 8, "depth": 1, "decoder_depth": 1, "embed_dim": 32,
                   "decoder_embed_dim": 32, "num_heads": 2, "decoder_num_heads": 2},
            data={"source": "shards", "root": shards, "shuffle_buffer": 4},
            optim=OptimConfig(batch_size=2, epochs=2, warmup_epochs=0),
            run=RunConfig(out_dir=str(Path(out) / "run"), seed=SEED, max_steps=5, num_workers=1, device="cpu",
                          precision="fp32", tensorboard=False, log_every=1),
        )  # fmt: skip
        run_pretrain(cfg)
    finally:
        shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
