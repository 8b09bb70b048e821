"""Small synthetic feature folders (tests, the recipe contract, trying the CLI without data)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np


def write_feature_folder(
    root: str | Path, count: int, *, dim: int = 64, min_len: int = 3, max_len: int = 40,
    fmt: Literal["npy", "safetensors"] = "npy", seed: int = 0,
) -> Path:
    """Write `count` clips `clip{i}.{fmt}`, each an L×dim float32 random walk (L uniform in
    [min_len, max_len]), so neighbouring rows are similar as segment embeddings are; returns `root`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        length = int(rng.integers(min_len, max_len + 1))
        rows = np.cumsum(rng.standard_normal((length, dim)), axis=0).astype(np.float32)  # L×dim
        path = root / f"clip{i:03d}.{fmt}"
        if fmt == "npy":
            np.save(path, rows, allow_pickle=False)
        elif fmt == "safetensors":
            from safetensors.numpy import save_file

            save_file({"features": rows}, str(path))
        else:
            raise ValueError(f"fmt={fmt!r}: expected 'npy' or 'safetensors'")
    return root
