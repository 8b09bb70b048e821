"""Fuzz: every kind of bad input (`bad_inputs.KINDS`) fed to the feature-file reader and dataset.

Each bad `.npy` / `.safetensors` file gives a one-line `DataError` naming it (`read_features`);
size bombs are refused before anything is allocated (`bounded_memory`); object arrays are never
unpickled; with on_error="skip" a bad file is one counted skip blamed on it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from anymae.datasets.features.files import FeatureFiles, read_features
from tests.fuzz.bad_inputs import (
    assert_named_error,
    bounded_memory,
    make_dangling_link,
    make_dir_named_like_file,
    make_link_loop,
    non_utf8_path,
    write_empty,
    write_random,
    write_truncated,
)

pytestmark = pytest.mark.timeout(60)
F = 8


def _npy(path: Path, array: np.ndarray) -> Path:
    with open(path, "wb") as f:  # any name, any dtype
        np.save(f, array, allow_pickle=array.dtype.hasobject)
    return path


def _st(path: Path, array: np.ndarray) -> Path:
    from safetensors.numpy import save

    path.write_bytes(save({"features": array}))
    return path


def _good(d: Path, ext: str) -> Path:
    rows = np.random.default_rng(0).standard_normal((20, F)).astype(np.float32)
    return (_npy if ext == ".npy" else _st)(d / f"good{ext}", rows)


def _npy_bomb(path: Path) -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (50_000_000, 1024)})
        f.write(bytes(16))
    return path


def _st_bomb(path: Path) -> Path:
    """A safetensors header that declares a 2e11-byte tensor in a file of a few hundred bytes."""
    entry = {"dtype": "F32", "shape": [50_000_000, 1024], "data_offsets": [0, 204_800_000_000]}
    header = json.dumps({"features": entry})
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + bytes(16))
    return path


def _st_header_bomb(path: Path) -> Path:
    """A safetensors file whose 8-byte header length claims 1 TB."""
    path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    return path


def _with(value: float) -> np.ndarray:
    rows = np.zeros((4, F))
    rows[2, 3] = value
    return rows


Maker = Callable[[Path, str], Path]
# case -> (file name, maker(folder, name) -> path, words the error must hold)
BROKEN: dict[str, tuple[str, Maker, str]] = {
    **{f"empty{e}": (f"e{e}", lambda d, n: write_empty(d / n), "is empty (0 bytes)") for e in (".npy", ".safetensors")},
    "truncated.npy": ("t.npy", lambda d, n: write_truncated(_good(d, ".npy"), d / n), "truncated"),
    "truncated.safetensors": ("t.safetensors", lambda d, n: write_truncated(_good(d, ".safetensors"), d / n),
                              "cannot read .safetensors"),
    "random_bytes.npy": ("r.npy", lambda d, n: write_random(d / n), "cannot parse .npy file"),
    "random_bytes.safetensors": ("r.safetensors", lambda d, n: write_random(d / n), "cannot read .safetensors"),
    "wrong_extension.npy": ("st.npy", lambda d, n: (d / n).write_bytes(_good(d, ".safetensors").read_bytes()) and d / n,
                            "cannot parse .npy file"),
    "wrong_extension.safetensors": ("npy.safetensors",
                                    lambda d, n: (d / n).write_bytes(_good(d, ".npy").read_bytes()) and d / n,
                                    "cannot read .safetensors"),
    "nan_inf.npy": ("nan.npy", lambda d, n: _npy(d / n, _with(np.nan)), "1 of its 32 values are NaN or Inf"),
    "big.npy": ("big.npy", lambda d, n: _npy(d / n, _with(1e300)), "NaN or Inf (as float32)"),
    "nan_inf.safetensors": ("inf.safetensors", lambda d, n: _st(d / n, _with(-np.inf).astype(np.float32)),
                            "NaN or Inf"),
    "zero_size.npy": ("z.npy", lambda d, n: _npy(d / n, np.zeros((0, F), np.float32)), "expected an L×F array"),
    "zero_size.safetensors": ("z.safetensors", lambda d, n: _st(d / n, np.zeros((0, F), np.float32)),
                              "expected an L×F array"),
    "three_dims.npy": ("cube.npy", lambda d, n: _npy(d / n, np.zeros((2, 3, F), np.float32)), "got shape (2, 3, 8)"),
    "strings.npy": ("text.npy", lambda d, n: _npy(d / n, np.array(["a", "b"])), "found dtype <U1"),
    "objects.npy": ("obj.npy", lambda d, n: _npy(d / n, np.array([None, {}], dtype=object)), "never unpickled"),
    "size_bomb.npy": ("b.npy", lambda d, n: _npy_bomb(d / n), "(204,800,000,128 bytes), but the file holds only"),
    "size_bomb.safetensors": ("b.safetensors", lambda d, n: _st_bomb(d / n), "cannot read .safetensors"),
    "header_bomb.safetensors": ("h.safetensors", lambda d, n: _st_header_bomb(d / n), "cannot read .safetensors"),
    "symlink_loop": ("loop.npy", make_link_loop, "is a looping symbolic link"),
    "dangling_link": ("gone.safetensors", make_dangling_link, "is a dangling symbolic link"),
    "directory": ("dir.npy", make_dir_named_like_file, "is a directory"),
    "non_utf8_name": ("", lambda d, n: write_random(non_utf8_path(d, ".npy")), "cannot parse .npy file"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_bad_feature_file_is_a_named_error(tmp_path: Path, case: str) -> None:
    name, make, words = BROKEN[case]
    path = make(tmp_path, name)
    with bounded_memory(64):
        message = assert_named_error(lambda: read_features(path, in_dim=F), path)
    assert words in message, message


@pytest.mark.parametrize("case", ["random_bytes.safetensors", "size_bomb.npy", "nan_inf.npy", "objects.npy"])
def test_skip_blames_the_bad_file(tmp_path: Path, case: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    for i in range(3):
        _npy(root / f"ok{i}.npy", np.ones((5, F), np.float32))
    name, make, _ = BROKEN[case]
    bad = make(root, name)
    ds = FeatureFiles(root, in_dim=F, max_len=16, window=False, on_error="skip")
    items = [ds[i][0] for i in range(len(ds))]
    assert len(items) == 4 and all(x.shape == (5, F) for x in items)
    assert ds.skipped() == 1 and bad.name in ds.skip_report()
    strict = FeatureFiles(root, in_dim=F, max_len=16, window=False)
    index = [p.name for p, _ in strict.samples].index(bad.name)
    assert_named_error(lambda: strict[index], bad)
