"""Audio-MAE throughput: frontend (10-s file -> normalized fbank) with N loader workers, next to the
pretraining step on the same batch (ViT-B on 1024x128 at mask 0.8, local decoder).

The step runs in the precision `run.precision: auto` picks on this machine (bf16 autocast where
the CPU computes bf16 natively), or the one `--precision` names. Loader rates exclude worker
start-up (benchmarks/_timing.py: `loader_rate`, `train_rate`).

    python benchmarks/audio_frontend.py --quick          # tiny sizes, < 1 minute
    python benchmarks/audio_frontend.py --workers 0 1 2 --batch 8 --steps 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _timing import loader_rate, train_rate  # noqa: E402  (shared benchmark helpers)

import anymae  # noqa: E402
from anymae.datasets.audio.synthetic import write_audio_folder  # noqa: E402
from anymae.datasets.sources import build_dataset  # noqa: E402
from anymae.tasks.train.steps import choose_precision  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny model, 1.28-s clips, few files")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=4, help="timed loader batches (after a first, untimed one)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--precision", default="auto", help="fp32 | bf16 | auto (as a run would pick)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    name = "audiomae_tiny_patch16" if args.quick else "audiomae_vit_base_patch16"
    seconds = 1.3 if args.quick else 10.0
    model = anymae.create_model(name).to(args.device)
    dtype, why = choose_precision(args.precision, torch.device(args.device))
    precision = "bf16" if dtype is torch.bfloat16 else "fp32"
    with tempfile.TemporaryDirectory() as tmp:
        root = write_audio_folder(Path(tmp) / "clips", args.batch * (args.batches + 1), ("noise",), seconds=seconds)
        data = build_dataset({"source": "audio_folder", "root": str(root)}, split="test", model_config=model.config)
        rates = {w: loader_rate(data, w, args.batch) for w in args.workers}
    x = model.tokenizer.example(args.batch).to(args.device)
    train = train_rate(model, x, args.steps, precision)
    report = {"model": name, "input": list(x.shape[1:]), "clip_seconds": seconds, "device": args.device,
              "batch": args.batch, "step_precision": f"{precision} ({why})", "threads": torch.get_num_threads(),
              "frontend_clips_per_s": {str(w): round(r, 1) for w, r in rates.items()},
              "train_step_clips_per_s": round(train, 2),
              "frontend_over_train": {str(w): round(r / train, 2) for w, r in rates.items()}}  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
