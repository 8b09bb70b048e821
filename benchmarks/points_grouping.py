"""Point-cloud grouping (FPS + kNN) cost, its share of a Point-MAE training step, and step throughput.

Compares, per batch of 1024-point clouds (G 64 centers, K 32 neighbours):
- `plain`: a straightforward reference: per-sample python loop FPS (one point per iteration, torch
  ops) and kNN by a full sort of all distances;
- `fpsample`: fpsample's C++ FPS per sample on the CPU (numpy), then anymae's kNN;
- `anymae`: anymae's batched torch FPS (G iterations vectorized over the batch) + cdist/topk kNN;
and times a full `point_mae` training step (forward, backward, AdamW) at the same batch, reporting
grouping's share of it. Checks that all three groupings pick the same centers.

    python benchmarks/points_grouping.py --quick          # < 1 minute, CPU
    python benchmarks/points_grouping.py --batch 128      # the reference batch (use a GPU)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import anymae
from anymae.modalities.points_grouping import farthest_point_sample, group_points, knn_indices


def plain_grouping(xyz: torch.Tensor, g: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample loop FPS (start 0, no near-origin rule) + full-sort kNN: B×G×K×3, B×G×3."""
    groups, centers = [], []
    for cloud in xyz:
        n = cloud.shape[0]
        chosen = [0]
        dist = torch.full((n,), float("inf"), device=cloud.device)
        for _ in range(1, g):
            dist = torch.minimum(dist, ((cloud - cloud[chosen[-1]]) ** 2).sum(-1))
            chosen.append(int(dist.argmax()))
        c = cloud[chosen]  # G×3
        d = ((c[:, None] - cloud[None]) ** 2).sum(-1)  # G×N
        idx = d.argsort(dim=1)[:, :k]  # full sort
        groups.append(cloud[idx] - c[:, None])
        centers.append(c)
    return torch.stack(groups), torch.stack(centers)


def fpsample_grouping(xyz: torch.Tensor, g: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    import fpsample

    pts = xyz.cpu().numpy()
    idx = torch.from_numpy(np.stack([fpsample.fps_sampling(p, g, start_idx=0).astype(np.int64) for p in pts]))
    centers = torch.gather(xyz, 1, idx.to(xyz.device).unsqueeze(-1).expand(-1, -1, 3))
    nn_idx = knn_indices(centers, xyz, k)
    b = xyz.shape[0]
    groups = torch.gather(xyz, 1, nn_idx.reshape(b, -1, 1).expand(-1, -1, 3)).reshape(b, g, k, 3)
    return groups - centers.unsqueeze(2), centers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int) -> float:
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, < 1 minute on a CPU")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.repeats = 8, 3
    device = torch.device(args.device)
    torch.manual_seed(0)
    xyz = torch.randn(args.batch, args.points, 3, device=device)
    xyz = xyz / xyz.norm(dim=-1, keepdim=True)  # on the unit sphere: no point near the origin
    g, k = 64, 32
    print(f"device {device}, batch {args.batch} x {args.points} points, G {g}, K {k}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")

    ours = group_points(xyz, g, k)
    plain = plain_grouping(xyz, g, k)
    assert torch.equal(ours[1], plain[1]), "FPS centers differ from the plain loop"
    rows = {"plain (loop FPS + full sort)": timed(lambda: plain_grouping(xyz, g, k), device, args.repeats),
            "anymae (batched FPS + topk)": timed(lambda: group_points(xyz, g, k), device, args.repeats),
            "anymae FPS only": timed(lambda: farthest_point_sample(xyz, g), device, args.repeats)}
    try:
        fps_c = fpsample_grouping(xyz, g, k)
        assert torch.equal(fps_c[1], ours[1]), "fpsample centers differ"
        rows["fpsample FPS + anymae kNN"] = timed(lambda: fpsample_grouping(xyz, g, k), device, args.repeats)
    except ImportError:
        pass

    model = anymae.create_model("point_mae").to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seeds = torch.arange(args.batch)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model(xyz, seeds=seeds).loss.backward()
        opt.step()

    step_s = timed(step, device, args.repeats)
    grouping = rows["anymae (batched FPS + topk)"]
    print(f"\n{'grouping':32} {'ms/batch':>10} {'vs plain':>9}")
    for name, sec in rows.items():
        print(f"{name:32} {1000 * sec:10.2f} {rows['plain (loop FPS + full sort)'] / sec:8.1f}x")
    print(f"\npoint_mae training step (fwd + bwd + AdamW): {1000 * step_s:.1f} ms/batch, "
          f"{args.batch / step_s:.1f} clouds/s")
    print(f"grouping share of the step: {100 * grouping / step_s:.1f}%")


if __name__ == "__main__":
    main()
