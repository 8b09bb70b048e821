"""Image MAE pretraining step: anymae vs HF transformers' ViTMAEForPreTraining, side by side.

Both models get the same weights (converted from HF's), the same batch and the same masks; one
step = forward + backward + fused AdamW update (the default of both HF's Trainer and anymae).
Steps alternate between the two models (A B, B A, ...) so that machine noise hits both alike;
the median is reported. Also printed: FLOPs per sample (counted by
torch.utils.flop_counter on one step), achieved FLOP/s, the machine's fp32 matmul ceiling
measured in the same run, and peak memory (CUDA: max allocated; CPU: peak RSS of a fresh process
that runs only that model's steps).

    python benchmarks/image_step.py                       # ViT-B/16, 224², batch 8, mask 0.75
    python benchmarks/image_step.py --batch 16 --steps 8  # any preset / size
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

import anymae
from anymae.tasks.interop.mae import hf_vitmae_to_anymae


def build_ours(args: argparse.Namespace) -> anymae.MaskedAutoencoder:
    return anymae.create_model(args.model, img_size=args.img, mask_ratio=args.mask, norm_pix_loss=True)


def build_hf(cfg: dict) -> torch.nn.Module:
    """HF ViTMAEForPreTraining with the sizes of an anymae image config."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    hf_cfg = ViTMAEConfig(
        hidden_size=cfg["embed_dim"], num_hidden_layers=cfg["depth"], num_attention_heads=cfg["num_heads"],
        intermediate_size=int(cfg["embed_dim"] * cfg["mlp_ratio"]), image_size=cfg["img_size"],
        patch_size=cfg["patch_size"], num_channels=cfg["in_chans"], decoder_hidden_size=cfg["decoder_embed_dim"],
        decoder_num_hidden_layers=cfg["decoder_depth"], decoder_num_attention_heads=cfg["decoder_num_heads"],
        decoder_intermediate_size=int(cfg["decoder_embed_dim"] * cfg["mlp_ratio"]), layer_norm_eps=1e-6,
        mask_ratio=cfg["mask_ratio"], norm_pix_loss=True, attn_implementation="sdpa",
    )
    return ViTMAEForPreTraining(hf_cfg)


def build_pair(args: argparse.Namespace) -> tuple[torch.nn.Module, anymae.MaskedAutoencoder]:
    """(HF ViTMAEForPreTraining, anymae model) with identical weights."""
    ours = build_ours(args)
    hf = build_hf(ours.config)
    ours.load_state_dict(hf_vitmae_to_anymae(hf.state_dict()), strict=True)
    return hf, ours


def make_step(model: torch.nn.Module, kind: str, x: torch.Tensor, num_tokens: int) -> Callable[[], float]:
    # fused AdamW: the default of HF's Trainer (torch >= 2.8) and of anymae's engine
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)
    gen = torch.Generator().manual_seed(0)

    def step() -> float:
        noise = torch.rand(x.shape[0], num_tokens, generator=gen).to(x.device)
        loss = model(pixel_values=x, noise=noise).loss if kind == "hf" else model(x, noise=noise).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_ceiling(device: torch.device, n: int = 2048, reps: int = 10) -> float:
    """fp32 FLOP/s of an n×n matmul on this device (the 'physical' ceiling)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def step_flops(step: Callable[[], float]) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def peak_memory_child(args: argparse.Namespace, kind: str) -> float:
    """Peak memory in MiB of one model's steps, in a fresh process (CPU) or by the allocator (CUDA)."""
    cmd = [sys.executable, __file__, "--memory-of", kind] + [
        f"--{k}={v}" for k, v in vars(args).items() if k not in ("memory_of", "json") and v is not None
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return float(out)


def memory_main(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    with torch.device("meta"):  # geometry only; the measured process builds one model
        meta = build_ours(args)
    n = meta.tokenizer.grid[0] * meta.tokenizer.grid[1]
    model = (build_hf(meta.config) if args.memory_of == "hf" else build_ours(args)).to(device)
    x = torch.randn(args.batch, 3, args.img, args.img, device=device)
    step = make_step(model, args.memory_of, x, n)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        step()
    if device.type == "cuda":
        print(torch.cuda.max_memory_allocated() / 2**20)
    else:
        print(peak_rss_mib())


def peak_rss_mib() -> float:
    """Peak resident memory of this process. ru_maxrss would include the parent's peak (Linux
    carries it across fork + exec), so the address space's own high-water mark is read instead."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mae_vit_base_patch16")
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--mask", type=float, default=0.75)
    p.add_argument("--steps", type=int, default=5, help="timed steps per model")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_of:
        return memory_main(args)

    device = torch.device(args.device)
    torch.manual_seed(0)
    hf, ours = build_pair(args)
    hf.to(device), ours.to(device)
    x = torch.randn(args.batch, 3, args.img, args.img, device=device)
    n = ours.tokenizer.grid[0] * ours.tokenizer.grid[1]
    steps = {"hf": make_step(hf, "hf", x, n), "anymae": make_step(ours, "anymae", x, n)}
    flops = {k: step_flops(s) for k, s in steps.items()}  # also the warm-up step
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(args.steps):
        order = list(steps.items()) if r % 2 == 0 else list(reversed(steps.items()))  # ABBA: no fixed second
        for k, s in order:
            sync(device)
            t = time.perf_counter()
            s()
            sync(device)
            times[k].append(time.perf_counter() - t)
    ceiling = matmul_ceiling(device)
    med = {k: statistics.median(v) for k, v in times.items()}
    mem = {k: peak_memory_child(args, "hf" if k == "hf" else "anymae") for k in steps}
    threads = torch.get_num_threads()
    print(f"{args.model} {args.img}² batch {args.batch} mask {args.mask} on {device} ({threads} threads), "
          f"{args.steps} timed steps each, median")
    print(f"{'':8} {'s/step':>8} {'samples/s':>10} {'GFLOP/sample':>13} {'GFLOP/s':>9} {'of ceiling':>10} {'peak MiB':>9}")
    for k in steps:
        gflop = flops[k] / args.batch / 1e9
        achieved = flops[k] / med[k]
        print(f"{k:8} {med[k]:8.3f} {args.batch / med[k]:10.2f} {gflop:13.2f} {achieved / 1e9:9.1f} "
              f"{achieved / ceiling:10.1%} {mem[k]:9.0f}")
    print(f"fp32 matmul ceiling (2048²): {ceiling / 1e9:.1f} GFLOP/s")
    print(f"speed ratio anymae / HF ViTMAE: {med['hf'] / med['anymae']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "seconds": med, "flops": flops, "peak_mib": mem,
                       "ceiling_flops": ceiling, "ratio": med["hf"] / med["anymae"]}, f, indent=2)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
