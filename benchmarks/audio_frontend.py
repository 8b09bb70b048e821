"""Audio-MAE throughput: frontend (10-s file -> normalized fbank) with N loader workers, next to the
pretraining step on the same batch (ViT-B on 1024x128 at mask 0.8, local decoder).

    python benchmarks/audio_frontend.py --quick          # tiny sizes, < 1 minute
    python benchmarks/audio_frontend.py --workers 0 4 8 --batch 16 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(__file__))
from image_step import sync  # noqa: E402  (shared benchmark helper)

import anymae  # noqa: E402
from anymae.datasets.audio.synthetic import write_audio_folder  # noqa: E402
from anymae.datasets.sources import build_dataset  # noqa: E402


def frontend_rate(root: Path, workers: int, batch: int, model_config: dict) -> float:
    """Clips per second through the loader (read, resample-free 16 kHz, fbank, pad, normalize)."""
    data = build_dataset({"source": "audio_folder", "root": str(root)}, split="test", model_config=model_config)
    loader = DataLoader(data, batch_size=batch, num_workers=workers)
    start, n = time.perf_counter(), 0
    for x, _ in loader:
        n += x.shape[0]
    return n / (time.perf_counter() - start)


def step_rate(model: anymae.MaskedAutoencoder, x: torch.Tensor, steps: int) -> float:
    """Clips per second of forward + backward + AdamW step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    device = x.device
    for i in range(steps + 1):
        if i == 1:
            sync(device)
            start = time.perf_counter()
        loss = model(x, seeds=torch.arange(len(x)) + i).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return steps * len(x) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny model, 1.28-s clips, few files")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    name = "audiomae_tiny_patch16" if args.quick else "audiomae_vit_base_patch16"
    seconds = 1.3 if args.quick else 10.0
    model = anymae.create_model(name).to(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_audio_folder(Path(tmp) / "clips", max(2, args.batch), ("noise",), seconds=seconds)
        rates = {w: frontend_rate(root, w, args.batch, model.config) for w in args.workers}
    x = model.tokenizer.example(args.batch).to(args.device)
    train = step_rate(model, x, args.steps)
    report = {"model": name, "clip_seconds": seconds, "device": args.device, "batch": args.batch,
              "frontend_clips_per_s": {str(w): round(r, 1) for w, r in rates.items()},
              "train_step_clips_per_s": round(train, 2),
              "frontend_over_train": {str(w): round(r / train, 2) for w, r in rates.items()}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
