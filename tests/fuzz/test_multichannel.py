"""Fuzz: every kind of bad input (`bad_inputs.KINDS`) fed to the multi-channel readers and datasets.

Each bad stack file, read as `StackFiles` reads a sample (`read_array` -> `to_chw` ->
`check_finite`), gives a one-line `DataError` naming it (and the channel, for NaN / Inf); in
`multichannel_files` with on_error="skip" it is one counted skip blamed on it while every good
stack still loads. Channel images of `multichannel_csv` are checked the same way. Declared-size
bombs are refused before anything is allocated (`bounded_memory`); `.npy` files of strings or
objects are data errors, never unpickled.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anymae.datasets.multichannel.io import check_finite, read_array, read_channel_image, to_chw, write_stack
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
from tests.fuzz.test_image import png_bytes, tiff_bytes

pytestmark = pytest.mark.timeout(60)
CHANNELS = ["dna", "er", "rna"]
MODEL = {"channels": CHANNELS, "img_size": 8}
BOMB = {"descr": "<f4", "fortran_order": False, "shape": (3, 50_000, 50_000)}


def _stack(seed: int = 0, size: int = 10) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1000, (3, size, size)).astype(np.float32)


def _with(value: float, channel: int) -> np.ndarray:
    s = _stack().astype(np.float64)  # float64: 1e300 is finite here, Inf once read as float32
    s[channel, 3, 5] = value
    return s


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _npy_bomb(path: Path) -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, BOMB)
        f.write(bytes(16))
    return path


def _npz_bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("image.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, BOMB)
        f.write(bytes(16))
    return path


def _save_npy(path: Path, array: np.ndarray) -> Path:
    with open(path, "wb") as f:  # any name, any dtype
        np.save(f, array, allow_pickle=array.dtype.hasobject)
    return path


def _other(ext: str) -> Callable[[Path, str], Path]:
    """A good stack of another format under this name (wrong extension)."""
    def make(d: Path, n: str) -> Path:
        return _write(d / n, write_stack(d / f"other{ext}", _stack()).read_bytes())
    return make


Maker = Callable[[Path, str], Path]
# case -> (file name, maker(folder, name) -> path, words the error must hold)
BROKEN: dict[str, tuple[str, Maker, str]] = {
    **{f"empty{ext}": (f"e{ext}", lambda d, n: write_empty(d / n), "is empty (0 bytes)")
       for ext in (".npy", ".npz", ".tif")},
    **{f"truncated{ext}": (f"t{ext}", lambda d, n: write_truncated(write_stack(d / f"whole{Path(n).suffix}", _stack()),
                                                                d / n), words)
       for ext, words in ((".npy", "truncated"), (".npz", "cannot read"), (".tif", "truncated"))},
    "random_bytes.npy": ("r.npy", lambda d, n: write_random(d / n), "cannot parse .npy file"),
    "random_bytes.npz": ("r.npz", lambda d, n: write_random(d / n), "cannot read"),
    "random_bytes.tif": ("r.tif", lambda d, n: write_random(d / n), "cannot read"),
    "wrong_extension.tif": ("npy.tif", _other(".npy"), "cannot read"),
    "wrong_extension.npy": ("tif.npy", _other(".tif"), "cannot parse .npy file"),
    "wrong_extension.npz": ("npy.npz", _other(".npy"), "cannot read"),
    "nan_inf.tif": ("nan.tif", lambda d, n: write_stack(d / n, _with(np.nan, 1)), "channel 'er' has 1 NaN or Inf"),
    "nan_inf.npz": ("inf.npz", lambda d, n: write_stack(d / n, _with(-np.inf, 2)), "channel 'rna' has 1 NaN or Inf"),
    "nan_inf.npy": ("big.npy", lambda d, n: _save_npy(d / n, _with(1e300, 0)),
                    "channel 'dna' has 1 NaN or Inf"),
    "strings.npy": ("text.npy", lambda d, n: _save_npy(d / n, np.array(["a", "b", "c"])), "found dtype <U1"),
    "objects.npy": ("obj.npy", lambda d, n: _save_npy(d / n, np.array([None, {}], dtype=object)),
                    "never unpickled"),
    "zero_size.npy": ("z.npy", lambda d, n: _save_npy(d / n, np.zeros((3, 0, 0), np.float32)), "0×0 pixels"),
    "zero_size.tif": ("z.tif", lambda d, n: _write(d / n, tiff_bytes(0, 0)), "z.tif"),
    "size_bomb.npy": ("b.npy", lambda d, n: _npy_bomb(d / n), "(30,000,000,128 bytes), but the file holds only 144"),
    "size_bomb.npz": ("b.npz", lambda d, n: _npz_bomb(d / n), "(30,000,000,128 bytes), but the file holds only 144"),
    "size_bomb.tif": ("b.tif", lambda d, n: _write(d / n, tiff_bytes(9000, 9000)), "(324,000,000 bytes)"),
    "symlink_loop": ("loop.tif", make_link_loop, "is a looping symbolic link"),
    "dangling_link": ("gone.npz", make_dangling_link, "is a dangling symbolic link"),
    "directory": ("dir.npy", make_dir_named_like_file, "is a directory"),
    "non_utf8_name": ("", lambda d, n: write_random(non_utf8_path(d, ".npy")), "cannot parse .npy file"),
}
LINKS = ("symlink_loop", "dangling_link")


def _read(path: Path) -> np.ndarray:
    """What `StackFiles` does with one sample's file: read, C×H×W, finite."""
    return check_finite(to_chw(read_array(path), CHANNELS, path=path), CHANNELS, path)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_bad_stack_is_a_named_one_line_error(tmp_path: Path, case: str) -> None:
    name, make, words = BROKEN[case]
    bad = make(tmp_path, name)
    with bounded_memory(30):
        message = assert_named_error(lambda: _read(bad), bad)
    assert words in message


@pytest.mark.parametrize("case", sorted(set(BROKEN) - {"directory"}))  # a folder named x.npy is scanned into
def test_a_bad_stack_in_a_folder_is_one_counted_skip_blamed_on_it(tmp_path: Path, case: str) -> None:
    name, make, _ = BROKEN[case]
    root, scratch = tmp_path / "data", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    good = [write_stack(root / f"good_{i}.npy", _stack(i)) for i in range(3)]
    if case in LINKS:  # made in place: a moved link loop would point at the old place
        bad = make(root, name)
    else:  # made aside (a truncated file's whole original stays out of the data)
        bad = make(scratch, name)
        os.rename(os.fsencode(bad), os.fsencode(root / bad.name))
        bad = root / bad.name
    section = {"source": "multichannel_files", "root": str(root), "channels": CHANNELS, "on_error": "skip"}
    data = build_dataset(section, split="test", model_config=MODEL)
    assert sorted(p for p, _ in data.samples) == sorted([*good, bad])
    items = [data[i][0].pixels for i in range(len(data))]
    assert all(x.shape == (3, 8, 8) and torch.isfinite(x).all() for x in items)
    assert data.skipped() == 1
    assert f"skipped 1 unreadable sample(s) of 4: {display_name(bad)}" in data.skip_report()


CHANNEL_IMAGES: dict[str, tuple[str, Maker, str]] = {
    "random_bytes.png": ("r.png", lambda d, n: write_random(d / n), "cannot read"),
    "nan_inf.tif": ("nan.tif", lambda d, n: write_stack(d / n, _with(np.nan, 0)[0]), "has 1 NaN or Inf"),
    "size_bomb.png": ("b.png", lambda d, n: _write(d / n, png_bytes(9000, 9000)), "a 9000×9000 L image"),
    "zero_size.npy": ("z.npy", lambda d, n: _save_npy(d / n, np.zeros((0, 4), np.float32)), "found shape (0, 4)"),
    "symlink_loop": ("loop.png", make_link_loop, "is a looping symbolic link"),
}


@pytest.mark.parametrize("case", sorted(CHANNEL_IMAGES))
def test_a_bad_channel_image_names_the_file_and_the_channel(tmp_path: Path, case: str) -> None:
    name, make, words = CHANNEL_IMAGES[case]
    bad = make(tmp_path, name)
    with bounded_memory(30):
        message = assert_named_error(lambda: read_channel_image(bad, "er"), bad)
    assert words in message and "'er'" in message


def test_a_valid_stack_whose_name_is_not_utf8_reads(tmp_path: Path) -> None:
    odd = write_stack(tmp_path / "plain.npy", _stack(7))
    os.rename(odd, non_utf8_path(tmp_path, ".npy"))
    data = build_dataset({"source": "multichannel_files", "root": str(tmp_path), "channels": CHANNELS,
                          "normalize": False}, split="test", model_config=MODEL)
    assert len(data) == 1 and torch.equal(data[0][0].pixels, torch.from_numpy(_stack(7)[:, 1:9, 1:9]))


def test_links_out_of_the_root_and_looping_folders_add_no_stacks(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    write_stack(root / "mine.npy", _stack())
    write_stack(outside / "stranger.npy", _stack())
    make_escape_link(root, outside)
    make_dir_self_links(root)
    data = build_dataset({"source": "multichannel_files", "root": str(root), "channels": CHANNELS}, split="test",
                         model_config=MODEL)
    assert [p.name for p, _ in data.samples] == ["mine.npy"]


def test_a_gray_png_channel_still_reads(tmp_path: Path) -> None:
    Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4)).save(tmp_path / "g.png")
    assert read_channel_image(tmp_path / "g.png", "er").tolist() == np.arange(16).reshape(4, 4).tolist()
