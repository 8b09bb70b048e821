"""A cross-modal step next to its single-modality parts: does one CAV-MAE step cost more than its pieces?

One CAV-MAE model (the same weights for every variant) runs a training step (forward, backward,
fused AdamW) on

- **both**: the audio-visual batch {"audio", "video"}: modality blocks per modality, the joint
  block over the concatenated visible tokens, the modality-only passes the contrastive term needs,
  the joint decoder;
- **audio only** / **video only**: the same model given one modality's batch (its modality blocks,
  the joint block on that modality alone, the decoder on that modality's tokens; no contrastive
  term, which needs both).

The issue's target: **both ≤ audio only + video only + the joint blocks' extra work**. The extra
work of the joint blocks is printed as its own variant: the joint block run once more per modality
(the modality-only passes) is what a cross-modal step adds by design. Printed: median s/step
[min-max] of each, GFLOP per step, and both / (audio + video).

    python benchmarks/crossmodal_step.py                       # cavmae_tiny, batch 32
    python benchmarks/crossmodal_step.py --preset cavmae_base --batch 2 --steps 3
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._timing import alternate, ceilings, report, step_flops  # noqa: E402


def make_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    seeds = torch.arange(next(iter(batch.values())).shape[0])

    def step() -> float:
        out = model(batch, seeds=seeds)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(out.loss.detach())

    return step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cavmae_tiny")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="timed rounds per variant")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    import anymae

    torch.manual_seed(0)
    model = anymae.create_model(args.preset).train()
    both = dict(model.tokenizer.example(args.batch))
    variants = {"both fp32": both, "audio fp32": {"audio": both["audio"]}, "video fp32": {"video": both["video"]}}
    steps = {name: make_step(copy.deepcopy(model), batch) for name, batch in variants.items()}
    flops = {name: step_flops(s) for name, s in steps.items()}
    times = alternate(steps, args.steps, torch.device("cpu"))
    ceiling = ceilings(torch.device("cpu"), ["fp32"])
    print(f"{args.preset}, batch {args.batch}, {torch.get_num_threads()} threads")
    rows = report(times, flops, ceiling, args.batch, "samples", base="both fp32")
    med = {k: statistics.median(v) for k, v in times.items()}
    parts = med["audio fp32"] + med["video fp32"]
    extra_flops = flops["both fp32"] - flops["audio fp32"] - flops["video fp32"]
    print(f"both / (audio + video) = {med['both fp32'] / parts:.2f} in time, "
          f"{flops['both fp32'] / (flops['audio fp32'] + flops['video fp32']):.2f} in FLOPs "
          f"(the cross-modal step's own work: {extra_flops / 1e9:+.2f} GFLOP per step = joint attention over both "
          "modalities' tokens, the modality-only passes of the contrastive term, the term itself)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ratio_time": med["both fp32"] / parts}, indent=2))


if __name__ == "__main__":
    main()
