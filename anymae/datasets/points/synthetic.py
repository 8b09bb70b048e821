"""Synthetic point clouds (shapes with known classes) and a writer of cloud files, for tests and demos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from anymae.datasets.contract import SampleDataset
from anymae.datasets.points.readers import MESH_EXTENSIONS
from anymae.datasets.points.transforms import normalize_unit_sphere, scale_translate

SHAPES: tuple[str, ...] = ("sphere", "cube", "torus", "cylinder", "cone")


def synthetic_shape(kind: str, num: int, rng: np.random.Generator) -> np.ndarray:
    """`num` points on the surface of a unit-sized shape: sphere, cube, torus, cylinder or cone."""
    u, v = rng.random(num), rng.random(num)
    if kind == "sphere":
        p = rng.normal(size=(num, 3))
        return (p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)
    if kind == "cube":
        p = rng.uniform(-1, 1, size=(num, 3))
        axis = rng.integers(0, 3, num)
        p[np.arange(num), axis] = np.sign(rng.uniform(-1, 1, num))
        return p.astype(np.float32)
    if kind == "torus":
        a, b = 2 * np.pi * u, 2 * np.pi * v
        r = 0.7 + 0.3 * np.cos(b)
        return np.stack([r * np.cos(a), 0.3 * np.sin(b), r * np.sin(a)], axis=1).astype(np.float32)
    if kind == "cylinder":
        a = 2 * np.pi * u
        return np.stack([np.cos(a), 2 * v - 1, np.sin(a)], axis=1).astype(np.float32)
    if kind == "cone":
        a, h = 2 * np.pi * u, np.sqrt(v)
        return np.stack([h * np.cos(a), 1 - 2 * h, h * np.sin(a)], axis=1).astype(np.float32)
    raise ValueError(f"unknown shape {kind!r}; expected one of {SHAPES}")


class SyntheticShapes(Dataset, SampleDataset):
    """Labelled synthetic shapes (tests and demos): class i is SHAPES[i], randomly rotated about y."""

    def __init__(self, n: int, *, num_points: int = 1024, num_classes: int = 3, seed: int = 0,
                 augment: bool = False) -> None:
        if not 1 <= num_classes <= len(SHAPES):
            raise ValueError(f"num_classes={num_classes}: expected 1..{len(SHAPES)}")
        rng = np.random.default_rng(seed)
        self.labels = [i % num_classes for i in range(n)]
        clouds = []
        for label in self.labels:
            p = synthetic_shape(SHAPES[label], num_points, rng)
            t = rng.uniform(0, 2 * np.pi)
            rot = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]], dtype=np.float32)
            clouds.append(normalize_unit_sphere(p @ rot.T))
        self.clouds = torch.from_numpy(np.stack(clouds))  # n×num_points×3
        self.augment = augment
        self.classes = list(SHAPES[:num_classes])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x = self.clouds[index]
        return (scale_translate(x) if self.augment else x), self.labels[index]


def write_cloud(path: str | Path, points: np.ndarray, *, faces: np.ndarray | None = None) -> Path:
    """Write a cloud (or a mesh when `faces` is given) in the format its extension names (tests, demos)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    if ext == ".txt":
        np.savetxt(path, points, delimiter=",", fmt="%.6f")
        return path
    if ext == ".npy":
        np.save(path, points)
        return path
    from anymae.extras import require

    o3d = require("open3d", "points", purpose="writing point-cloud files")
    if ext in MESH_EXTENSIONS or faces is not None:
        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(points.astype(np.float64)),
                                         o3d.utility.Vector3iVector(np.asarray(faces, dtype=np.int32)))
        ok = o3d.io.write_triangle_mesh(str(path), mesh)
    else:
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
        ok = o3d.io.write_point_cloud(str(path), pc)
    if not ok:
        raise OSError(f"open3d could not write {path}")
    return path

