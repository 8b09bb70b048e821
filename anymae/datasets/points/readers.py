"""Point-cloud files read as N×3 xyz arrays.

Point files .ply .pcd .xyz .pts (open3d), meshes .off .obj (open3d, then area-weighted uniform
sampling of the surface with a fixed seed, so a mesh always gives the same points, like the
references' precomputed resampled sets), ModelNet's resampled text rows .txt (comma-separated
x,y,z[,nx,ny,nz]) and numpy .npy (N×3+). Only xyz is kept. A missing, unreadable or unsupported
file raises `DataError` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymae.datasets.skips import DataError

POINT_EXTENSIONS: tuple[str, ...] = (".ply", ".pcd", ".xyz", ".pts")
MESH_EXTENSIONS: tuple[str, ...] = (".off", ".obj")
ARRAY_EXTENSIONS: tuple[str, ...] = (".txt", ".npy")
ALL_EXTENSIONS: tuple[str, ...] = POINT_EXTENSIONS + MESH_EXTENSIONS + ARRAY_EXTENSIONS
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

