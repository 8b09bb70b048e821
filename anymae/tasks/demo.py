"""`anymae demo`: a tiny image MAE pretrained on crops of real photographs, judged honestly.

The data are crops of ten photographs that scikit-image, scikit-learn and matplotlib ship (no
download). Pretraining sees unlabeled crops from one part of each photo; evaluation uses
labelled crops (label = which photo) from the same part for training the probes, and crops from
a disjoint part of each photo for testing. The table puts the pretrained encoder next to the
same encoder at its random initialization:

- held-out reconstruction loss (pixel MSE on hidden patches of the test crops, fixed masks), next
  to two references that need no model: predicting every hidden patch as the mean colour of the
  visible pixels (a baseline to beat) and as its own true mean colour (an oracle floor);
- k-NN and linear-probe top-1 on the test crops, for cls and mean-pooled features.

Nothing is tuned on the test split: the recipe below was fixed before looking at it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from einops import rearrange
from torch.utils.data import DataLoader, Dataset

from ..core.model import MaskedAutoencoder
from ..datasets.demo import demo_photo_crops, demo_unlabeled
from ..datasets.seeding import SeededSamples
from .engine import pretrain_objective, train
from .pictures import save_embedding_png, save_reconstruction_png
from .pretrain import PretrainConfig, build_model
from .probe import ProbeSettings, probe_encoder
from .train_config import OptimConfig, RunConfig
from .features import extract_features

# The demo recipe: MAE's objective and optimizer at CPU size; a higher base lr than the paper's
# 1.5e-4 because the run is minutes, not 800 epochs (fixed in advance, not tuned on the test split).
DEMO_MODEL = {"name": "mae_vit_tiny_patch4", "mask_ratio": 0.75, "norm_pix_loss": False}
DEMO_OPTIM = {"blr": 1.5e-3, "weight_decay": 0.05, "betas": (0.9, 0.95), "batch_size": 128, "warmup_frac": 0.1}


@dataclass
class DemoReport:
    """The demo's numbers, one dict per encoder ("pretrained", "random init")."""

    steps: int
    minutes: float
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)


def reconstruction_losses(model: MaskedAutoencoder, data: Dataset, *, seed: int = 1234) -> dict[str, float]:
    """Mean hidden-patch MSE of the model and of two model-free references, with fixed masks.

    Returns {"model", "visible_mean", "own_mean"}: the model's loss; predicting each hidden patch as
    the per-channel mean of the sample's visible pixels; and as its own per-channel mean (oracle).
    """
    model.eval()
    sums = {"model": 0.0, "visible_mean": 0.0, "own_mean": 0.0}
    count = 0
    channels = model.config.get("in_chans", 3)
    loader = DataLoader(data, batch_size=256, shuffle=False)
    with torch.no_grad():
        for i, (x, *_rest) in enumerate(loader):
            seeds = torch.arange(len(x)) + seed + i * 256
            out = model(x, seeds=seeds)
            target = rearrange(out.target, "b n (p c) -> b n p c", c=channels)  # B×N×p²×C
            hidden = out.mask.bool()  # B×N
            visible = (~hidden).float()[..., None, None]  # B×N×1×1
            vis_mean = (target * visible).sum((1, 2)) / (visible.sum((1, 2)) * target.shape[2])  # B×C
            err_vis = (target - vis_mean[:, None, None, :]).pow(2).mean((2, 3))  # B×N
            err_own = (target - target.mean(2, keepdim=True)).pow(2).mean((2, 3))  # B×N
            sums["model"] += out.loss.item() * len(x)
            sums["visible_mean"] += (err_vis[hidden].mean() * len(x)).item()
            sums["own_mean"] += (err_own[hidden].mean() * len(x)).item()
            count += len(x)
    return {k: v / count for k, v in sums.items()}


def _time_steps(model: MaskedAutoencoder, data: Dataset, batch_size: int, n: int = 3) -> float:
    """Seconds per training step, measured on a throwaway copy of the optimizer."""
    opt = torch.optim.AdamW(model.parameters(), lr=0.0)
    x = torch.stack([data[i][0] for i in range(batch_size)])
    model.train()
    start = time.perf_counter()
    for _ in range(n):
        model(x).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / n


def _evaluate(model: MaskedAutoencoder, train: Dataset, test: Dataset, probe: ProbeSettings) -> dict[str, float]:
    row = {"recon_loss": reconstruction_losses(model, test)["model"]}
    for pool in ("cls", "mean"):
        res = probe_encoder(model, train, test, ProbeSettings(**{**probe.__dict__, "pool": pool}))
        row.update({f"{name}_{pool}": top1 for name, top1 in res.items()})
    return row


def format_report(report: DemoReport) -> str:
    names = list(report.rows)
    keys = [("recon_loss", "held-out reconstruction MSE (lower is better)", ".4f")] + [
        (f"{p}_{pool}", f"{p} top-1 %, {pool} features", ".1f")
        for p in ("knn", "linear") for pool in ("cls", "mean")
    ]
    width = max(len(k[1]) for k in keys) + 2
    lines = [f"{'':{width}}" + "".join(f"{n:>14}" for n in names)]
    for key, label, fmt in keys:
        lines.append(f"{label:{width}}" + "".join(f"{report.rows[n][key]:>14{fmt}}" for n in names))
    b = report.baselines
    lines.append(f"reconstruction references: visible-pixel mean colour {b['visible_mean']:.4f}, "
                 f"each patch's own mean colour (oracle) {b['own_mean']:.4f}")
    lines.append(f"chance: {100 / b['num_classes']:.1f}% ({int(b['num_classes'])} photos)")
    return "\n".join(lines)


def run_demo(out_dir: str | Path = "runs/demo", *, minutes: float = 4.0, seed: int = 0,
             max_steps: int | None = None, n_per_photo: int = 1024, probe_epochs: int = 30) -> DemoReport:
    """Pretrain for about `minutes` (or exactly `max_steps`), evaluate, draw; returns the report."""
    out = Path(out_dir)
    torch.manual_seed(seed)
    model = build_model(DEMO_MODEL)
    random_init = build_model(DEMO_MODEL)
    random_init.load_state_dict(model.state_dict())  # the same starting point, never trained
    size = model.config["img_size"]
    print("building the demo data (crops of real photographs shipped by installed packages)...")
    unlabeled = demo_unlabeled(size=size, n_per_photo=n_per_photo, seed=seed)
    train_set, test_set, classes = demo_photo_crops(size=size, n_train_per_photo=64, n_test_per_photo=32, seed=seed)

    batch = int(DEMO_OPTIM["batch_size"])
    per_epoch = len(unlabeled) // batch
    if max_steps is None:
        step_s = _time_steps(build_model(DEMO_MODEL), unlabeled, batch)
        max_steps = max(10, int(minutes * 60 / (step_s * 1.1)))
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
    for name, m in (("pretrained", model), ("random init", random_init)):
        report.rows[name] = _evaluate(m, train_set, test_set, probe)
    refs = reconstruction_losses(model, test_set)
    report.baselines = {"visible_mean": refs["visible_mean"], "own_mean": refs["own_mean"], "num_classes": len(classes)}

    batch_x = torch.stack([test_set[i][0] for i in range(0, len(test_set), len(test_set) // 8)][:8])
    recon = save_reconstruction_png(out / "reconstruction.png", model, batch_x, seeds=torch.arange(8), max_rows=8)
    loader = DataLoader(test_set, batch_size=256)
    feats = {n: extract_features(m, loader, pooling="cls", progress=False).features
             for n, m in (("pretrained", model), ("random init", random_init))}
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


def _verdict(report: DemoReport) -> str:
    p, r = report.rows["pretrained"], report.rows["random init"]
    wins = {
        "held-out reconstruction": p["recon_loss"] < r["recon_loss"],
        "k-NN (cls)": p["knn_cls"] > r["knn_cls"],
        "k-NN (mean)": p["knn_mean"] > r["knn_mean"],
    }
    lost = [k for k, ok in wins.items() if not ok]
    return "pretrained beats random init on " + ", ".join(k for k, ok in wins.items() if ok) + (
        "" if not lost else f"; NOT on {', '.join(lost)}"
    )

