"""Corrupt shards and undecodable samples: a named one-line error, or a counted skip blamed on the sample."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anymae.datasets.image.synthetic import write_image_folder, write_truncated_jpeg
from anymae.datasets.seeding import SeededSamples
from anymae.datasets.shards.dataset import ShardDataset
from anymae.datasets.shards.manifest import ShardError, load_manifest
from anymae.datasets.shards.writer import write_shards
from anymae.datasets.skips import DataError
from anymae.tasks.train.loader.stream import StreamBatches
from tests.fuzz.bad_inputs import assert_named_error

SEED = 5


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 pictures, one of them a JPEG cut mid-scan (class_1/bad.jpg): 6 + 7 files in 2 classes."""
    root = write_image_folder(tmp_path_factory.mktemp("corrupt") / "images", 6, 2, size=12, fmt="png")
    write_truncated_jpeg(root / "class_1" / "bad.jpg")
    return root


def _shard(images: Path, out: Path, *, on_error: str = "raise", check: bool = True) -> Path:
    section = {"source": "image_folder", "root": str(images), "img_size": 8, "on_error": on_error}
    write_shards(section, out, max_count=4, check=check, progress=False)
    return out


def _stream(ds: ShardDataset, batch: int = 2) -> list[tuple[object, ...]]:
    data = SeededSamples(ds, SEED)
    steps = len(ds) // batch
    return list(StreamBatches(data, batch_size=batch, accum_iter=1, world_size=1, rank=0, seed=SEED, workers=1,
                              start=0, stop=steps))  # fmt: skip


def test_sharding_names_an_unreadable_file_or_skips_and_counts_it(images: Path, tmp_path: Path) -> None:
    message = assert_named_error(lambda: _shard(images, tmp_path / "a"), "bad.jpg")
    assert "cannot read image" in message and not list((tmp_path / "a").glob("*.tar"))  # nothing half-made
    manifest = load_manifest(_shard(images, tmp_path / "b", on_error="skip") / "manifest.json")
    assert manifest.num_samples == 12 and manifest.skipped == {"count": 1, "files": ["class_1/bad.jpg"]}


def test_a_member_that_fails_to_decode_is_named_or_skipped_and_counted(images: Path, tmp_path: Path) -> None:
    out = _shard(images, tmp_path / "s", check=False)  # the bad file goes into the shards unchecked
    ds = ShardDataset(str(out), split="pretrain", augment=False)
    bad = next(i for i in range(len(ds)) if ds.name(i).endswith(":000000006"))  # class_1 sorts bad.jpg first
    message = assert_named_error(lambda: ds[bad], "train-000001.tar:000000006")
    assert "class_1/bad.jpg" in message and "cannot read image" in message

    skipping = ShardDataset(str(out), split="pretrain", augment=False, on_error="skip")
    batches = _stream(skipping)
    assert len(batches) == 6 and all(b[0].shape[0] == 2 for b in batches)  # the batch stays whole
    assert skipping.skipped() == 1 and skipping.skipped_indices() == [bad]
    assert "train-000001.tar:000000006" in skipping.skip_report()
    with pytest.raises(ShardError, match=r"train-000001\.tar:000000006 \(class_1/bad\.jpg\)"):
        _stream(ShardDataset(str(out), split="pretrain", augment=False))


def _truncate(shards: Path, name: str, sample: int) -> None:
    """Cut shard `name` inside the data of its sample at position `sample`."""
    manifest = load_manifest(shards / "manifest.json")
    info = next(s for s in manifest.shards if s.name == name)
    path = shards / name
    path.write_bytes(path.read_bytes()[: info.offsets[sample] + 3 * 512 + 10])  # cls header+data, png header


def test_a_truncated_shard_is_named_or_its_lost_samples_counted(images: Path, tmp_path: Path) -> None:
    out = _shard(images, tmp_path / "t", on_error="skip")  # 12 good samples in shards of 4, 4, 4
    _truncate(out, "train-000001.tar", 1)  # samples 5, 6, 7 are lost
    strict = ShardDataset(str(out), split="pretrain", augment=False)
    message = assert_named_error(lambda: _stream(strict), "train-000001.tar", error=ShardError)
    assert "after 1 of its 4 samples" in message
    assert_named_error(lambda: strict[6], "train-000001.tar:000000006", error=ShardError)
    assert strict[4][1] == strict.labels[4]  # what comes before the cut still reads

    lenient = ShardDataset(str(out), split="pretrain", augment=False, on_error="skip")
    batches = _stream(lenient)
    assert len(batches) == 6 and all(b[0].shape[0] == 2 for b in batches)
    assert lenient.skipped() == 3 and lenient.skipped_indices() == [5, 6, 7]
    assert "skipped 3" in lenient.skip_report() and "train-000001.tar:000000005" in lenient.skip_report()


def test_a_missing_manifest_or_shard_is_named(images: Path, tmp_path: Path) -> None:
    out = _shard(images, tmp_path / "m", on_error="skip")
    (out / "train-000002.tar").unlink()
    assert_named_error(lambda: ShardDataset(str(out)), "train-000002.tar", error=ShardError)
    pattern = str(out / "train-{000000..000001}.tar")
    assert len(ShardDataset(pattern)) == 8  # a brace pattern selects the shards that are there
    assert_named_error(lambda: ShardDataset(str(out / "train-000009.tar")), "train-000009.tar", error=ShardError)
    copy = tmp_path / "nomanifest"
    shutil.copytree(out, copy)
    (copy / "manifest.json").unlink()
    assert_named_error(lambda: ShardDataset(str(copy)), "manifest.json", error=ShardError)
    (copy / "manifest.json").write_text("{not json")
    assert_named_error(lambda: ShardDataset(str(copy)), "manifest.json", error=ShardError)


def test_every_shard_error_is_a_data_error() -> None:
    assert issubclass(ShardError, DataError)
