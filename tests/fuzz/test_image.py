"""Fuzz: every kind of bad input (`bad_inputs.KINDS`) fed to image loading and the image dataset.

Each bad file gives a one-line `DataError` naming it (`load_rgb`), or, in `ImageFiles` with
on_error="skip", one counted skip blamed on it while every good image still loads. Declared-size
bombs are refused before PIL allocates; float images with NaN / Inf are refused, not drawn black
or white. `tiff_bytes` / `png_bytes` craft headers that declare any size (also used by the
multi-channel tests).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anymae.datasets.image.files import ImageFiles, load_rgb
from anymae.datasets.scan import display_name
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


def tiff_bytes(width: int, height: int, *, data: bytes = bytes(16), bits: int = 32, sample_format: int = 3) -> bytes:
    """A one-strip little-endian TIFF declaring width × height samples (float32 by default) followed
    by `data`, whatever its length: the header is free to lie."""
    n = 10
    offset = 8 + 2 + 12 * n + 4  # data right after the IFD
    entries = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 1), (262, 3, 1), (273, 4, offset),
               (277, 3, 1), (278, 4, max(height, 1)), (279, 4, len(data)), (339, 3, sample_format)]
    ifd = struct.pack("<H", n) + b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in entries)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + data


def png_bytes(width: int, height: int) -> bytes:
    """A grayscale PNG declaring width × height pixels whose compressed data hold a single row."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(width + 1))) + \
        chunk(b"IEND", b"")


def _good(path: Path, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 5, 3), value, np.uint8)).save(path)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _npy_as_png(path: Path) -> Path:
    with open(path, "wb") as f:  # a good .npy under an image extension
        np.save(f, np.zeros((6, 5), np.float32))
    return path


def _float_tiff(path: Path) -> Path:
    values = np.array([[0.0, np.nan], [np.inf, 1.0]], "<f4")
    return _write(path, tiff_bytes(2, 2, data=values.tobytes()))


# kind -> (file name, maker(folder, name) -> path, words the error must hold)
BROKEN: dict[str, tuple[str, Callable[[Path, str], Path], str]] = {
    "empty": ("e.png", lambda d, n: write_empty(d / n), "is empty (0 bytes)"),
    "truncated": ("t.png", lambda d, n: write_truncated(_good(d / "whole.png"), d / n, keep=0.6), "cannot read image"),
    "random_bytes": ("r.jpg", lambda d, n: write_random(d / n), "cannot identify image file"),
    "wrong_extension": ("npy.png", lambda d, n: _npy_as_png(d / n), "cannot identify image file"),
    "nan_inf": ("nan.tif", lambda d, n: _float_tiff(d / n), "2 of its 4 pixels are NaN or Inf"),
    "zero_size": ("z.tif", lambda d, n: _write(d / n, tiff_bytes(0, 0)), "cannot identify image file"),
    "size_bomb_raw": ("b.tif", lambda d, n: _write(d / n, tiff_bytes(9000, 9000)),
                      "a 9000×9000 F image (324,000,000 bytes), but the file holds only 150 bytes"),
    "size_bomb_compressed": ("b.png", lambda d, n: _write(d / n, png_bytes(9000, 9000)),
                             "a 9000×9000 L image (81,000,000 bytes)"),
    "symlink_loop": ("loop.png", make_link_loop, "is a looping symbolic link"),
    "dangling_link": ("gone.png", make_dangling_link, "is a dangling symbolic link"),
    "directory": ("dir.png", make_dir_named_like_file, "is a directory"),
    "non_utf8_name": ("", lambda d, n: write_random(non_utf8_path(d, ".png")), "cannot identify image file"),
}


LINKS = ("symlink_loop", "dangling_link")


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_bad_file_is_a_named_one_line_error(tmp_path: Path, kind: str) -> None:
    name, make, words = BROKEN[kind]
    bad = make(tmp_path, name)
    with bounded_memory(30):
        message = assert_named_error(lambda: load_rgb(bad), bad)
    assert words in message
    assert f"{display_name(bad)}" in message


@pytest.mark.parametrize("kind", sorted(set(BROKEN) - {"directory"}))  # a folder named x.png is scanned into
def test_a_bad_file_in_a_folder_is_one_counted_skip_blamed_on_it(tmp_path: Path, kind: str) -> None:
    name, make, _ = BROKEN[kind]
    root, scratch = tmp_path / "data", tmp_path / "scratch"
    scratch.mkdir()
    good = [_good(root / f"good_{i}.png", 10 * (i + 1)) for i in range(3)]
    if kind in LINKS:  # made in place: a moved link loop would point at the old place
        bad = make(root, name)
    else:  # made aside (a truncated file's whole original stays out of the data)
        bad = make(scratch, name)
        os.rename(os.fsencode(bad), os.fsencode(root / bad.name))
        bad = root / bad.name
    data = ImageFiles(root, on_error="skip")
    paths = [p for p, _ in data.samples]
    assert sorted(paths) == sorted([*good, bad])
    values = [int(np.asarray(data[i][0])[0, 0, 0]) for i in range(len(data))]
    assert sorted(set(values)) == [10, 20, 30] and len(values) == 4  # the bad one replaced by a good one
    assert data.skipped() == 1
    assert f"skipped 1 unreadable image file(s) of 4: {display_name(bad.name)}" in data.skip_report()


def test_a_valid_image_whose_name_is_not_utf8_reads(tmp_path: Path) -> None:
    odd = _good(tmp_path / "plain.png", 42)
    os.rename(odd, non_utf8_path(tmp_path, ".png"))
    data = ImageFiles(tmp_path)
    assert len(data) == 1 and np.asarray(data[0][0])[0, 0].tolist() == [42, 42, 42]


def test_links_out_of_the_root_and_looping_folders_add_no_images(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    _good(root / "a.png")
    _good(outside / "stranger.png")
    make_escape_link(root, outside)
    make_dir_self_links(root)
    data = ImageFiles(root)
    assert [p.name for p, _ in data.samples] == ["a.png"]


def test_a_finite_float_tiff_still_reads(tmp_path: Path) -> None:
    values = np.array([[0.0, 1.0], [2.0, 4.0]], "<f4")
    img = load_rgb(_write(tmp_path / "ok.tif", tiff_bytes(2, 2, data=values.tobytes())))
    assert np.asarray(img)[..., 0].tolist() == [[0, 64], [128, 255]]  # stretched min..max, rounded


def test_a_flat_losslessly_compressed_image_is_no_bomb(tmp_path: Path) -> None:
    path = tmp_path / "flat.webp"
    Image.fromarray(np.full((2048, 2048, 3), 77, np.uint8)).save(path, lossless=True)
    assert path.stat().st_size * 4096 < 2048 * 2048 * 3  # beyond the compression ratio, within 64 MiB
    assert np.asarray(load_rgb(path))[::512, ::512].tolist() == [[[77, 77, 77]] * 4] * 4
