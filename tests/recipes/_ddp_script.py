"""Every recipe's tiny config for 2 steps under torchrun; each rank writes a digest of its model state.

    python -m torch.distributed.run --nproc_per_node 2 --standalone tests/recipes/_ddp_script.py OUT DATA_DIR TEACHER recipe...

DATA_DIR holds one folder per data source (as `_contract.make_data` writes them).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a file: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch

from anymae.core.config import load_config
from anymae.tasks.train.distributed import shutdown
from anymae.tasks.train.pretrain import PretrainConfig, run_pretrain
from tests.recipes._contract import config_of, overrides, tiny_config


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str]) -> None:
    out, data_dir, teacher, *names = argv
    rank = int(os.environ.get("RANK", "0"))
    torch.set_num_threads(1)
    for recipe in names:
        data = Path(data_dir) / config_of(recipe)["data"]["source"]
        args = overrides(recipe, data, Path(out) / recipe, 2, Path(teacher))
        cfg = load_config(PretrainConfig, str(tiny_config(recipe)), [*args, "optim.batch_size=4"])
        result = run_pretrain(cfg)
        model = getattr(result, "model", None)
        assert model is not None, "TrainResult has no model"
        (Path(out) / recipe / f"rank{rank}.txt").write_text(digest(model.state_dict()))
    shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
