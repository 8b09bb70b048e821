"""Video MAE pretraining step: anymae vs HF transformers' VideoMAEForPreTraining, side by side.

Both models get the same weights (HF's, converted with `anymae.tasks.interop.videomae`), the same
clips and the same tube masks; one step = forward + backward + fused AdamW update. `--precision`
runs each model in fp32, bf16 autocast or both ("all"; HF fp32 is always the reference), every
variant from the same weights. Steps alternate (A B, B A, ...) and the median (min-max) is
reported, with FLOPs per clip (torch.utils.flop_counter), achieved FLOP/s and its share of the
2048² matmul ceiling of the variant's precision, measured in the same run (benchmarks/_timing.py).
`--profile N` then prints torch.profiler's top-N ops (self CPU time) of one anymae step.

    python benchmarks/video_step.py            # ViT-B, 16×224², tubelets 2×16×16, tube 0.9, batch 4
    python benchmarks/video_step.py --batch 2 --precision all --profile 20
    python benchmarks/video_step.py --quick    # tiny sizes, < 1 minute on a CPU
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import ceilings, in_precision, parse_precisions, report, time_variants

import anymae
from anymae.tasks.interop.videomae import load_videomae_weights


def build_pair(args: argparse.Namespace) -> tuple[torch.nn.Module, anymae.MaskedAutoencoder]:
    """(HF VideoMAEForPreTraining, anymae model) with identical weights (HF's random init)."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    ours = anymae.create_model(args.model, **args.sizes)
    c = ours.config
    hf_cfg = VideoMAEConfig(
        image_size=c["img_size"], patch_size=c["patch_size"], num_frames=c["num_frames"],
        tubelet_size=c["tubelet_size"], hidden_size=c["embed_dim"], num_hidden_layers=c["depth"],
        num_attention_heads=c["num_heads"], intermediate_size=int(c["embed_dim"] * c["mlp_ratio"]),
        decoder_hidden_size=c["decoder_embed_dim"], decoder_num_hidden_layers=c["decoder_depth"],
        decoder_num_attention_heads=c["decoder_num_heads"],
        decoder_intermediate_size=int(c["decoder_embed_dim"] * c["mlp_ratio"]), use_mean_pooling=False,
        layer_norm_eps=1e-6, norm_pix_loss=True, attn_implementation="sdpa",
    )  # fmt: skip
    hf = VideoMAEForPreTraining(hf_cfg)
    load_videomae_weights(ours, hf.state_dict())
    return hf, ours


def make_step(model: torch.nn.Module, kind: str, x: torch.Tensor, masks: list[torch.Tensor]) -> Callable[[], float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)
    hf_x = x.permute(0, 2, 1, 3, 4).contiguous()  # HF takes B×T×C×H×W
    state = {"i": 0}

    def step() -> float:
        mask = masks[state["i"] % len(masks)]
        state["i"] += 1
        if kind == "hf":
            loss = model(pixel_values=hf_x, bool_masked_pos=mask).loss
        else:  # the same hidden set, injected as noise (hidden tokens score high)
            loss = model(x, noise=mask.float() + 0.5 * torch.rand(mask.shape, device=x.device)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="videomae_vit_base_patch16")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5, help="timed steps per model")
    p.add_argument("--quick", action="store_true", help="tiny sizes (32², 4 frames, 2 blocks)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="fp32", help="fp32 | bf16 (autocast) | all (both, side by side)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="print the top-N ops of one anymae step")
    p.add_argument("--compile", default=None, metavar="BACKEND",
                   help="torch.compile every model in place first (inductor, aot_eager); minutes on a CPU")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args()
    args.sizes = {}
    if args.quick:
        args.sizes = {"img_size": 32, "num_frames": 4, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4,
                      "decoder_embed_dim": 32, "decoder_depth": 1, "decoder_num_heads": 4, "mask_ratio": 0.75}
        args.steps = min(args.steps, 4)

    device = torch.device(args.device)
    precisions = parse_precisions(args.precision)
    torch.manual_seed(0)
    hf, ours = build_pair(args)
    tok = ours.tokenizer
    x = torch.randn(args.batch, 3, tok.num_frames, *tok.img_size, device=device)
    from anymae.core.masking import make_plan

    masks = [make_plan(ours.masking, tok.grid, args.batch, device=device, seeds=torch.arange(args.batch) + 100 * i)
             .mask.bool() for i in range(args.steps + 3)]  # fmt: skip
    flops, times = time_variants(hf, ours, precisions, lambda m, kind: make_step(m, kind, x, masks), device, args.steps,
                                 compile_backend=args.compile)
    ceiling = ceilings(device, ["fp32", "bf16"])
    c = ours.config
    print(f"{args.model} {c['num_frames']}×{c['img_size']}² tubelet {c['tubelet_size']}×{c['patch_size']}² "
          f"({len(masks[0][0])} tokens), tube mask {c['mask_ratio']}, batch {args.batch} on {device} "
          f"({torch.get_num_threads()} threads), {args.steps} timed steps each (ABBA)")  # fmt: skip
    rows = report(times, flops, ceiling, args.batch, "clips", "hf fp32")
    for prec in precisions:
        print(f"speed ratio anymae {prec} / HF VideoMAE fp32: {rows[f'anymae {prec}']['ratio_vs_base']:.2f}x")
    if args.profile:
        profiled = copy.deepcopy(ours).to(device)  # a fresh copy: the timed ones have taken optimizer steps
        profile_step(in_precision(make_step(profiled, "anymae", x, masks), precisions[0], device), args.profile)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "flops": flops, "ceiling_flops": ceiling}, f, indent=2)


def profile_step(step: Callable[[], float], top: int) -> None:
    """Print torch.profiler's ``top`` ops by self CPU time over one call of ``step``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    print(f"\ntorch.profiler, one anymae step, top {top} ops by self CPU time:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=40))
    print(f"same, grouped by input shape (top {top}):")
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=top,
                                                              max_name_column_width=40, max_shapes_column_width=70))

if __name__ == "__main__":
    main()
