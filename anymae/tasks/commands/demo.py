"""`anymae demo`: a tiny image MAE pretrained on crops of real photographs, judged honestly.

The data are crops of ten photographs that scikit-image, scikit-learn and matplotlib ship (no
download). Pretraining sees unlabeled crops from one part of each photo; evaluation uses
labelled crops (label = which photo) from the same part for training the probes, and crops from
a disjoint part of each photo for testing. The table puts the pretrained encoder next to the
same encoder at its random initialization:

- held-out reconstruction loss (MSE on hidden patches of the test crops, fixed masks, in the
  paper's per-patch normalized target space), next to the loss of predicting each hidden patch's
  own mean (a floor that needs no model and knows the answer's mean: anything above it has not
  learned the structure inside patches);
- k-NN and linear-probe top-1 on the test crops, for cls and mean-pooled features.

Nothing is tuned on the test split: the recipe below was fixed before looking at it.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from anymae.core.config import load_config
from anymae.core.model import MaskedAutoencoder
from anymae.core.pooling import Pool, default_pool
from anymae.datasets.image.demo import demo_photo_crops, demo_unlabeled
from anymae.datasets.seeding import SeededSamples
from anymae.tasks.train.engine import pretrain_objective, train
from anymae.tasks.pictures.figures import save_embedding_png, save_reconstruction_png
from anymae.tasks.train.pretrain import PretrainConfig, build_model
from anymae.tasks.evaluate.probe import ProbeSettings, encoder_features, needed_poolings, probe_features
from anymae.tasks.train.config import OptimConfig, RunConfig

# The demo recipe: MAE's objective (norm_pix targets, mask 0.75) and optimizer at CPU size; a
# higher base lr than the paper's 1.5e-4 because the run is minutes, not 800 epochs (fixed in
# advance, not tuned on the test split).
DEMO_MODEL = {"name": "mae_vit_tiny_patch4", "mask_ratio": 0.75, "norm_pix_loss": True}
DEMO_POOLS: tuple[Pool, ...] = ("cls", "mean")  # both reported; the demo MAE has a cls token
DEMO_OPTIM = {"blr": 1.5e-3, "weight_decay": 0.05, "betas": (0.9, 0.95), "batch_size": 128, "warmup_frac": 0.1}


@dataclass
class DemoRun:
    """The demo's `run` section: where it writes and its one seed (the rest of the run is the demo's recipe)."""

    out_dir: str = "runs/demo"
    seed: int = 0


@dataclass
class DemoConfig:
    """`anymae demo`: the pretraining time budget and the run section."""

    minutes: float = 5.0
    run: DemoRun = field(default_factory=DemoRun)


def load_demo_config(path: str | None, overrides: list[str]) -> DemoConfig:
    return load_config(DemoConfig, path, overrides)


@dataclass
class DemoReport:
    """The demo's numbers, one dict per encoder ("pretrained", "random init")."""

    steps: int
    minutes: float
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)


def reconstruction_losses(model: MaskedAutoencoder, data: Dataset, *, seed: int = 1234) -> dict[str, float]:
    """Mean hidden-token loss of the model, and of predicting each hidden token's own mean.

    Both in the model's target space (per-patch normalized for norm_pix models, where the second
    is predicting zeros), with fixed masks (sample i of the set gets seed `seed + i`).
    """
    model.eval()
    sums = {"model": 0.0, "patch_mean": 0.0}
    count = 0
    loader = DataLoader(data, batch_size=256, shuffle=False)
    with torch.no_grad():
        for i, (x, *_rest) in enumerate(loader):
            out = model(x, seeds=torch.arange(len(x)) + seed + i * 256)
            own_mean = out.target.mean(-1, keepdim=True).expand_as(out.target)  # B×N×P
            floor = model.loss_fn(own_mean, out.target, out.loss_weight)
            sums["model"] += out.loss.item() * len(x)
            sums["patch_mean"] += floor.item() * len(x)
            count += len(x)
    return {k: v / count for k, v in sums.items()}


def _time_steps(model: MaskedAutoencoder, data: Dataset, batch_size: int, n: int = 3) -> float:
    """Median seconds per training step of a throwaway model (after one warm-up step)."""
    opt = torch.optim.AdamW(model.parameters(), lr=0.0, fused=True)
    x = torch.stack([data[i][0] for i in range(batch_size)])
    model.train()
    times = []
    for _ in range(n + 1):
        start = time.perf_counter()
        model(x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[n // 2]


def _evaluate(
    model: MaskedAutoencoder, train: Dataset, test: Dataset, probe: ProbeSettings
) -> tuple[dict[str, float], Tensor]:
    """Reconstruction loss and k-NN / linear top-1 on cls and mean features (one feature pass per
    split); also returns the test set's features in the model's default pool (N×D; cls for the
    demo MAE) for the embedding picture."""
    row = {"recon_loss": reconstruction_losses(model, test)["model"]}
    kinds = needed_poolings(probe, DEMO_POOLS)
    tr, te = (encoder_features(model, d, kinds) for d in (train, test))
    for pool in DEMO_POOLS:
        row.update({f"{name}_{pool}": top1 for name, top1 in probe_features(tr, te, probe, pool=pool).items()})
    return row, te[default_pool(model)].features


def format_report(report: DemoReport) -> str:
    names = list(report.rows)
    keys = [("recon_loss", "held-out reconstruction loss (lower is better)", ".4f")] + [
        (f"{p}_{pool}", f"{p} top-1 %, {pool} features", ".1f")
        for p in ("knn", "linear") for pool in DEMO_POOLS
    ]
    width = max(len(k[1]) for k in keys) + 2
    lines = [f"{'':{width}}" + "".join(f"{n:>14}" for n in names)]
    for key, label, fmt in keys:
        lines.append(f"{label:{width}}" + "".join(f"{report.rows[n][key]:>14{fmt}}" for n in names))
    b = report.baselines
    lines.append(f"reconstruction floor: predicting each hidden patch's own mean gives {b['patch_mean']:.4f}")
    lines.append(f"chance: {100 / b['num_classes']:.1f}% ({int(b['num_classes'])} photos)")
    return "\n".join(lines)


def run_demo(out_dir: str | Path = "runs/demo", *, minutes: float = 5.0, seed: int = 0,
             max_steps: int | None = None, n_per_photo: int = 1024, n_train_per_photo: int = 64,
             n_test_per_photo: int = 32, probe_epochs: int = 30) -> DemoReport:
    """Pretrain for about `minutes` (or exactly `max_steps`), evaluate, draw; returns the report.

    `n_per_photo` unlabeled crops per photo are pretrained on; the probes train on
    `n_train_per_photo` and test on `n_test_per_photo` labelled crops per photo.
    """
    out = Path(out_dir)
    _clear_previous_demo(out / "pretrain")
    torch.manual_seed(seed)
    model = build_model(DEMO_MODEL)
    random_init = build_model(DEMO_MODEL)
    random_init.load_state_dict(model.state_dict())  # the same starting point, never trained
    size = model.config["img_size"]
    print("building the demo data (crops of real photographs shipped by installed packages)...")
    unlabeled = demo_unlabeled(size=size, n_per_photo=n_per_photo, seed=seed)
    train_set, test_set, classes = demo_photo_crops(
        size=size, n_train_per_photo=n_train_per_photo, n_test_per_photo=n_test_per_photo, seed=seed
    )

    batch = int(DEMO_OPTIM["batch_size"])
    per_epoch = len(unlabeled) // batch
    if max_steps is None:
        step_s = _time_steps(build_model(DEMO_MODEL), unlabeled, batch)
        max_steps = max(10, int(minutes * 60 / step_s))
    epochs = max(1, math.ceil(max_steps / per_epoch))
    optim = OptimConfig(
        blr=float(DEMO_OPTIM["blr"]), weight_decay=float(DEMO_OPTIM["weight_decay"]),
        betas=tuple(DEMO_OPTIM["betas"]), batch_size=batch, epochs=epochs,  # type: ignore[arg-type]
        warmup_epochs=max(0, round(epochs * float(DEMO_OPTIM["warmup_frac"]))),
    )
    run = RunConfig(out_dir=str(out / "pretrain"), seed=seed, max_steps=max_steps, ckpt_every=max(50, max_steps // 4),
                    log_every=10, num_workers=0, tensorboard=False, precision="fp32", device="cpu", resume=False)
    full = PretrainConfig(model=dict(model.config), data={"source": "demo_photos", "img_size": size,
                                                         "n_per_photo": n_per_photo, "seed": seed}, optim=optim, run=run)
    print(f"pretraining {model.config['name']} for {max_steps} steps (~{minutes:g} min) on {len(unlabeled)} crops...")
    start = time.perf_counter()
    result = train(model, SeededSamples(unlabeled, seed), pretrain_objective, optim, run, full_config=full)
    elapsed = (time.perf_counter() - start) / 60

    print("evaluating the pretrained encoder and the same encoder at random init...")
    probe = ProbeSettings(epochs=probe_epochs, warmup_epochs=max(1, probe_epochs // 10), batch_size=128,
                          optimizer="adamw", seed=seed)
    report = DemoReport(steps=result.step, minutes=elapsed)
    feats: dict[str, Tensor] = {}
    for name, m in (("pretrained", model), ("random init", random_init)):
        report.rows[name], feats[name] = _evaluate(m, train_set, test_set, probe)
    report.baselines = {"patch_mean": reconstruction_losses(model, test_set)["patch_mean"], "num_classes": len(classes)}

    batch_x = torch.stack([test_set[i][0] for i in range(0, len(test_set), max(1, len(test_set) // 8))][:8])
    recon = save_reconstruction_png(out / "reconstruction.png", model, batch_x, seeds=torch.arange(8), max_rows=8)
    embed = save_embedding_png(out / "embedding.png", feats, test_set.labels, class_names=classes, method="tsne",
                               title="test crops, cls features (t-SNE), coloured by source photo")
    text = format_report(report)
    (out / "results.md").write_text(f"# anymae demo\n\n{report.steps} steps in {elapsed:.1f} min\n\n```\n{text}\n```\n")
    (out / "results.json").write_text(json.dumps(report.__dict__, indent=2))
    verdict = _verdict(report)
    print(f"\n{text}\n\n{verdict}\n")
    print(f"outputs in {out}/: results.md, results.json, {recon.name}, {embed.name}, pretrain/ "
          f"(checkpoint last.pt, metrics.csv, config.yaml)")
    return report


def _clear_previous_demo(run_dir: Path) -> None:
    """Remove an earlier demo's pretraining run (and only a demo's) so the demo can run again."""
    config = run_dir / "config.yaml"
    if not run_dir.exists():
        return
    if not config.exists() or "source: demo_photos" not in config.read_text():
        raise FileExistsError(f"{run_dir} exists and is not an earlier demo run; choose another --out")
    print(f"replacing the previous demo run in {run_dir}")
    shutil.rmtree(run_dir)


def _verdict(report: DemoReport) -> str:
    p, r = report.rows["pretrained"], report.rows["random init"]
    wins = {
        "held-out reconstruction": p["recon_loss"] < min(r["recon_loss"], report.baselines["patch_mean"]),
        "k-NN (cls)": p["knn_cls"] > r["knn_cls"],
        "k-NN (mean)": p["knn_mean"] > r["knn_mean"],
    }
    lost = [k for k, ok in wins.items() if not ok]
    return "pretrained beats random init (and the patch-mean floor, for reconstruction) on " + ", ".join(k for k, ok in wins.items() if ok) + (
        "" if not lost else f"; NOT on {', '.join(lost)}"
    )

