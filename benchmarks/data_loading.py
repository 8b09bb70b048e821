"""Image loading (JPEG decode + MAE pretraining augmentation) next to the training step it feeds.

Writes a folder of JPEG photos (crops of the demo photographs at ImageNet-like sizes, no
download), then measures, in one run:
- loader throughput in images/s through `ImageFiles` + `pretrain_transform` + `SeededSamples`
  and a DataLoader, for several worker counts;
- the pretraining step's throughput (forward + backward + AdamW) for the same batch size;
and prints their ratio: above 1 the loader is not the bottleneck.

    python benchmarks/data_loading.py                            # ViT-B/16 at 224, batch 8
    python benchmarks/data_loading.py --model mae_vit_tiny_patch4 --img 32 --batch 128
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, RandomSampler

import anymae
from anymae.datasets.image.demo import PHOTOS, photo_path
from anymae.datasets.image.files import ImageFiles
from anymae.datasets.seeding import SeededSamples
from anymae.datasets.image.transforms import pretrain_transform


def write_jpegs(root: Path, n: int, seed: int = 0) -> Path:
    """n JPEGs of 500×375 (ImageNet's typical size), random crops of the demo photos."""
    rng = np.random.default_rng(seed)
    photos = [Image.open(photo_path(p)).convert("RGB") for p in PHOTOS]
    for i in range(n):
        photo = photos[i % len(photos)]
        w, h = photo.size
        side = int(min(w, h) * rng.uniform(0.5, 1.0))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize((500, 375), Image.BICUBIC)
        crop.save(root / f"img_{i:05d}.jpg", quality=90)
    return root


def loader_throughput(root: Path, img: int, batch: int, workers: int, batches: int) -> float:
    data = SeededSamples(ImageFiles(root, pretrain_transform(img), layout="flat"), base_seed=0)
    sampler = RandomSampler(data, replacement=True, num_samples=(batches + 1) * batch)  # files are reused
    loader = DataLoader(data, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=True)
    it = iter(loader)
    next(it)  # start-up (worker spawn) is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)


def step_throughput(model_name: str, img: int, batch: int, steps: int) -> float:
    model = anymae.create_model(model_name, img_size=img, norm_pix_loss=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    x = torch.randn(batch, 3, img, img)

    def step() -> None:
        model(x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mae_vit_base_patch16")
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batches", type=int, default=8, help="timed batches per worker count")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpegs(Path(tmp), args.images)
        loads = {w: loader_throughput(root, args.img, args.batch, w, args.batches) for w in args.workers}
    train = step_throughput(args.model, args.img, args.batch, args.steps)
    print(f"JPEG 500x375 -> RandomResizedCrop {args.img} + flip + normalize, batch {args.batch}; "
          f"{torch.get_num_threads()} torch threads")
    for w, r in loads.items():
        print(f"  loader, {w} worker(s): {r:8.1f} images/s  ({r / train:5.1f}x the training step)")
    print(f"  training step {args.model} at {args.img}: {train:8.1f} images/s")


if __name__ == "__main__":
    main()
