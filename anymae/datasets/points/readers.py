"""Point-cloud files read as N×3 xyz arrays, checked before anything is allocated.

Point files .ply .pcd .xyz .pts, meshes .off .obj (area-weighted uniform sampling of the surface
with a fixed seed, so a mesh always gives the same points, like the references' precomputed
resampled sets), ModelNet's resampled text rows .txt (comma-separated x,y,z[,nx,ny,nz]) and numpy
.npy (N×3+). Only xyz is kept.

Untrusted input: PLY, PCD and OFF headers are checked against the file size first
(`points.headers`), .npy headers too (`multichannel.io.load_npy`); binary PLY / PCD rows and .npy
arrays are memory-mapped, so a cloud larger than `max_points` is subsampled (a fixed random subset,
seed 0) with memory bounded by the subset, not the file; text formats are parsed whole, then
subsampled. ASCII PLY / PCD, compressed PCD and .obj are read by open3d. Every failure raises
`DataError` naming the file: "cannot parse" with the reason for a file that is not what its
extension says, "is a dangling symbolic link" and the like for paths that are no file.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from anymae.datasets.multichannel.io import load_npy
from anymae.datasets.points.headers import check_off, check_pcd, check_ply, read_pcd_header, read_ply_header
from anymae.datasets.scan import display_name
from anymae.datasets.skips import DataError, check_file, reason

log = logging.getLogger(__name__)

POINT_EXTENSIONS: tuple[str, ...] = (".ply", ".pcd", ".xyz", ".pts")
MESH_EXTENSIONS: tuple[str, ...] = (".off", ".obj")
ARRAY_EXTENSIONS: tuple[str, ...] = (".txt", ".npy")
ALL_EXTENSIONS: tuple[str, ...] = POINT_EXTENSIONS + MESH_EXTENSIONS + ARRAY_EXTENSIONS
_MESH_SEED = 0
_SUBSAMPLE_SEED = 0


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


def _open3d(purpose: str):
    from anymae.extras import require

    return require("open3d", "points", purpose=purpose)


def _read_mesh(path: Path, mesh_points: int) -> np.ndarray:
    is_off = path.suffix.lower() == ".off"
    if is_off:
        check_off(path)
    with open(path, "rb") as f:
        glued = is_off and f.readline().strip().upper() not in (b"OFF", b"")  # ModelNet's `OFF490 518 0`
    if glued:
        verts, faces = _read_off(path)
    else:
        mesh = _open3d("reading meshes").io.read_triangle_mesh(str(path))
        verts, faces = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
        if (len(verts) == 0 or len(faces) == 0) and is_off:
            verts, faces = _read_off(path)
    if len(verts) == 0:
        if not is_off:  # an OFF file declared 0 vertices (an empty cloud, refused later); an OBJ holds none
            raise ValueError("no vertices found (expected 'v x y z' lines)")
        return np.zeros((0, 3), dtype=np.float32)
    if len(faces) == 0:
        return verts.astype(np.float32)  # a mesh without faces: its vertices are the points
    outside = faces[(faces < 0) | (faces >= len(verts))]
    if outside.size:
        raise ValueError(f"a face refers to vertex {int(outside[0])}, but the mesh has {len(verts)} vertices")
    return sample_mesh(verts, faces, mesh_points)


def _fields(rows: np.ndarray, names: list[str], path: Path) -> np.ndarray:
    """x, y, z of structured rows (N) -> N×3 (only the rows given are read from a memory map)."""
    missing = [k for k in names if k not in (rows.dtype.names or ())]
    if missing:
        raise DataError(f"cannot parse point cloud {display_name(path)}: no {', '.join(missing)} field(s); it has "
                        f"{', '.join(rows.dtype.names or ())}")
    return np.stack([rows[k].reshape(len(rows), -1)[:, 0] for k in names], axis=1)  # N×3


def _read_ply(path: Path) -> np.ndarray:
    """Rows of a PLY file: structured (memory-mapped) when binary with the vertex element first
    and no list property in it, else N×3 from open3d."""
    header = read_ply_header(path)
    check_ply(path, header)
    vertex = next((e for e in header.elements if e.name == "vertex"), None)
    if vertex is None:
        raise DataError(f"cannot parse PLY file {display_name(path)}: no 'vertex' element")
    dtype = vertex.row_dtype(header.endian)
    if header.format != "ascii" and header.elements[0] is vertex and dtype is not None:
        if vertex.count == 0:
            return np.zeros((0, 3), dtype=np.float32)
        return np.memmap(path, dtype=dtype, mode="r", offset=header.size, shape=(vertex.count,))
    pts = np.asarray(_open3d("reading PLY files").io.read_point_cloud(str(path)).points)
    if len(pts) != vertex.count:
        raise DataError(f"cannot parse PLY file {display_name(path)}: the header declares {vertex.count:,} vertices, "
                        f"open3d read {len(pts):,}")
    return pts


def _read_pcd(path: Path) -> np.ndarray:
    """Rows of a PCD file: structured (memory-mapped) when DATA binary, else N×3 from open3d."""
    header = read_pcd_header(path)
    check_pcd(path, header)
    if header.data == "binary":
        if header.points == 0:
            return np.zeros((0, 3), dtype=np.float32)
        return np.memmap(path, dtype=header.dtype, mode="r", offset=header.size, shape=(header.points,))
    pts = np.asarray(_open3d("reading PCD files").io.read_point_cloud(str(path)).points)
    if len(pts) != header.points:
        raise DataError(f"cannot parse PCD file {display_name(path)}: the header declares {header.points:,} points, "
                        f"open3d read {len(pts):,}")
    return pts


def _read_text(path: Path, delimiter: str | None) -> np.ndarray:
    """Rows of numbers (.xyz / .pts space-separated; .txt comma-separated). A .pts file may start
    with a line holding the point count, which must match the rows."""
    count = None
    if path.suffix.lower() == ".pts":
        with open(path, "rb") as f:
            first = f.readline().split()
        count = int(first[0]) if len(first) == 1 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data": an empty cloud, refused later
        rows = np.loadtxt(path, delimiter=delimiter, dtype=np.float64, ndmin=2, skiprows=int(count is not None),
                          encoding="utf-8")
    if rows.size == 0:
        rows = np.zeros((0, 3))
    if count is not None and count != len(rows):
        raise DataError(f"cannot parse point cloud {display_name(path)}: the first line declares {count:,} points, "
                        f"the file holds {len(rows):,} rows")
    return rows


def subsample_indices(n: int, k: int, *, seed: int = _SUBSAMPLE_SEED) -> np.ndarray:
    """k of n row indices, a fixed random subset in increasing order (the same for the same n, k)."""
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def read_cloud(path: str | Path, *, mesh_points: int = 8192, max_points: int | None = None) -> tuple[np.ndarray, int]:
    """Read one point-cloud or mesh file -> (N'×3 float32 xyz, N points in the file).

    N' = min(N, max_points): larger clouds are subsampled (`subsample_indices`) and one line is
    logged. The points are not validated (see `transforms.check_cloud`); values beyond float32's
    range become Inf.

    Raises:
        DataError: naming the file: no such file, a link or folder, an unsupported extension, a
            header the file cannot hold, or content that cannot be parsed (with the reason).
    """
    path = Path(path)
    ext = path.suffix.lower()
    check_file(path, "point cloud")
    if ext not in ALL_EXTENSIONS:
        raise DataError(f"cannot read point cloud {display_name(path)}: unsupported extension {ext!r}; expected one "
                        f"of {', '.join(ALL_EXTENSIONS)}")
    try:
        if ext == ".ply":
            rows = _read_ply(path)
        elif ext == ".pcd":
            rows = _read_pcd(path)
        elif ext in MESH_EXTENSIONS:
            rows = _read_mesh(path, mesh_points)
        elif ext == ".npy":
            rows = load_npy(path, mmap=True)
        else:
            rows = _read_text(path, "," if ext == ".txt" else None)
    except DataError:
        raise
    except Exception as err:  # any parser failure, reported with the file's name and the reason
        raise DataError(f"cannot parse point cloud {display_name(path)}: {reason(err)}") from err
    if not (rows.ndim == 1 and rows.dtype.names) and (rows.ndim != 2 or rows.shape[1] < 3):
        raise DataError(f"cannot parse point cloud {display_name(path)}: expected N×3 (or more columns), got shape "
                        f"{rows.shape}")
    n = len(rows)
    if max_points is not None and n > max_points:
        rows = rows[subsample_indices(n, max_points)]
        log.info("point cloud %s: %d points, subsampled once to %d (a fixed random subset)", display_name(path), n,
                 max_points)
    xyz = _fields(rows, ["x", "y", "z"], path) if rows.dtype.names else rows[:, :3]
    with np.errstate(over="ignore"):
        return np.array(xyz, dtype=np.float32, order="C"), n  # a copy: nothing stays mapped


def read_points(path: str | Path, *, mesh_points: int = 8192, max_points: int | None = None) -> np.ndarray:
    """`read_cloud`'s points only: N'×3 float32 xyz."""
    return read_cloud(path, mesh_points=mesh_points, max_points=max_points)[0]
