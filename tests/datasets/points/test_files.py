"""Point-cloud files: every format written for real, layouts, validation errors, counted skips, transforms."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from anymae.datasets.image.files import DataError
from anymae.datasets.points.readers import read_points, sample_mesh
from anymae.datasets.points.synthetic import synthetic_shape, write_cloud
from anymae.datasets.points.transforms import CloudPipeline, normalize_unit_sphere, resample, scale_translate
from anymae.datasets.seeding import SeededSamples
from anymae.datasets.sources import build_dataset, files_section

pytestmark = pytest.mark.usefixtures("one_thread")
MODEL = {"num_points": 64, "group_size": 8}


def _box() -> tuple[np.ndarray, np.ndarray]:
    """A 2×1×1 box mesh: 8 vertices, 12 triangles."""
    v = np.array([[x, y, z] for x in (0, 2) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return v, f


@pytest.mark.parametrize("ext", [".ply", ".pcd", ".xyz", ".pts", ".txt", ".npy"])
def test_point_formats_round_trip(tmp_path: Path, ext: str) -> None:
    pts = synthetic_shape("torus", 100, np.random.default_rng(0))
    got = read_points(write_cloud(tmp_path / f"c{ext}", pts))
    assert got.shape == (100, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, pts, atol=1e-5)


@pytest.mark.parametrize("ext", [".off", ".obj"])
def test_meshes_are_sampled_on_their_surface(tmp_path: Path, ext: str) -> None:
    v, f = _box()
    pts = read_points(write_cloud(tmp_path / f"box{ext}", v, faces=f), mesh_points=500)
    assert pts.shape == (500, 3)
    on_face = np.isclose(pts, 0, atol=1e-5) | np.isclose(pts, [2, 1, 1], atol=1e-5)
    assert on_face.any(axis=1).all() and (pts >= -1e-6).all() and (pts <= [2 + 1e-6, 1 + 1e-6, 1 + 1e-6]).all()
    np.testing.assert_array_equal(pts, read_points(tmp_path / f"box{ext}", mesh_points=500))  # fixed seed
    area_x = (np.isclose(pts[:, 0], 0, atol=1e-6) | np.isclose(pts[:, 0], 2, atol=1e-6)).mean()
    assert 0.1 < area_x < 0.3  # x-faces hold 2 of the box's 10 area units


def test_modelnet_glued_off_header(tmp_path: Path) -> None:
    v, f = _box()
    text = "OFF8 12 0\n" + "\n".join(" ".join(map(str, r)) for r in v) + "\n" + "\n".join(f"3 {a} {b} {c}" for a, b, c in f)
    (tmp_path / "glued.off").write_text(text)
    pts = read_points(tmp_path / "glued.off", mesh_points=64)
    np.testing.assert_array_equal(pts, sample_mesh(v, f, 64))


def test_bad_clouds_raise_naming_the_file(tmp_path: Path) -> None:
    write_cloud(tmp_path / "nan.npy", np.array([[0, 0, 0], [np.nan, 1, 1]] * 10, dtype=np.float32))
    write_cloud(tmp_path / "few.npy", np.zeros((5, 3), dtype=np.float32))
    (tmp_path / "empty.xyz").write_text("")
    (tmp_path / "bad.ply").write_text("not a ply")
    pipe = CloudPipeline(64, min_points=8)
    with pytest.raises(DataError, match=r"nan\.npy.*NaN or Inf"):
        pipe(read_points(tmp_path / "nan.npy"), str(tmp_path / "nan.npy"))
    with pytest.raises(DataError, match=r"few\.npy has 5 points, fewer than the 8"):
        pipe(read_points(tmp_path / "few.npy"), str(tmp_path / "few.npy"))
    with pytest.raises(DataError, match=r"empty\.xyz is empty"):
        pipe(read_points(tmp_path / "empty.xyz"), str(tmp_path / "empty.xyz"))
    with pytest.raises(DataError, match=r"bad\.ply"):
        read_points(tmp_path / "bad.ply")
    with pytest.raises(DataError, match="missing.pcd"):
        read_points(tmp_path / "missing.pcd")


def test_point_files_skip_counts_bad_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(4):
        write_cloud(tmp_path / f"ok{i}.ply", synthetic_shape("sphere", 100, rng))
    write_cloud(tmp_path / "nan.npy", np.full((100, 3), np.inf, dtype=np.float32))
    section = {"source": "point_files", "root": str(tmp_path)}
    strict = build_dataset(section, split="pretrain", model_config=MODEL)
    with pytest.raises(DataError, match="nan.npy"):
        [strict[i] for i in range(len(strict))]
    ds = build_dataset({**section, "on_error": "skip"}, split="pretrain", model_config=MODEL)
    items = [ds[i] for i in range(len(ds))]
    assert len(items) == 5 and ds.skipped() == 1 and "nan.npy" in ds.skip_report()


def test_modelnet_mesh_layout_selects_the_split(tmp_path: Path) -> None:
    v, f = _box()
    for cls in ("chair", "table"):
        for split, n in (("train", 3), ("test", 2)):
            for i in range(n):
                write_cloud(tmp_path / cls / split / f"{cls}_{i}.off", v * (1 + i), faces=f)
    train = build_dataset({"source": "point_files", "root": str(tmp_path)}, split="train", model_config=MODEL)
    test = build_dataset({"source": "point_files", "root": str(tmp_path)}, split="test", model_config=MODEL)
    assert (len(train), len(test)) == (6, 4) and train.classes == ["chair", "table"]
    assert train.labels == [0, 0, 0, 1, 1, 1]
    x, label = test[3]
    assert x.shape == (64, 3) and label == 1
    assert float(x.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-5)  # unit sphere
    assert float(x.mean(0).abs().max()) < 1e-5


def test_modelnet_resampled_text_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (tmp_path / "modelnet40_shape_names.txt").write_text("airplane\nnight_stand\n")
    (tmp_path / "modelnet40_train.txt").write_text("airplane_0001\nnight_stand_0001\n")
    (tmp_path / "modelnet40_test.txt").write_text("night_stand_0002\n")
    for cls, i in (("airplane", 1), ("night_stand", 1), ("night_stand", 2)):
        rows = np.concatenate([synthetic_shape("cube", 300, rng), rng.normal(size=(300, 3))], axis=1)  # xyz + normals
        write_cloud(tmp_path / cls / f"{cls}_{i:04d}.txt", rows)
    train = build_dataset({"source": "modelnet40_resampled", "root": str(tmp_path)}, split="train", model_config=MODEL)
    test = build_dataset({"source": "modelnet40_resampled", "root": str(tmp_path)}, split="test", model_config=MODEL)
    assert train.labels == [0, 1] and test.labels == [1]
    x, label = test[0]
    assert x.shape == (64, 3) and label == 1
    with pytest.raises(ValueError, match="modelnet10_shape_names"):
        build_dataset({"source": "modelnet40_resampled", "root": str(tmp_path), "num_category": 10}, split="train")


def test_shapenet55_numpy_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    (tmp_path / "ShapeNet-55").mkdir()
    (tmp_path / "ShapeNet-55" / "train.txt").write_text("02691156-a.npy\n03001627-b.npy\n")
    (tmp_path / "ShapeNet-55" / "test.txt").write_text("03001627-c.npy\n")
    for name in ("02691156-a", "03001627-b", "03001627-c"):
        write_cloud(tmp_path / "shapenet_pc" / f"{name}.npy", synthetic_shape("cone", 200, rng) * 3 + 5)
    section = {"source": "shapenet55", "root": str(tmp_path / "ShapeNet-55")}
    ds = build_dataset(section, split="pretrain", augment=False, model_config=MODEL)
    assert ds.labels == [0, 1]
    x, _ = ds[0]
    assert x.shape == (64, 3) and float(x.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-5)
    aug = SeededSamples(build_dataset(section, split="pretrain", augment="pretrain", model_config=MODEL), 0)
    assert torch.equal(aug[0][0], aug[0][0])  # the per-sample seed fixes subset and augmentation


def test_scanobjectnn_h5(tmp_path: Path) -> None:
    data = np.random.default_rng(3).normal(size=(5, 80, 3)).astype(np.float32)
    with h5py.File(tmp_path / "test_objectdataset.h5", "w") as h5:
        h5["data"], h5["label"] = data, np.array([0, 1, 2, 1, 0])
    ds = build_dataset({"source": "scanobjectnn", "root": str(tmp_path)}, split="test", model_config=MODEL)
    assert len(ds) == 5 and ds.labels == [0, 1, 2, 1, 0]
    x, label = ds[2]
    assert label == 2 and x.shape == (64, 3)
    # no normalization, FPS from index 0 of the stored order
    from anymae.modalities.points_grouping import fps_numpy

    np.testing.assert_allclose(x.numpy(), data[2][fps_numpy(data[2], 64)])
    with pytest.raises(ValueError, match="training_objectdataset.h5"):
        build_dataset({"source": "scanobjectnn", "root": str(tmp_path)}, split="train", model_config=MODEL)


def test_transforms() -> None:
    pts = np.random.default_rng(4).normal(size=(50, 3)).astype(np.float32) + 3
    n = normalize_unit_sphere(pts)
    assert np.abs(n.mean(0)).max() < 1e-5 and np.sqrt((n**2).sum(1)).max() == pytest.approx(1.0, abs=1e-6)
    assert resample(pts, 80, "random").shape == (80, 3)  # padded with repeats
    np.testing.assert_array_equal(resample(pts, 10, "first"), pts[:10])
    torch.manual_seed(0)
    x = torch.ones(10, 3)
    y = scale_translate(x)
    s = torch.empty(3)
    torch.manual_seed(0)
    s.uniform_(2 / 3, 3 / 2)
    t = torch.empty(3).uniform_(-0.2, 0.2)
    assert torch.allclose(y, x * s + t)
    assert (s >= 2 / 3).all() and (s <= 1.5).all() and (t.abs() <= 0.2).all()


def test_file_source_for_reconstruct_is_flat(tmp_path: Path) -> None:
    write_cloud(tmp_path / "one.pcd", synthetic_shape("sphere", 90, np.random.default_rng(5)))
    section = files_section("points", str(tmp_path / "one.pcd"))
    ds = build_dataset(section, split="test", model_config=MODEL)
    assert len(ds) == 1 and ds[0][1] == -1 and ds[0][0].shape == (64, 3)


# --- hostile input (issue 17): declared sizes, truncation, overflow, degenerate clouds, large clouds

_PLY_HEAD = ("ply\nformat binary_little_endian 1.0\nelement vertex {n}\nproperty float x\nproperty float y\n"
             "property float z\nend_header\n")


def test_declared_size_bombs_are_refused_before_allocating(tmp_path: Path) -> None:
    from tests.fuzz.bad_inputs import assert_named_error, bounded_memory

    bombs = {
        "bomb.off": b"OFF\n999999999 1 0\n0 0 0\n",  # the 40-byte header (took ~20 GB)
        "glued.off": b"OFF999999999 1 0\n0 0 0\n",
        "bomb.ply": _PLY_HEAD.format(n=999_999_999).encode() + bytes(24),
        "bomb.pcd": b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 999999999\nHEIGHT 1\n"
                    b"POINTS 999999999\nDATA binary\n" + bytes(24),
    }
    for name, data in bombs.items():
        (tmp_path / name).write_bytes(data)
        with bounded_memory(20):
            message = assert_named_error(lambda: read_points(tmp_path / name), tmp_path / name)
        assert "999,999,999" in message and f"only {len(data)} bytes" in message
    with open(tmp_path / "bomb.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (999_999_999, 3)})
        f.write(bytes(24))
    with bounded_memory(20):
        message = assert_named_error(lambda: read_points(tmp_path / "bomb.npy"), tmp_path / "bomb.npy")
    # a 128-byte header + 12 bytes per declared point; 128 + 24 bytes held
    assert "shape (999999999, 3) float32 (12,000,000,116 bytes), but the file holds only 152 bytes" in message


def test_truncated_binary_ply_is_an_error_not_uninitialized_points(tmp_path: Path) -> None:
    good = write_cloud(tmp_path / "good.ply", synthetic_shape("sphere", 100, np.random.default_rng(0)))
    data = good.read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[:-13])  # 100 vertices × 3 doubles declared, 13 bytes missing
    with pytest.raises(DataError, match=r"cut\.ply: the header declares 100 vertex\(s\) \(\d[\d,]* bytes\), "
                                        r"but the file holds only [\d,]+ bytes: truncated"):
        read_points(tmp_path / "cut.ply")
    np.testing.assert_allclose(read_points(good), np.frombuffer(data[-2400:], "<f8").reshape(100, 3), atol=1e-6)


def test_overflowing_and_degenerate_clouds_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_cloud(tmp_path / "huge.npy", (rng.normal(size=(64, 3)) * 1e30).astype(np.float32))
    write_cloud(tmp_path / "same.npy", np.tile(np.float32([[0.5, -2, 3]]), (64, 1)))
    write_cloud(tmp_path / "over.txt", np.full((64, 3), 1e39))  # beyond float32: Inf once read
    pipe = CloudPipeline(64, min_points=8)
    use = lambda name: pipe(read_points(tmp_path / name), name)
    with pytest.raises(DataError, match=r"huge\.npy has coordinates up to \d\.\d+e\+30; expected \|x\| <= 1e\+18"):
        use("huge.npy")
    with pytest.raises(DataError, match=r"same\.npy: all 64 points lie at one position \(zero extent\)"):
        use("same.npy")
    with pytest.raises(DataError, match=r"over\.txt has 64 point\(s\) with NaN or Inf.*beyond float32's range"):
        use("over.txt")
    big = (rng.normal(size=(64, 3)) * 1e15).astype(np.float32)  # large but finite: normalized exactly
    out = pipe(big, "big")
    assert torch.isfinite(out).all() and float(out.norm(dim=1).max()) == pytest.approx(1.0, abs=1e-5)


def test_garbage_files_cannot_be_parsed_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "junk.xyz").write_bytes(b"1 2 3\nhello world again\n")
    (tmp_path / "junk.pcd").write_bytes(b"\x00\x01 not a pcd header at all")
    (tmp_path / "junk.obj").write_bytes(b"# nothing but a comment\nfoo bar\n")
    (tmp_path / "empty.ply").write_bytes(b"")
    with pytest.raises(DataError, match=r"cannot parse point cloud .*junk\.xyz: ValueError: could not convert"):
        read_points(tmp_path / "junk.xyz")
    with pytest.raises(DataError, match=r"cannot parse PCD file .*junk\.pcd: no 'DATA' line"):
        read_points(tmp_path / "junk.pcd")
    with pytest.raises(DataError, match=r"cannot parse point cloud .*junk\.obj: ValueError: no vertices found"):
        read_points(tmp_path / "junk.obj")
    with pytest.raises(DataError, match=r"empty\.ply is empty \(0 bytes\)"):
        read_points(tmp_path / "empty.ply")


def test_large_clouds_are_subsampled_once_and_say_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from tests.fuzz.bad_inputs import bounded_memory

    rng = np.random.default_rng(0)
    n = 1_500_000  # 18 MB of float32 per file, more than the memory the reads may take
    write_cloud(tmp_path / "big.npy", rng.normal(size=(n, 3)).astype(np.float32))
    ply = tmp_path / "big.ply"
    ply.write_bytes(_PLY_HEAD.format(n=n).encode() + rng.normal(size=(n, 3)).astype("<f4").tobytes())
    write_cloud(tmp_path / "small.npy", rng.normal(size=(100, 3)).astype(np.float32))
    ds = build_dataset({"source": "point_files", "root": str(tmp_path)}, split="test", augment=False,
                       model_config=MODEL)
    assert ds.max_points == 16384  # max(8 × 64, 16384)
    with caplog.at_level(logging.INFO, logger="anymae.datasets.points.readers"):
        with bounded_memory(12):  # the subset (16384 × 3 floats, mapped rows), not the file
            first = [ds[i][0] for i in range(len(ds))]
        again = [ds[i][0] for i in range(len(ds))]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all(f"{n} points, subsampled once to 16384" in ln for ln in lines)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))  # the same fixed subset
    from anymae.datasets.points.readers import read_cloud, subsample_indices

    sub, total = read_cloud(tmp_path / "big.npy", max_points=16384)
    assert total == n and np.array_equal(sub, np.load(tmp_path / "big.npy")[subsample_indices(n, 16384)])
