"""Point-cloud grouping: farthest point sampling of centers and k-nearest-neighbour groups.

Batched and vectorized torch (any device): FPS runs G iterations, each one vectorized over the
batch and the points; kNN is one `cdist` + `topk`. pytorch3d's operators are used when it is
importable and asked for (an optional fast path; it is not an anymae dependency). For CPU data
preparation (resampling files of thousands of points) `fpsample`'s C++ FPS is faster than a
torch loop (see benchmarks/points_grouping.py); `fps_numpy` uses it when installed.

Reference behaviour (Point-MAE `Group` = pointnet2 `furthest_point_sample` + KNN_CUDA):
- FPS starts from index 0 of every cloud (`idxs[0] = 0` in the CUDA kernel);
- the kernel skips points with |p|² <= 1e-3 (`if (mag <= 1e-3) continue;`): after the first
  center such points are never chosen. `skip_near_origin=True` (default) keeps this quirk;
- ties of the running maximum go to the lowest index (strict `>` per thread);
- kNN returns the K nearest points sorted by distance (the center itself first);
- neighbourhoods are centred by subtracting their center.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
from torch import Tensor

_HAS_PYTORCH3D = importlib.util.find_spec("pytorch3d") is not None


def farthest_point_sample(
    xyz: Tensor, num: int, *, skip_near_origin: bool = True, backend: str = "torch"
) -> Tensor:
    """Indices of `num` farthest-point-sampled points per cloud, starting from index 0.

    Args:
        xyz: B×N×3 points.
        num: G, number of samples (1 <= G <= N).
        skip_near_origin: never pick points with |p|² <= 1e-3 after the first (pointnet2 quirk).
        backend: "torch" (batched loop of G steps), or "pytorch3d" (its `sample_farthest_points`,
            which has no near-origin rule; falls back to torch when pytorch3d is missing).

    Returns:
        B×G int64 indices into N.
    """
    b, n, _ = xyz.shape
    if not 1 <= num <= n:
        raise ValueError(f"farthest_point_sample: cannot pick {num} centers from {n} points")
    if backend == "pytorch3d" and _HAS_PYTORCH3D and not skip_near_origin:
        from pytorch3d.ops import sample_farthest_points

        return sample_farthest_points(xyz, K=num, random_start_point=False)[1]
    if backend not in ("torch", "pytorch3d"):
        raise ValueError(f"farthest_point_sample: backend={backend!r}: expected 'torch' or 'pytorch3d'")
    pts = xyz.float()
    dist = torch.full((b, n), 1e10, device=xyz.device)  # B×N, squared distance to the chosen set
    if skip_near_origin:
        dist = dist.masked_fill(pts.pow(2).sum(-1) <= 1e-3, -1.0)  # never the argmax
    idx = torch.zeros(b, num, dtype=torch.long, device=xyz.device)  # B×G, idx[:, 0] = 0
    rows = torch.arange(b, device=xyz.device)
    far = torch.zeros(b, dtype=torch.long, device=xyz.device)
    for i in range(1, num):
        last = pts[rows, far].unsqueeze(1)  # B×1×3
        d = (pts - last).pow(2).sum(-1)  # B×N
        dist = torch.where(dist < 0, dist, torch.minimum(dist, d))
        far = dist.argmax(dim=1)  # first maximum = lowest index on ties
        idx[:, i] = far
    return idx


def fps_numpy(points: np.ndarray, num: int, *, start: int = 0) -> np.ndarray:
    """FPS of one cloud on the CPU: N×C (xyz first) -> `num` indices, starting at `start`.

    Uses fpsample's C++ implementation when installed, else a numpy loop (no near-origin rule:
    this serves dataset resampling, like the reference's `farthest_point_sample` in numpy).
    """
    n = points.shape[0]
    if not 1 <= num <= n:
        raise ValueError(f"fps_numpy: cannot pick {num} points from {n}")
    xyz = np.ascontiguousarray(points[:, :3], dtype=np.float32)
    if importlib.util.find_spec("fpsample") is not None:
        import fpsample

        return np.asarray(fpsample.fps_sampling(xyz, num, start_idx=start), dtype=np.int64)
    idx = np.zeros(num, dtype=np.int64)
    idx[0] = start
    dist = np.full(n, np.inf, dtype=np.float64)
    for i in range(1, num):
        dist = np.minimum(dist, ((xyz - xyz[idx[i - 1]]) ** 2).sum(-1))
        idx[i] = int(np.argmax(dist))
    return idx


def knn_indices(centers: Tensor, xyz: Tensor, k: int, *, backend: str = "torch") -> Tensor:
    """The k nearest points of each center, nearest first.

    Args:
        centers: B×G×3 query points.
        xyz: B×N×3 points.
        k: K neighbours (K <= N).
        backend: "torch" (exact `cdist` without the matmul shortcut, then `topk`) or "pytorch3d"
            (`knn_points`; falls back to torch when pytorch3d is missing).

    Returns:
        B×G×K int64 indices into N.
    """
    if k > xyz.shape[1]:
        raise ValueError(f"knn_indices: k={k} neighbours requested from {xyz.shape[1]} points")
    if backend == "pytorch3d" and _HAS_PYTORCH3D:
        from pytorch3d.ops import knn_points

        return knn_points(centers.float(), xyz.float(), K=k, return_sorted=True).idx
    d = torch.cdist(centers.float(), xyz.float(), compute_mode="donot_use_mm_for_euclid_dist")  # B×G×N
    return d.topk(k, dim=-1, largest=False, sorted=True).indices


def group_points(
    xyz: Tensor, num_group: int, group_size: int, *, skip_near_origin: bool = True, backend: str = "torch"
) -> tuple[Tensor, Tensor]:
    """Point-MAE's `Group`: FPS centers, kNN neighbourhoods relative to their center.

    Args:
        xyz: B×N×3 points.
        num_group: G centers.
        group_size: K points per group.
        skip_near_origin: the pointnet2 FPS rule (see module doc).
        backend: "torch" or "pytorch3d".

    Returns:
        (B×G×K×3 neighbourhoods minus their center, B×G×3 centers)
    """
    if xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise ValueError(f"group_points: expected B×N×3 points, got shape {tuple(xyz.shape)}")
    if group_size > xyz.shape[1]:
        raise ValueError(f"group_points: groups of {group_size} points need clouds of >= {group_size} points, "
                         f"got {xyz.shape[1]}")
    center_idx = farthest_point_sample(xyz, num_group, skip_near_origin=skip_near_origin, backend=backend)  # B×G
    centers = torch.gather(xyz, 1, center_idx.unsqueeze(-1).expand(-1, -1, 3))  # B×G×3
    idx = knn_indices(centers, xyz, group_size, backend=backend)  # B×G×K
    b, g, k = idx.shape
    flat = idx.reshape(b, g * k, 1).expand(-1, -1, 3)  # B×(G·K)×3
    neighbourhood = torch.gather(xyz, 1, flat).reshape(b, g, k, 3)  # B×G×K×3
    return neighbourhood - centers.unsqueeze(2), centers
