"""Validation and transforms of one point cloud (Point-MAE's), and their pipeline.

Validation (`check_cloud`): an empty cloud, NaN / Inf coordinates, coordinates beyond
±`MAX_COORD` (squared distances would overflow float32), fewer points than a group, or a
degenerate cloud (every point at one position: normalization would make it all zeros) raises
`DataError` naming the file; `on_error="skip"` in the datasets replaces such a sample by the
next readable one and counts it.

Transforms: `normalize_unit_sphere` (`pc_norm`: subtract the mean, divide by the largest norm);
resampling to a fixed count by FPS (ModelNet) or a random subset (ShapeNet-55); pretraining
augmentation `scale_translate` (scale U(2/3, 3/2) per axis, translate U(-0.2, 0.2)).
Randomness comes from torch's global generator, which `SeededSamples` seeds per sample.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from anymae.datasets.skips import DataError
from anymae.modalities.points_grouping import fps_numpy

Resample = Literal["fps", "random", "first"]


MAX_COORD = 1e18  # |x| beyond this: squared distances of such points overflow float32 (3·(2e18)² ≈ 1e37 < 3.4e38)


def check_cloud(points: np.ndarray, source: str, *, min_points: int = 1) -> np.ndarray:
    """Refuse empty clouds, NaN / Inf or overflowing coordinates, clouds smaller than `min_points`
    and degenerate clouds (zero extent).

    Args:
        points: N×3.
        source: the file (or sample) named in errors.
        min_points: the fewest points accepted (one group).

    Raises:
        DataError: naming `source` (the file) and what is wrong.
    """
    if points.shape[0] == 0:
        raise DataError(f"point cloud {source} is empty (0 points)")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise DataError(f"point cloud {source} has {int(bad.sum())} point(s) with NaN or Inf coordinates "
                        f"(first at row {int(np.flatnonzero(bad)[0])}; values beyond float32's range count as Inf)")
    big = float(np.abs(points).max())
    if big > MAX_COORD:
        raise DataError(f"point cloud {source} has coordinates up to {big:.3g}; expected |x| <= {MAX_COORD:g} "
                        "(squared distances would overflow float32)")
    if points.shape[0] < min_points:
        raise DataError(f"point cloud {source} has {points.shape[0]} points, fewer than the {min_points} "
                        "needed (one group)")
    if float(np.ptp(points, axis=0).max()) == 0.0:
        raise DataError(f"point cloud {source}: all {points.shape[0]} points lie at one position (zero extent); "
                        "normalized, it would be all zeros")
    return points


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Point-MAE's `pc_norm`: N×3 -> centred on the mean, largest norm 1 (a single point stays at 0)."""
    p = points.astype(np.float64)  # float32 squares of large coordinates would overflow
    centred = p - p.mean(axis=0, keepdims=True)
    scale = float(np.sqrt((centred**2).sum(axis=1)).max())
    return (centred / scale if scale > 0 else centred).astype(np.float32)


def resample(points: np.ndarray, num: int, how: Resample) -> np.ndarray:
    """N×3 -> num×3 by FPS (from index 0), a random subset (torch's generator) or the first rows.

    Clouds with fewer than `num` points are padded with randomly repeated points (sampling with
    replacement) whatever `how` is; the reference datasets always hold enough points.
    """
    n = points.shape[0]
    if n < num:
        extra = torch.randint(0, n, (num - n,)).numpy()
        return np.concatenate([points, points[extra]], axis=0)
    if n == num:
        return points
    if how == "fps":
        return points[fps_numpy(points, num)]
    if how == "random":
        return points[torch.randperm(n)[:num].numpy()]
    if how == "first":
        return points[:num]
    raise ValueError(f"resample={how!r}: expected 'fps', 'random' or 'first'")


def scale_translate(points: Tensor, scale: tuple[float, float] = (2 / 3, 3 / 2), translate: float = 0.2) -> Tensor:
    """Point-MAE's `PointcloudScaleAndTranslate` on one cloud: N×3 * U(scale)^3 + U(-t, t)^3."""
    lo, hi = scale
    s = torch.empty(3).uniform_(lo, hi)
    t = torch.empty(3).uniform_(-translate, translate)
    return points * s + t


class CloudPipeline:
    """Validation and transforms of one raw cloud -> num_points×3 float tensor.

    Order (ShapeNet-55's): resample, then normalize, then the training augmentation; points are
    shuffled first when `shuffle` (ScanObjectNN / ModelNet training: FPS then starts elsewhere).
    """

    def __init__(
        self,
        num_points: int,
        *,
        how: Resample = "fps",
        normalize: bool = True,
        augment: bool = False,
        shuffle: bool = False,
        min_points: int = 1,
    ) -> None:
        self.num_points, self.how, self.normalize = num_points, how, normalize
        self.augment, self.shuffle, self.min_points = augment, shuffle, min_points

    def __call__(self, points: np.ndarray, source: str) -> Tensor:
        points = check_cloud(points, source, min_points=self.min_points)
        if self.shuffle:
            points = points[torch.randperm(points.shape[0]).numpy()]
        points = resample(points, self.num_points, self.how)
        if self.normalize:
            points = normalize_unit_sphere(points)
        x = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))  # num_points×3
        return scale_translate(x) if self.augment else x
