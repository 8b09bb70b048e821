"""Point-cloud files: readers, validation, normalization, resampling, augmentation, datasets.

Readers (`read_points`): point files .ply .pcd .xyz .pts (open3d), meshes .off .obj (open3d,
then area-weighted uniform sampling of the surface with a fixed seed, so a mesh always gives the
same points, like the references' precomputed resampled sets), ModelNet's resampled text rows
.txt (comma-separated x,y,z[,nx,ny,nz]) and numpy .npy (N×3+). Only xyz is kept.

Validation (`check_cloud`): an empty cloud, NaN / Inf coordinates, or fewer points than a group
raises `DataError` naming the file; `on_error="skip"` in the datasets replaces such a sample by
the next readable one and counts it (shared across DataLoader workers, as `ImageFiles` does).

Transforms (Point-MAE): `normalize_unit_sphere` (`pc_norm`: subtract the mean, divide by the
largest norm); resampling to a fixed count by FPS (ModelNet) or a random subset (ShapeNet-55);
pretraining augmentation `scale_translate` (scale U(2/3, 3/2) per axis, translate U(-0.2, 0.2)).
Randomness comes from torch's global generator, which `SeededSamples` seeds per sample.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from anymae.modalities.points_grouping import fps_numpy
from anymae.datasets.skips import DataError, Skips

logger = logging.getLogger(__name__)

POINT_EXTENSIONS: tuple[str, ...] = (".ply", ".pcd", ".xyz", ".pts")
MESH_EXTENSIONS: tuple[str, ...] = (".off", ".obj")
ARRAY_EXTENSIONS: tuple[str, ...] = (".txt", ".npy")
ALL_EXTENSIONS: tuple[str, ...] = POINT_EXTENSIONS + MESH_EXTENSIONS + ARRAY_EXTENSIONS
Resample = Literal["fps", "random", "first"]
_MESH_SEED = 0


def sample_mesh(vertices: np.ndarray, triangles: np.ndarray, num: int, *, seed: int = _MESH_SEED) -> np.ndarray:
    """`num` points uniformly on a triangle mesh's surface (area-weighted faces, uniform barycentric).

    Args:
        vertices: V×3 float.
        triangles: F×3 int vertex indices.
        num: points to draw.
        seed: numpy seed (fixed: the same mesh always gives the same points).

    Returns:
        num×3 float32.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(triangles, dtype=np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]  # F×3 each
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)  # F
    if not np.isfinite(area).all() or area.sum() <= 0:
        raise ValueError("the mesh has no surface area (degenerate or non-finite triangles)")
    rng = np.random.default_rng(seed)
    face = rng.choice(len(f), size=num, p=area / area.sum())  # num
    r1, r2 = rng.random(num), rng.random(num)
    s = np.sqrt(r1)
    w = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)  # num×3 barycentric weights
    return (w[:, :1] * a[face] + w[:, 1:2] * b[face] + w[:, 2:] * c[face]).astype(np.float32)


def _read_off(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A tolerant OFF parser: also reads ModelNet's glued header line (`OFF490 518 0`)."""
    tokens = [ln.split("#")[0].strip() for ln in path.read_text(errors="strict").splitlines()]
    lines = [ln for ln in tokens if ln]
    if not lines or not lines[0].upper().startswith("OFF"):
        raise ValueError("not an OFF file (no 'OFF' header)")
    head = lines[0][3:].split()
    rest = lines[1:]
    if not head:
        head, rest = rest[0].split(), rest[1:]
    nv, nf = int(head[0]), int(head[1])
    verts = np.array([[float(t) for t in ln.split()[:3]] for ln in rest[:nv]], dtype=np.float64).reshape(-1, 3)
    faces: list[list[int]] = []
    for ln in rest[nv : nv + nf]:
        vals = [int(t) for t in ln.split()]
        poly = vals[1 : 1 + vals[0]]
        faces.extend([poly[0], poly[i], poly[i + 1]] for i in range(1, len(poly) - 1))  # fan triangulation
    if len(verts) != nv:
        raise ValueError(f"OFF header announces {nv} vertices, found {len(verts)}")
    return verts, np.array(faces, dtype=np.int64).reshape(-1, 3)


def _read_mesh(path: Path, mesh_points: int) -> np.ndarray:
    from anymae.extras import require

    o3d = require("open3d", "points", purpose="reading meshes")
    is_off = path.suffix.lower() == ".off"
    with open(path, "rb") as f:
        glued = is_off and f.readline().strip().upper() not in (b"OFF", b"")  # ModelNet's `OFF490 518 0`
    if glued:
        verts, faces = _read_off(path)
    else:
        mesh = o3d.io.read_triangle_mesh(str(path))
        verts, faces = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
        if (len(verts) == 0 or len(faces) == 0) and is_off:
            verts, faces = _read_off(path)
    if len(verts) == 0:
        raise ValueError("open3d read no vertices (unreadable or empty mesh)")
    if len(faces) == 0:
        return verts.astype(np.float32)  # a mesh without faces: its vertices are the points
    return sample_mesh(verts, faces, mesh_points)


def read_points(path: str | Path, *, mesh_points: int = 8192) -> np.ndarray:
    """Read one point-cloud or mesh file -> N×3 float32 xyz (not validated, see `check_cloud`).

    Raises:
        DataError: naming the file, for a missing, unreadable or unsupported file.
    """
    path = Path(path)
    ext = path.suffix.lower()
    try:
        if not path.is_file():
            raise FileNotFoundError("no such file")
        if ext in POINT_EXTENSIONS:
            from anymae.extras import require

            o3d = require("open3d", "points", purpose="reading point-cloud files")
            pts = np.asarray(o3d.io.read_point_cloud(str(path)).points)
            if pts.size == 0 and path.stat().st_size > 0 and ext == ".ply":
                raise ValueError("open3d read no points (unreadable PLY)")
        elif ext in MESH_EXTENSIONS:
            pts = _read_mesh(path, mesh_points)
        elif ext == ".txt":
            pts = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
        elif ext == ".npy":
            pts = np.load(path, allow_pickle=False)
        else:
            raise ValueError(f"unsupported extension {ext!r}; expected one of {', '.join(ALL_EXTENSIONS)}")
    except DataError:
        raise
    except Exception as err:  # any reader failure, reported with the file's name
        raise DataError(f"cannot read point cloud {path}: {type(err).__name__}: {err}") from err
    pts = np.asarray(pts)
    if pts.ndim != 2 or (pts.size and pts.shape[1] < 3):
        raise DataError(f"cannot read point cloud {path}: expected N×3 (or more columns), got shape {pts.shape}")
    return np.ascontiguousarray(pts[:, :3], dtype=np.float32)


def check_cloud(points: np.ndarray, source: str, *, min_points: int = 1) -> np.ndarray:
    """Refuse empty clouds, NaN / Inf coordinates and clouds smaller than `min_points`.

    Raises:
        DataError: naming `source` (the file) and what is wrong.
    """
    if points.shape[0] == 0:
        raise DataError(f"point cloud {source} is empty (0 points)")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise DataError(f"point cloud {source} has {int(bad.sum())} point(s) with NaN or Inf coordinates "
                        f"(first at row {int(np.flatnonzero(bad)[0])})")
    if points.shape[0] < min_points:
        raise DataError(f"point cloud {source} has {points.shape[0]} points, fewer than the {min_points} "
                        "needed (one group)")
    return points


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Point-MAE's `pc_norm`: N×3 -> centred on the mean, largest norm 1 (a single point stays at 0)."""
    centred = points - points.mean(axis=0, keepdims=True)
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




class PointCloudDataset(Dataset):
    """Base of the point datasets: items `(num_points×3 float tensor, label)`, errors or counted skips.

    Subclasses implement `_load(j) -> (N×3 array, source name)` and fill `labels`, `names`.
    """

    labels: list[int]
    names: list[str]

    def __init__(self, pipeline: CloudPipeline, on_error: Literal["raise", "skip"], what: str) -> None:
        self.pipeline, self.on_error = pipeline, on_error
        self._skips = Skips(len(self.labels), "point cloud", what, on_error, problem="unusable")

    def _load(self, j: int) -> tuple[np.ndarray, str]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.labels)

    def _item(self, j: int) -> tuple[Tensor, int]:
        points, source = self._load(j)
        return self.pipeline(points, source), self.labels[j]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self._skips.get(index, self._item)

    def skipped(self) -> int:
        """Distinct unusable samples skipped so far, across workers."""
        return self._skips.count()

    def skip_report(self) -> str:
        return self._skips.report(lambda j: self.names[j])


def _find_files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and os.path.splitext(f)[1].lower() in extensions]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


class PointFiles(PointCloudDataset):
    """Point-cloud / mesh files in a folder: class sub-folders, or a flat unlabeled folder.

    Layouts as `ImageFiles` ("auto", "classes", "flat"); a single file is a flat set of one.
    ModelNet40's mesh layout `class/train/*.off`, `class/test/*.off` is recognized: when every
    file lies in a `train` or `test` folder, the split selects them (pretrain uses train).

    Args:
        root: folder or file.
        split: "pretrain", "train" or "test".
        pipeline: validation and transforms.
        layout: "auto", "classes" or "flat".
        on_error: "raise" or "skip" (counted).
        mesh_points: points sampled on each mesh surface before resampling.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        pipeline: CloudPipeline,
        *,
        layout: Literal["auto", "classes", "flat"] = "auto",
        on_error: Literal["raise", "skip"] = "raise",
        mesh_points: int = 8192,
    ) -> None:
        self.root = Path(root)
        self.mesh_points = mesh_points
        if not self.root.exists():
            raise ValueError(f"point-cloud root {self.root} does not exist")
        if self.root.is_file():
            files = [self.root]
        else:
            files = _find_files(self.root, ALL_EXTENSIONS)
        if not files:
            raise ValueError(f"no point-cloud files under {self.root} (searched recursively for "
                             f"{', '.join(ALL_EXTENSIONS)}; hidden files are ignored)")
        base = self.root if self.root.is_dir() else self.root.parent
        rel = [f.relative_to(base).parts for f in files]
        if self.root.is_dir() and all(len(p) >= 3 and p[-2] in ("train", "test") for p in rel):
            want = "test" if split == "test" else "train"
            keep = [i for i, p in enumerate(rel) if p[-2] == want]
            files, rel = [files[i] for i in keep], [rel[i] for i in keep]
            if not files:
                raise ValueError(f"no files in '{want}' folders under {self.root}")
        if layout == "auto":
            layout = "classes" if all(len(p) > 1 for p in rel) and len({p[0] for p in rel}) >= 2 else "flat"
        if layout == "classes":
            if any(len(p) == 1 for p in rel):
                raise ValueError(f"layout='classes' expects every file of {self.root} inside a class sub-folder")
            self.classes = sorted({p[0] for p in rel})
        else:
            self.classes = []
        index = {c: i for i, c in enumerate(self.classes)}
        self.files = files
        self.labels = [index[p[0]] if self.classes else -1 for p in rel]
        self.names = ["/".join(p) for p in rel]
        super().__init__(pipeline, on_error, f"PointFiles({self.root})")

    def _load(self, j: int) -> tuple[np.ndarray, str]:
        return read_points(self.files[j], mesh_points=self.mesh_points), str(self.files[j])


class ModelNetResampled(PointCloudDataset):
    """ModelNet40 `modelnet40_normal_resampled`: `<class>/<class>_0001.txt` rows x,y,z,nx,ny,nz.

    Lists `modelnet40_shape_names.txt` and `modelnet40_{train,test}.txt` (ModelNet10: the
    `modelnet10_*` files with `num_category=10`). As the reference: FPS to `num_points` (the
    reference caches this; here each worker keeps the resampled clouds in memory), then unit
    sphere normalization; training shuffles the point order.
    """

    def __init__(self, root: str | Path, split: str, pipeline: CloudPipeline, *, num_category: int = 40,
                 on_error: Literal["raise", "skip"] = "raise") -> None:
        self.root = Path(root)
        tag = f"modelnet{num_category}"
        names_file = self.root / f"{tag}_shape_names.txt"
        list_file = self.root / f"{tag}_{'test' if split == 'test' else 'train'}.txt"
        for f in (names_file, list_file):
            if not f.is_file():
                raise ValueError(f"ModelNet layout: missing {f} (expected {tag}_shape_names.txt and "
                                 f"{tag}_train.txt / {tag}_test.txt under {self.root})")
        self.classes = [ln.strip() for ln in names_file.read_text().splitlines() if ln.strip()]
        index = {c: i for i, c in enumerate(self.classes)}
        ids = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
        self.files, self.labels, self.names = [], [], []
        for shape_id in ids:
            cls = "_".join(shape_id.split("_")[:-1])
            if cls not in index:
                raise ValueError(f"{list_file}: shape {shape_id!r} has class {cls!r}, not in {names_file}")
            self.files.append(self.root / cls / f"{shape_id}.txt")
            self.labels.append(index[cls])
            self.names.append(shape_id)
        self._cache: dict[int, np.ndarray] = {}
        super().__init__(pipeline, on_error, f"ModelNetResampled({self.root}, {split})")

    def _load(self, j: int) -> tuple[np.ndarray, str]:
        if j not in self._cache:
            pts = check_cloud(read_points(self.files[j]), str(self.files[j]), min_points=self.pipeline.min_points)
            self._cache[j] = resample(pts, self.pipeline.num_points, "fps") if len(pts) > self.pipeline.num_points \
                else pts
        return self._cache[j], str(self.files[j])


class ShapeNet55(PointCloudDataset):
    """ShapeNet-55 numpy layout: `train.txt` / `test.txt` list `<taxonomy>-<model>.npy` files of `pc_dir`.

    Label = index of the taxonomy id among the sorted ids of both lists. As the reference: a
    random subset of `num_points` (of the 8192), then unit-sphere normalization.
    """

    def __init__(self, root: str | Path, split: str, pipeline: CloudPipeline, *, pc_dir: str | None = None,
                 on_error: Literal["raise", "skip"] = "raise") -> None:
        self.root = Path(root)
        lists = {s: self.root / f"{s}.txt" for s in ("train", "test")}
        if not lists["train"].is_file() and not lists["test"].is_file():
            raise ValueError(f"ShapeNet-55 layout: no train.txt / test.txt under {self.root}")
        candidates = [self.root / pc_dir] if pc_dir else [self.root / "shapenet_pc", self.root.parent / "shapenet_pc"]
        self.pc_dir = next((c for c in candidates if c.is_dir()), candidates[0])
        if not self.pc_dir.is_dir():
            raise ValueError(f"ShapeNet-55 layout: no point folder, tried {', '.join(map(str, candidates))}")
        entries = {s: [ln.strip() for ln in f.read_text().splitlines() if ln.strip()] if f.is_file() else []
                   for s, f in lists.items()}
        taxonomies = sorted({e.split("-")[0] for v in entries.values() for e in v})
        index = {t: i for i, t in enumerate(taxonomies)}
        self.names = entries["test" if split == "test" else "train"]
        self.labels = [index[e.split("-")[0]] for e in self.names]
        super().__init__(pipeline, on_error, f"ShapeNet55({self.root}, {split})")

    def _load(self, j: int) -> tuple[np.ndarray, str]:
        path = self.pc_dir / self.names[j]
        return read_points(path), str(path)


SCANOBJECTNN_FILES: dict[str, tuple[str, str]] = {
    "obj_bg": ("training_objectdataset.h5", "test_objectdataset.h5"),  # main_split/
    "obj_only": ("training_objectdataset.h5", "test_objectdataset.h5"),  # main_split_nobg/
    "hardest": ("training_objectdataset_augmentedrot_scale75.h5", "test_objectdataset_augmentedrot_scale75.h5"),
}


class ScanObjectNN(PointCloudDataset):
    """ScanObjectNN h5 files (`data` B×2048×3, `label`), as Point-MAE reads them.

    `root` is the folder of the variant's h5 files (main_split for obj_bg and hardest,
    main_split_nobg for obj_only). No normalization (the reference feeds the raw clouds);
    training shuffles the point order.
    """

    def __init__(self, root: str | Path, split: str, pipeline: CloudPipeline, *, variant: str = "obj_bg",
                 on_error: Literal["raise", "skip"] = "raise") -> None:
        from anymae.extras import require

        h5py = require("h5py", "points", purpose="reading ScanObjectNN")
        if variant not in SCANOBJECTNN_FILES:
            raise ValueError(f"ScanObjectNN variant={variant!r}: expected one of {sorted(SCANOBJECTNN_FILES)}")
        self.path = Path(root) / SCANOBJECTNN_FILES[variant][1 if split == "test" else 0]
        if not self.path.is_file():
            raise ValueError(f"ScanObjectNN: missing {self.path}")
        try:
            with h5py.File(self.path, "r") as h5:
                self.points = np.asarray(h5["data"], dtype=np.float32)
                self.labels = [int(v) for v in np.asarray(h5["label"]).reshape(-1)]
        except (OSError, KeyError) as err:
            raise DataError(f"cannot read ScanObjectNN file {self.path}: {type(err).__name__}: {err} "
                            "(expected datasets 'data' and 'label')") from err
        if self.points.ndim != 3 or self.points.shape[-1] < 3 or len(self.points) != len(self.labels):
            raise DataError(f"{self.path}: expected data B×N×3 and B labels, got {self.points.shape} and "
                            f"{len(self.labels)} labels")
        self.names = [f"{self.path.name}[{i}]" for i in range(len(self.labels))]
        super().__init__(pipeline, on_error, f"ScanObjectNN({self.path})")

    def _load(self, j: int) -> tuple[np.ndarray, str]:
        return self.points[j, :, :3], self.names[j]


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


class SyntheticShapes(Dataset):
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

