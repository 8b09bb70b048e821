"""Fuzz: every kind of bad input (`bad_inputs.KINDS`) fed to the volume reader and the `volume_files` source.

Each bad `.npy` / `.nii` / `.nii.gz` file gives a one-line `DataError` naming it (`read_volume`, as
`VolumeFiles` reads a sample); in `volume_files` with on_error="skip" it is one counted skip blamed
on it while every good volume still loads. Declared-size bombs (a .npy header or a NIfTI header
declaring ~1e14 voxels) are refused before anything is allocated (`bounded_memory`); arrays of the
wrong ndim or channel count, and NaN / Inf voxels, are data errors.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from anymae.datasets.scan import display_name
from anymae.datasets.sources import build_dataset
from anymae.datasets.volume.io import read_volume, write_nifti
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
MODEL = {"img_size": 4, "in_chans": 1}


def _vol(seed: int = 0, shape: tuple[int, ...] = (6, 6, 6)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-500, 500, shape).astype(np.float32)


def _npy(path: Path, array: np.ndarray) -> Path:
    with open(path, "wb") as f:  # any name, any dtype
        np.save(f, array, allow_pickle=array.dtype.hasobject)
    return path


def _nii(path: Path, array: np.ndarray) -> Path:
    """A NIfTI file under any name (.nii bytes, gzipped when the name ends in .gz)."""
    data = nib.Nifti1Image(array, np.eye(4)).to_bytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _good(d: Path, n: str) -> Path:
    """A good volume of the kind `n` names, written aside (for truncation)."""
    suffix = ".nii.gz" if n.endswith(".nii.gz") else Path(n).suffix
    whole = d / f"whole{suffix}"
    return _npy(whole, _vol()) if suffix == ".npy" else write_nifti(whole, _vol())


def _nifti_bomb(path: Path) -> Path:
    header = nib.Nifti1Header()
    header.set_data_shape((30_000, 30_000, 30_000))  # NIfTI-1 dims are int16
    header.set_data_dtype(np.float32)
    buffer = io.BytesIO()
    header.write_to(buffer)
    data = buffer.getvalue() + bytes(4 + 64)  # extension flag + a little data
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _npy_bomb(path: Path) -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (50_000,) * 3})
        f.write(bytes(16))
    return path


def _with(value: float) -> np.ndarray:
    v = _vol().astype(np.float64)  # float64: 1e300 is finite here, Inf once read as float32
    v[1, 2, 3] = value
    return v


Maker = Callable[[Path, str], Path]
NAMES = ("v.npy", "v.nii", "v.nii.gz")
# case -> (file name, maker(folder, name) -> path, words the error must hold)
BROKEN: dict[str, tuple[str, Maker, str]] = {
    **{f"empty:{n}": (n, lambda d, n: write_empty(d / n), "is empty (0 bytes)") for n in NAMES},
    "truncated:v.npy": ("v.npy", lambda d, n: write_truncated(_good(d, n), d / n), "truncated"),
    "truncated:v.nii": ("v.nii", lambda d, n: write_truncated(_good(d, n), d / n), "truncated"),
    "truncated:v.nii.gz": ("v.nii.gz", lambda d, n: write_truncated(_good(d, n), d / n), "cannot read NIfTI file"),
    "random_bytes:v.npy": ("v.npy", lambda d, n: write_random(d / n), "cannot parse .npy file"),
    "random_bytes:v.nii": ("v.nii", lambda d, n: write_random(d / n), "cannot read NIfTI file"),
    "random_bytes:v.nii.gz": ("v.nii.gz", lambda d, n: write_random(d / n), "cannot read NIfTI file"),
    "wrong_extension:npy.nii.gz": ("npy.nii.gz", lambda d, n: _npy(d / n, _vol()), "cannot read NIfTI file"),
    "wrong_extension:nii.npy": ("nii.npy", lambda d, n: _nii(d / n, _vol()), "cannot parse .npy file"),
    "nan_inf:v.npy": ("v.npy", lambda d, n: _npy(d / n, _with(np.nan)), "1 NaN or Inf voxel(s) (first at C,H,W,D = "
                                                                          "(0, 1, 2, 3)"),
    "nan_inf:v.nii.gz": ("v.nii.gz", lambda d, n: _nii(d / n, _with(1e300)), "1 NaN or Inf voxel(s)"),
    "zero_size:v.npy": ("v.npy", lambda d, n: _npy(d / n, np.zeros((0, 4, 4), np.float32)), "an empty axis"),
    "zero_size:v.nii": ("v.nii", lambda d, n: _nii(d / n, np.zeros((4, 0, 4), np.float32)), "an empty axis"),
    "size_bomb:v.npy": ("v.npy", lambda d, n: _npy_bomb(d / n), "but the file holds only 144 bytes"),
    "size_bomb:v.nii": ("v.nii", lambda d, n: _nifti_bomb(d / n), "but the file holds only"),
    "size_bomb:v.nii.gz": ("v.nii.gz", lambda d, n: _nifti_bomb(d / n), "compressed at most"),
    "wrong_ndim:flat.npy": ("flat.npy", lambda d, n: _npy(d / n, _vol(0, (6, 6))), "expected a 3-D volume"),
    "wrong_ndim:5d.nii.gz": ("5d.nii.gz", lambda d, n: _nii(d / n, _vol(0, (4, 4, 4, 1, 2))), "got an array of shape"),
    "wrong_channels:two.npy": ("two.npy", lambda d, n: _npy(d / n, _vol(0, (2, 6, 6, 6))), "the model takes 1"),
    "strings:v.npy": ("v.npy", lambda d, n: _npy(d / n, np.array(["a", "b"])), "found dtype <U1"),
    "objects:v.npy": ("v.npy", lambda d, n: _npy(d / n, np.array([None, {}], dtype=object)), "never unpickled"),
    "symlink_loop": ("loop.nii.gz", make_link_loop, "is a looping symbolic link"),
    "dangling_link": ("gone.npy", make_dangling_link, "is a dangling symbolic link"),
    "directory": ("dir.nii", make_dir_named_like_file, "is a directory"),
    "non_utf8_name": ("", lambda d, n: write_random(non_utf8_path(d, ".nii.gz")), "cannot read NIfTI file"),
}
LINKS = ("symlink_loop", "dangling_link")


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_bad_volume_is_a_named_one_line_error(tmp_path: Path, case: str) -> None:
    name, make, words = BROKEN[case]
    bad = make(tmp_path, name)
    with bounded_memory(30):
        message = assert_named_error(lambda: read_volume(bad, channels=1), bad)
    assert words in message, message


@pytest.mark.parametrize("case", sorted(set(BROKEN) - {"directory"}))  # a folder named x.nii is scanned into
def test_a_bad_volume_in_a_folder_is_one_counted_skip_blamed_on_it(tmp_path: Path, case: str) -> None:
    name, make, _ = BROKEN[case]
    root, scratch = tmp_path / "data", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    good = [_npy(root / f"good_{i}.npy", _vol(i)) for i in range(3)]
    if case in LINKS:  # made in place: a moved link loop would point at the old place
        bad = make(root, name)
    else:  # made aside (a truncated file's whole original stays out of the data)
        bad = make(scratch, name)
        os.rename(os.fsencode(bad), os.fsencode(root / bad.name))
        bad = root / bad.name
    data = build_dataset({"source": "volume_files", "root": str(root), "on_error": "skip"}, split="test",
                         model_config=MODEL)
    assert sorted(p for p, _ in data.samples) == sorted([*good, bad])
    items = [data[i][0] for i in range(len(data))]
    assert all(x.shape == (1, 4, 4, 4) and torch.isfinite(x).all() for x in items)
    assert data.skipped() == 1
    assert f"skipped 1 unreadable volume(s) of 4: {display_name(bad)}" in data.skip_report()


def test_links_out_of_the_root_and_looping_folders_add_no_volumes(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    _npy(root / "mine.npy", _vol())
    _npy(outside / "stranger.npy", _vol())
    make_escape_link(root, outside)
    make_dir_self_links(root)
    data = build_dataset({"source": "volume_files", "root": str(root)}, split="test", model_config=MODEL)
    assert [p.name for p, _ in data.samples] == ["mine.npy"]
