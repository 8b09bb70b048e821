"""Every image recipe against plain MAE on one small set of real images, at the same step budget.

The images are crops of the ten photographs the demo uses (shipped by installed packages, no
download): the unlabeled pretraining crops are written as PNG files into one folder, and each
recipe runs exactly as a user would run it, `anymae pretrain --config configs/<recipe>_tiny_cpu.yaml
data.root=<folder>` (plus `teacher.checkpoint=` the plain-MAE run of this same table for recipes
that distil from a teacher), with the same step budget, batch size, base lr and seed for all. Then the
frozen encoder of each run is probed on labelled crops from a disjoint part of every photo
(label = which photo, 10 classes): k-NN (k = 20) and a linear probe, on the model's default
pooled features (cls when it has one, else the mean). Nothing here is tuned on the test split.

Reported per recipe: k-NN and linear top-1 (%), the step time relative to plain MAE (the
engine's steady seconds per step, read from each run's log), and the final training loss.
The plain-MAE row is the teacher of the distillation recipes (its own probe accuracy is the
teacher's), and the same encoder at its random initialization is the floor.

    python benchmarks/recipe_table.py --steps 300                    # every image recipe
    python benchmarks/recipe_table.py --steps 50 --only mae colormae  # a subset
    python benchmarks/recipe_table.py --list                          # which configs it would run
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BASELINE = "mae"  # configs/mae_vit_tiny_cpu.yaml


def config_path(recipe: str) -> Path:
    return REPO / "configs" / ("mae_vit_tiny_cpu.yaml" if recipe == BASELINE else f"{recipe}_tiny_cpu.yaml")


def image_recipes() -> list[str]:
    """Recipes with a tiny config that reads a folder of images (`data.source: image_folder`)."""
    names = []
    for path in sorted((REPO / "configs").glob("*_tiny_cpu.yaml")):
        recipe = path.name[: -len("_tiny_cpu.yaml")]
        cfg = yaml.safe_load(path.read_text())
        if recipe.startswith(("mae_vit", "mae_")) or cfg.get("data", {}).get("source") != "image_folder":
            continue
        names.append(recipe)
    return names


def write_unlabeled_pngs(folder: Path, n_per_photo: int, seed: int) -> Path:
    """The demo's unlabeled pretraining crops (train cells only) as 32×32 PNG files."""
    from anymae.datasets.image.demo import demo_unlabeled

    crops = demo_unlabeled(size=32, n_per_photo=n_per_photo, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(len(crops)):
        x = crops[i][0]  # 3×32×32 in [0, 1]
        pixels = (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # 32×32×3
        Image.fromarray(pixels).save(folder / f"crop_{i:05d}.png")
    return folder


def steady_seconds_per_step(run_dir: Path, batch: int) -> float:
    """Seconds per step from the engine's logged `samples_per_s`, median over the rows after the
    first quarter of the run (start-up and first batches left out)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("samples_per_s")]
    rates = [float(r["samples_per_s"]) for r in rows[len(rows) // 4 :]]
    return batch / float(np.median(rates)) if rates else float("nan")


def pretrain(
    recipe: str, data: Path, out: Path, steps: int, batch: int, teacher: Path | None, blr: float | None = None
) -> dict[str, Any]:
    from anymae.tasks.train.pretrain import load_pretrain_config, run_pretrain

    cfg_file = config_path(recipe)
    overrides = [f"data.root={data}", f"run.out_dir={out}", f"run.max_steps={steps}", f"optim.batch_size={batch}",
                 f"optim.schedule_steps={steps}", "run.tensorboard=false", "run.log_every=10", "run.seed=0",
                 f"run.ckpt_every={steps}", *([f"optim.blr={blr}"] if blr is not None else [])]  # fmt: skip
    if isinstance(yaml.safe_load(cfg_file.read_text()).get("teacher"), dict):
        assert teacher is not None, f"{recipe} needs a teacher: run the baseline first"
        overrides.append(f"teacher.checkpoint={teacher}")
    cfg = load_pretrain_config(str(cfg_file), overrides)
    start = time.perf_counter()
    result = run_pretrain(cfg)
    return {"wall_s": time.perf_counter() - start, "loss": result.last_loss, "checkpoint": str(result.checkpoint),
            "s_per_step": steady_seconds_per_step(out, batch)}


def probe(checkpoint: Path | None, seed: int, *, random_init_of: Path | None = None) -> dict[str, float]:
    from anymae.core.pooling import default_pool
    from anymae.datasets.image.demo import demo_photo_crops
    from anymae.tasks.evaluate.probe import ProbeSettings, encoder_features, probe_features
    from anymae.tasks.train.checkpoint import load_checkpoint
    from anymae.tasks.train.pretrain import build_model, load_pretrained

    if random_init_of is not None:  # the baseline's architecture at its seed-0 initialization
        torch.manual_seed(0)
        model = build_model(dict(load_checkpoint(random_init_of)["config"]["model"])).eval()
    else:
        model = load_pretrained(checkpoint)
    train, test, _ = demo_photo_crops(size=32, n_train_per_photo=64, n_test_per_photo=32, seed=seed)
    settings = ProbeSettings(epochs=30, warmup_epochs=3, batch_size=128, optimizer="adamw", seed=seed)
    pool = default_pool(model)
    tr, te = (encoder_features(model, d, (pool,)) for d in (train, test))
    return probe_features(tr, te, settings, pool=pool)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per recipe (same for all)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--blr", type=float, default=1.5e-3,
                   help="the base lr of every recipe (the demo's: a short run needs more than the papers' 1.5e-4); "
                        "a recipe's own lr factor (DMJD, SelectiveMAE, ROPIM) still applies")
    p.add_argument("--n-per-photo", type=int, default=256, help="unlabeled pretraining crops per photo")
    p.add_argument("--only", nargs="*", default=None, help="recipes to run (the baseline always runs)")
    p.add_argument("--out", type=Path, default=Path("runs/recipe_table"))
    p.add_argument("--list", action="store_true", help="print the recipes and exit")
    args = p.parse_args(argv)
    recipes = [r for r in image_recipes() if args.only is None or r in args.only]
    if args.list:
        print("\n".join([BASELINE, *recipes]))
        return
    torch.manual_seed(0)
    data = write_unlabeled_pngs(args.out / "unlabeled", args.n_per_photo, seed=0)
    results: dict[str, dict[str, Any]] = {}
    for recipe in [BASELINE, *recipes]:
        print(f"=== {recipe}: {args.steps} steps ===", flush=True)
        teacher = Path(results[BASELINE]["checkpoint"]) if BASELINE in results else None
        try:
            row = pretrain(recipe, data, args.out / recipe, args.steps, args.batch, teacher, args.blr)
            row.update(probe(Path(row["checkpoint"]), seed=0))
        except Exception as err:  # one failing recipe is reported, not fatal to the table
            row = {"error": f"{type(err).__name__}: {err}"}
        results[recipe] = row
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
    results["random init"] = probe(None, 0, random_init_of=Path(results[BASELINE]["checkpoint"]))
    base = results[BASELINE].get("s_per_step", float("nan"))
    lines = [f"{'recipe':<14} {'k-NN %':>7} {'linear %':>9} {'step time vs MAE':>17} {'final loss':>11}"]
    for name, row in results.items():
        if "error" in row:
            lines.append(f"{name:<14} failed: {row['error'][:80]}")
            continue
        ratio = row.get("s_per_step", float("nan")) / base if name != "random init" else float("nan")
        loss = row.get("loss", float("nan"))
        lines.append(f"{name:<14} {row['knn']:7.1f} {row['linear']:9.1f} {ratio:17.2f} {loss:11.4f}")
    text = "\n".join(lines)
    (args.out / "results.md").write_text(
        f"{args.steps} steps, batch {args.batch}, blr {args.blr}, seed 0\n\n```\n{text}\n```\n")
    print(text)


if __name__ == "__main__":
    main()
