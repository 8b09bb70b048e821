"""ChA-MAEViT pretraining step as the channel count grows (3, 5, 8, 13 channels).

One token per (channel, patch): the encoder sees C·int((1 - r)·P) visible tokens and the decoder
all C·P, so attention grows with C² and the rest with C. One step = forward + backward + fused
AdamW update, median over steps, on a batch of random stacks. DCP is fixed to its patch-only mode
(`p_patch=1`) so every step of a run has the same token count. Peak memory: CUDA max allocated,
or on the CPU the peak RSS of a fresh process running only that channel count.

    python benchmarks/multichannel_step.py            # ViT-S/16 (CHAMMI preset sizes), 224², batch 8
    python benchmarks/multichannel_step.py --quick    # tiny preset, 32², < 1 minute on a CPU
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

import anymae
from anymae.modalities.multichannel import ChannelStack


def one_count(args: argparse.Namespace, channels: int) -> dict[str, float]:
    """Build the model with `channels` channels, time `args.steps` steps; figures as a dict."""
    torch.manual_seed(0)
    names = [f"ch{i}" for i in range(channels)]
    model = anymae.create_model(args.model, img_size=args.img, channels=names, p_patch=1.0, p_channel=0.0)
    dev = torch.device(args.device)
    model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = ChannelStack(torch.randn(args.batch, channels, args.img, args.img), torch.arange(channels)).to(dev)
    times = []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    for step in range(args.warmup + args.steps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = time.perf_counter()
        out = model(x, seeds=torch.arange(args.batch) + 1000 * step)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if step >= args.warmup:
            times.append(time.perf_counter() - t)
    tokens = out.tokens.x.shape[1]
    visible = out.plan.keep.shape[1]
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ms = 1000 * statistics.median(times)
    return {"channels": channels, "tokens": tokens, "visible": visible, "ms_per_step": ms,
            "samples_per_s": args.batch / (ms / 1000), "peak_mib": peak / 2**20}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="chamaevit_small_patch16_chammi")
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--channels", type=int, nargs="+", default=[3, 5, 8, 13])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true",
                   help="tiny preset, 32² stacks, batch 4, 3 steps, one process (CPU peak RSS is then cumulative)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)  # one channel count in a fresh process
    args = p.parse_args()
    if args.quick:
        args.model, args.img, args.batch, args.steps, args.warmup = "chamaevit_tiny_patch8", 32, 4, 3, 1
    if args.child is not None:
        print(json.dumps(one_count(args, args.child)))
        return
    rows = []
    for c in args.channels:
        if args.device == "cpu" and not args.quick:  # own process: a clean peak RSS per channel count
            cmd = [sys.executable, __file__, *sys.argv[1:], "--child", str(c)]
            rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]))
        else:
            rows.append(one_count(args, c))
    base = rows[0]
    print(f"{args.model} {args.img}² batch {args.batch} on {args.device} (DCP patch-only, ratio as preset)")
    print(f"{'C':>3} {'tokens':>7} {'visible':>7} {'ms/step':>9} {'samples/s':>10} {'peak MiB':>9} "
          f"{'time ×':>7} {'tokens ×':>8} {'mem ×':>6}")  # fmt: skip
    for r in rows:
        print(f"{r['channels']:>3} {r['tokens']:>7} {r['visible']:>7} {r['ms_per_step']:>9.1f} {r['samples_per_s']:>10.1f} "
              f"{r['peak_mib']:>9.0f} {r['ms_per_step'] / base['ms_per_step']:>7.2f} "
              f"{r['tokens'] / base['tokens']:>8.2f} {r['peak_mib'] / base['peak_mib']:>6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
