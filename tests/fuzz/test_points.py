"""Fuzz: every kind of bad input (`bad_inputs.KINDS`) fed to the point-cloud readers and datasets.

Each bad file, read and validated as a dataset does (`read_points` + `CloudPipeline`), gives a
one-line `DataError` naming it; in `point_files` with on_error="skip" it is one counted skip
blamed on it while every good cloud still loads. Declared-size bombs are refused before anything
is allocated (`bounded_memory`); garbage is "cannot parse" with the reason, never "empty".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from anymae.datasets.points.readers import read_points
from anymae.datasets.points.synthetic import synthetic_shape, write_cloud
from anymae.datasets.points.transforms import CloudPipeline
from anymae.datasets.scan import display_name
from anymae.datasets.sources import build_dataset
from tests.fuzz.bad_inputs import (
    assert_named_error,
    bounded_memory,
    make_dangling_link,
    make_dir_named_like_file,
    make_dir_self_links,
    make_escape_link,
    make_link_loop,
    non_utf8_path,
    write_empty,
    write_random,
    write_truncated,
)

pytestmark = pytest.mark.timeout(60)
MODEL = {"num_points": 64, "group_size": 8}
BOX_V = np.array([[x, y, z] for x in (0, 2) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
BOX_F = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


def _cloud(seed: int = 0, n: int = 200) -> np.ndarray:
    return synthetic_shape("sphere", n, np.random.default_rng(seed)).astype(np.float32)


def _good(path: Path, seed: int = 0) -> Path:
    mesh = path.suffix in (".off", ".obj")
    return write_cloud(path, BOX_V if mesh else _cloud(seed), faces=BOX_F if mesh else None)


def _ply(path: Path, n: int, data: bytes = b"") -> Path:
    head = f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\nproperty float x\nproperty float y\n" \
           "property float z\nend_header\n"
    path.write_bytes(head.encode() + data)
    return path


def _pcd(path: Path, n: int, data: bytes = b"") -> Path:
    head = f"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {n}\nHEIGHT 1\nPOINTS {n}\n" \
           "DATA binary\n"
    path.write_bytes(head.encode() + data)
    return path


def _npy_header(path: Path, shape: tuple[int, ...], data: bytes = b"") -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(data)
    return path


def _with(value: float) -> np.ndarray:
    pts = _cloud()
    pts[17, 1] = value
    return pts


def _bytes_of(good_ext: str) -> Callable[[Path, str], Path]:
    """A good file of another format under this name (wrong extension)."""
    def make(d: Path, n: str) -> Path:
        (d / n).write_bytes(_good(d / f"other{good_ext}").read_bytes())
        return d / n
    return make


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


Maker = Callable[[Path, str], Path]
# case -> (file name, maker(folder, name) -> path, words the error must hold)
BROKEN: dict[str, tuple[str, Maker, str]] = {
    **{f"empty{ext}": (f"e{ext}", lambda d, n: write_empty(d / n), "is empty (0 bytes)")
       for ext in (".ply", ".pcd", ".xyz", ".pts", ".off", ".obj", ".txt", ".npy")},
    **{f"truncated{ext}": (f"t{ext}", lambda d, n: write_truncated(_good(d / f"whole{Path(n).suffix}"), d / n), words)
       for ext, words in ((".ply", "truncated"), (".pcd", "truncated"), (".npy", "truncated"), (".off", "truncated"),
                          (".xyz", "cannot parse"), (".txt", "cannot parse"))},
    **{f"random_bytes{ext}": (f"r{ext}", lambda d, n: write_random(d / n), "cannot parse")
       for ext in (".ply", ".pcd", ".xyz", ".pts", ".off", ".obj", ".txt", ".npy")},
    "wrong_extension.pcd": ("ply.pcd", _bytes_of(".ply"), "cannot parse PCD file"),
    "wrong_extension.ply": ("npy.ply", _bytes_of(".npy"), "cannot parse PLY file"),
    "wrong_extension.npy": ("ply.npy", _bytes_of(".ply"), "cannot parse .npy file"),
    "wrong_extension.xyz": ("ply.xyz", _bytes_of(".ply"), "cannot parse point cloud"),
    "wrong_extension.off": ("obj.off", _bytes_of(".obj"), "cannot parse OFF file"),
    "nan_inf.npy": ("nan.npy", lambda d, n: write_cloud(d / n, _with(np.nan)), "1 point(s) with NaN or Inf"),
    "nan_inf.txt": ("inf.txt", lambda d, n: write_cloud(d / n, _with(np.inf)), "1 point(s) with NaN or Inf"),
    "nan_inf.ply": ("nan.ply", lambda d, n: _ply(d / n, 200, _with(np.nan).tobytes()), "1 point(s) with NaN or Inf"),
    "nan_inf.pcd": ("inf.pcd", lambda d, n: _pcd(d / n, 200, _with(-np.inf).tobytes()), "1 point(s) with NaN or Inf"),
    "nan_inf.off": ("nan.off", lambda d, n: _text(d / n, "OFF\n3 1 0\n0 0 0\n1 nan 0\n0 1 0\n3 0 1 2\n"),
                    "no surface area"),
    "bad_face.off": ("face.off", lambda d, n: _text(d / n, "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n"),
                     "a face refers to vertex 7, but the mesh has 3 vertices"),
    "overflow.npy": ("huge.npy", lambda d, n: write_cloud(d / n, _cloud() * np.float32(1e30)), "coordinates up to"),
    "degenerate.npy": ("same.npy", lambda d, n: write_cloud(d / n, np.ones((200, 3), np.float32)), "zero extent"),
    "zero_size.ply": ("z.ply", lambda d, n: _ply(d / n, 0), "is empty (0 points)"),
    "zero_size.pcd": ("z.pcd", lambda d, n: _pcd(d / n, 0), "is empty (0 points)"),
    "zero_size.npy": ("z.npy", lambda d, n: _npy_header(d / n, (0, 3)), "is empty (0 points)"),
    "zero_size.off": ("z.off", lambda d, n: _text(d / n, "OFF\n0 0 0\n"), "is empty (0 points)"),
    "zero_size.pts": ("z.pts", lambda d, n: _text(d / n, "0\n"), "is empty (0 points)"),
    "size_bomb.ply": ("b.ply", lambda d, n: _ply(d / n, 999_999_999, bytes(24)), "declares 999,999,999 vertex(s)"),
    "size_bomb.pcd": ("b.pcd", lambda d, n: _pcd(d / n, 999_999_999, bytes(24)), "declares 999,999,999 points"),
    "size_bomb.off": ("b.off", lambda d, n: _text(d / n, "OFF\n999999999 1 0\n0 0 0\n"), "declares 999,999,999 vert"),
    "size_bomb.npy": ("b.npy", lambda d, n: _npy_header(d / n, (999_999_999, 3), bytes(24)), "shape (999999999, 3)"),
    "size_bomb.pts": ("b.pts", lambda d, n: _text(d / n, "999999999\n0 0 0\n"), "declares 999,999,999 points"),
    "symlink_loop": ("loop.ply", make_link_loop, "is a looping symbolic link"),
    "dangling_link": ("gone.npy", make_dangling_link, "is a dangling symbolic link"),
    "directory": ("dir.off", make_dir_named_like_file, "is a directory"),
    "non_utf8_name": ("", lambda d, n: write_random(non_utf8_path(d, ".ply")), "cannot parse PLY file"),
}
LINKS = ("symlink_loop", "dangling_link")


def _use(path: Path) -> torch.Tensor:
    """What a dataset does with one file: read, validate, resample."""
    return CloudPipeline(64, min_points=8)(read_points(path, mesh_points=256), display_name(path))


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_bad_file_is_a_named_one_line_error(tmp_path: Path, case: str) -> None:
    name, make, words = BROKEN[case]
    bad = make(tmp_path, name)
    with bounded_memory(30):
        message = assert_named_error(lambda: _use(bad), bad)
    assert words in message


@pytest.mark.parametrize("case", sorted(set(BROKEN) - {"directory"}))  # a folder named x.off is scanned into
def test_a_bad_file_in_a_folder_is_one_counted_skip_blamed_on_it(tmp_path: Path, case: str) -> None:
    name, make, _ = BROKEN[case]
    root, scratch = tmp_path / "data", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    good = [_good(root / f"good_{i}.npy", seed=i) for i in range(3)]
    if case in LINKS:  # made in place: a moved link loop would point at the old place
        bad = make(root, name)
    else:  # made aside (a truncated file's whole original stays out of the data)
        bad = make(scratch, name)
        os.rename(os.fsencode(bad), os.fsencode(root / bad.name))
        bad = root / bad.name
    data = build_dataset({"source": "point_files", "root": str(root), "on_error": "skip"}, split="test",
                         augment=False, model_config=MODEL)
    assert sorted(data.files) == sorted([*good, bad])
    items = [data[i][0] for i in range(len(data))]
    assert all(x.shape == (64, 3) and torch.isfinite(x).all() for x in items)
    assert data.skipped() == 1
    assert f"skipped 1 unusable point cloud(s) of 4: {display_name(bad.name)}" in data.skip_report()


def test_good_files_of_every_format_and_a_non_utf8_name_read(tmp_path: Path) -> None:
    for ext in (".ply", ".pcd", ".xyz", ".pts", ".off", ".obj", ".txt", ".npy"):
        assert _use(_good(tmp_path / f"good{ext}")).shape == (64, 3)
    odd = _good(tmp_path / "plain.ply")
    os.rename(odd, non_utf8_path(tmp_path, ".ply"))
    np.testing.assert_allclose(read_points(non_utf8_path(tmp_path, ".ply")), _cloud(), atol=1e-6)


def test_links_out_of_the_root_and_looping_folders_add_no_clouds(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    _good(root / "a" / "mine.npy")
    _good(outside / "stranger.npy")
    make_escape_link(root, outside)
    make_dir_self_links(root)
    data = build_dataset({"source": "point_files", "root": str(root)}, split="test", model_config=MODEL)
    assert data.names == ["a/mine.npy"]
