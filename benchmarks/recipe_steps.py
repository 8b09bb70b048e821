"""Bare training-step time of every image recipe's tiny preset, relative to plain MAE, in one run.

Each recipe's model is built from its `configs/<recipe>_tiny_cpu.yaml` model section (run-length
options set to `auto` get 1 step per epoch; frozen teachers keep their initial weights; codebooks
are fitted on the timing batch), then every model does the same optimizer step (forward, backward,
fused AdamW) on one batch of 32×32 images held in memory, the variants alternated round by round
(`_timing.alternate`) so that machine noise hits them alike. This is the "step time vs MAE" column
of the README's recipe table; `recipe_table.py` gives the accuracy columns.

    python benchmarks/recipe_steps.py                  # every image recipe, batch 64, 10 rounds
    python benchmarks/recipe_steps.py --only hpm lut   # a subset (MAE always runs)
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._timing import alternate  # noqa: E402
from benchmarks.recipe_table import BASELINE, config_path, image_recipes  # noqa: E402


def build(recipe: str, batch: torch.Tensor) -> torch.nn.Module:
    from anymae.tasks.train.fit_targets import fit_targets_on_batch
    from anymae.tasks.train.pretrain import build_model
    from anymae.tasks.train.run_length import placeholder

    section = yaml.safe_load(config_path(recipe).read_text())["model"]
    torch.manual_seed(0)
    model = build_model(placeholder(section)).train()
    fit_targets_on_batch(model, batch)
    return model


def make_step(model: torch.nn.Module, batch: torch.Tensor):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    seeds = torch.arange(batch.shape[0])
    after = getattr(model, "after_step", None)
    count = [0]

    def step() -> float:
        out = model(batch, seeds=seeds)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        count[0] += 1
        if after is not None:
            after(count[0])  # EMA teachers update here, as in the engine
        return float(out.loss.detach())

    return step


def main(argv: list[str] | None = None) -> None:
    import warnings

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--only", nargs="*", default=None)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", message="the model reads 2 views")  # a plain batch serves both views
    torch.manual_seed(0)
    batch = torch.randn(args.batch, 3, 32, 32)
    names = [BASELINE, *[r for r in image_recipes() if args.only is None or r in args.only]]
    steps = {}
    for name in names:
        try:
            steps[name] = make_step(build(name, batch), batch)
        except Exception as err:  # reported, not fatal
            print(f"{name}: cannot be timed ({type(err).__name__}: {err})")
    times = alternate(steps, args.rounds, torch.device("cpu"))
    base = statistics.median(times[BASELINE])
    print(f"batch {args.batch}, {args.rounds} alternated rounds, {torch.get_num_threads()} threads")
    print(f"{'recipe':<14} {'s/step median [min-max]':>25} {'vs MAE':>7}")
    for name, t in times.items():
        med = statistics.median(t)
        print(f"{name:<14} {f'{med:.3f} [{min(t):.3f}-{max(t):.3f}]':>25} {med / base:7.2f}")


if __name__ == "__main__":
    main()
