"""Fuzz: every kind of bad input (`bad_inputs.KINDS`) that applies to tar shards, in place of one shard.

A set of two shards (4 pictures each) has its second shard replaced by a bad one. Reading it, by
stream or by index, gives a one-line `ShardError` (a `DataError`) naming that shard; with
on_error="skip" its samples are counted as skipped, blamed on it, and the stream still yields
whole batches. nan_inf does not apply (a tar holds bytes; each reader's own fuzz tests cover NaN
in its format); symlink_escape does not either (shards are named one by one, never scanned).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from anymae.datasets.image.synthetic import write_image_folder, write_truncated_jpeg
from anymae.datasets.seeding import SeededSamples
from anymae.datasets.shards.dataset import ShardDataset
from anymae.datasets.shards.manifest import ShardError
from anymae.datasets.shards.writer import write_shards
from anymae.tasks.train.loader.stream import StreamBatches
from tests.fuzz.bad_inputs import (
    assert_named_error,
    bounded_memory,
    make_dir_named_like_file,
    make_link_loop,
    non_utf8_path,
    write_empty,
    write_random,
    write_truncated,
)

pytestmark = pytest.mark.timeout(60)
BAD = "train-000001.tar"


def _zero_members(path: Path) -> Path:
    with tarfile.open(path, "w"):
        pass  # a valid tar that declares no member
    return path


def _size_bomb(path: Path) -> Path:
    info = tarfile.TarInfo("000000004.png")
    info.size = 10**9  # declared; the file holds 100 bytes of it
    path.write_bytes(info.tobuf() + bytes(100))
    return path


def _wrong_extension(path: Path) -> Path:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())  # a PNG under the shard's name
    return path


BREAK: dict[str, Callable[[Path, Path], object]] = {
    "empty": lambda bad, good: write_empty(bad),
    "truncated": lambda bad, good: write_truncated(good, bad),
    "random_bytes": lambda bad, good: write_random(bad, 9000),
    "wrong_extension": lambda bad, good: _wrong_extension(bad),
    "zero_size": lambda bad, good: _zero_members(bad),
    "size_bomb": lambda bad, good: _size_bomb(bad),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_shards")
    images = write_image_folder(root / "images", 4, 2, size=12, fmt="png")
    write_shards({"source": "image_folder", "root": str(images), "img_size": 8}, root / "shards", max_count=4,
                 progress=False)  # fmt: skip
    return root / "shards"


def _broken(good: Path, tmp_path: Path, kind: str) -> Path:
    out = tmp_path / "shards"
    shutil.copytree(good, out)
    bad = out / BAD
    bad.unlink()
    BREAK[kind](bad, good / BAD)
    return out


def _stream(ds: ShardDataset) -> list[tuple[object, ...]]:
    return list(StreamBatches(SeededSamples(ds, 0), batch_size=2, accum_iter=1, world_size=1, rank=0, seed=0,
                              workers=1, start=0, stop=4))  # fmt: skip


@pytest.mark.parametrize("kind", list(BREAK))
def test_a_bad_shard_is_named_or_its_samples_counted(good: Path, tmp_path: Path, kind: str) -> None:
    out = _broken(good, tmp_path, kind)
    strict = ShardDataset(str(out), split="pretrain", augment=False)
    with bounded_memory(64):
        assert_named_error(lambda: _stream(strict), BAD, error=ShardError)
        assert_named_error(lambda: strict[7], BAD, error=ShardError)
    lenient = ShardDataset(str(out), split="pretrain", augment=False, on_error="skip")
    batches = _stream(lenient)
    assert len(batches) == 4 and all(b[0].shape[0] == 2 for b in batches)
    # a sample is 3 members of one 512-byte header + one block (3072 bytes); the shard, 4 samples and the
    # end-of-archive blocks, is padded to 2 tar records (20480 bytes): its first half holds samples 4, 5, 6
    lost = {"truncated": [7]}.get(kind, [4, 5, 6, 7])
    assert lenient.skipped_indices() == lost and f"{BAD}:00000000{lost[0]}" in lenient.skip_report()


def test_a_shard_that_is_a_link_loop_or_a_directory_is_named(good: Path, tmp_path: Path) -> None:
    for make in (make_link_loop, make_dir_named_like_file):
        out = tmp_path / make.__name__
        shutil.copytree(good, out)
        (out / BAD).unlink()
        make(out, BAD)
        assert_named_error(lambda: ShardDataset(str(out)), BAD, error=ShardError)  # the folder lists it
        pattern = str(out / "train-{000000..000001}.tar")
        assert_named_error(lambda: ShardDataset(pattern), BAD, error=ShardError)


def test_non_utf8_file_names_are_kept_and_named(tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "images", 2, 2, size=12, fmt="png")
    good = non_utf8_path(images / "class_0", ".png")
    shutil.copy(images / "class_0" / "class_0_0000.png", good)
    write_truncated_jpeg(non_utf8_path(images / "class_1", ".jpg"))
    section = {"source": "image_folder", "root": str(images), "img_size": 8}
    assert_named_error(lambda: write_shards(section, tmp_path / "a", progress=False), os.fsdecode(b"clip_\xff\xfe.jpg"))
    manifest = write_shards({**section, "on_error": "skip"}, tmp_path / "b", progress=False)
    assert manifest.num_samples == 5 and manifest.skipped["count"] == 1
    ds = ShardDataset(str(tmp_path / "b"))
    assert ds[0][0].shape == (3, 8, 8) and len(ds) == 5
