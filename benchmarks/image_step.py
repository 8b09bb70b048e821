"""Image MAE pretraining step: anymae vs HF transformers' ViTMAEForPreTraining, side by side.

Both models get the same weights (converted from HF's), the same batch and the same masks; one
step = forward + backward + fused AdamW update (the default of both HF's Trainer and anymae).
`--precision` picks fp32, bf16 autocast, or both ("all"): each model runs in each precision
named, every variant from the same initial weights. Steps alternate between the variants (A B,
B A, ...: benchmarks/_timing.py) so that machine noise hits all alike; the median (min-max) is
reported. Also printed: FLOPs per sample (counted by torch.utils.flop_counter on one step),
achieved FLOP/s, its share of the 2048² matmul ceiling of the variant's precision measured in the
same run, the ratio to HF in fp32, and peak memory (CUDA: max allocated; CPU: peak RSS of a fresh
process that runs only that variant's steps; `--no-memory` skips it).

    python benchmarks/image_step.py                       # ViT-B/16, 224², batch 8, mask 0.75, fp32
    python benchmarks/image_step.py --precision all       # + bf16 autocast, for both models
    python benchmarks/image_step.py --batch 16 --steps 8  # any preset / size
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import ceilings, in_precision, parse_precisions, report, time_variants

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


def peak_memory_child(args: argparse.Namespace, kind: str, precision: str) -> float:
    """Peak memory in MiB of one variant's steps, in a fresh process (CPU) or by the allocator (CUDA)."""
    skip = ("memory_of", "json", "precision", "no_memory")
    cmd = [sys.executable, __file__, "--memory-of", kind, f"--precision={precision}"] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in skip and v is not None
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
    step = in_precision(make_step(model, args.memory_of, x, n), args.precision, device)
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
    p.add_argument("--precision", default="fp32", help="fp32 | bf16 (autocast) | all (both, side by side)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--compile", default=None, metavar="BACKEND",
                   help="torch.compile every model in place first (inductor, aot_eager); minutes on a CPU")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_of:
        return memory_main(args)

    device = torch.device(args.device)
    precisions = parse_precisions(args.precision)
    torch.manual_seed(0)
    hf, ours = build_pair(args)
    x = torch.randn(args.batch, 3, args.img, args.img, device=device)
    n = ours.tokenizer.grid[0] * ours.tokenizer.grid[1]
    flops, times = time_variants(hf, ours, precisions, lambda m, kind: make_step(m, kind, x, n), device, args.steps,
                                 compile_backend=args.compile)
    ceiling = ceilings(device, ["fp32", "bf16"])
    print(f"{args.model} {args.img}² batch {args.batch} mask {args.mask} on {device} "
          f"({torch.get_num_threads()} threads), {args.steps} timed steps each (ABBA)")
    rows = report(times, flops, ceiling, args.batch, "samples", "hf fp32")
    mem = {}
    if not args.no_memory:
        mem = {k: peak_memory_child(args, *k.split()) for k in times}
        print("peak memory (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in mem.items()))
    for prec in precisions:
        print(f"speed ratio anymae {prec} / HF fp32: {rows[f'anymae {prec}']['ratio_vs_base']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "flops": flops, "peak_mib": mem, "ceiling_flops": ceiling},
                      f, indent=2)  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
