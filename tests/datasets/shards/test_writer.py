"""`write_shards`: plain tars in WebDataset's layout, the manifest's figures, sizes, options."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from anymae.core.config import ConfigError
from anymae.datasets.image.synthetic import write_image_folder
from anymae.datasets.shards.dataset import ShardDataset
from anymae.datasets.shards.manifest import load_manifest
from anymae.datasets.shards.writer import write_shards
from tests.datasets.shards.conftest import FolderSet


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes × 4 PNG pictures of 16×16."""
    return write_image_folder(tmp_path_factory.mktemp("writer") / "images", 4, 3, size=16, fmt="png")


def _write(images: Path, out: Path, **kw: object) -> Path:
    write_shards({"source": "image_folder", "root": str(images)}, out, progress=False, **kw)  # type: ignore[arg-type]
    return out


def test_shards_are_plain_tars_with_members_grouped_by_key(images: Path, tmp_path: Path) -> None:
    out = _write(images, tmp_path / "s", max_count=5)
    with tarfile.open(out / "train-000000.tar") as tar:  # any tar reader sees the original files
        names = tar.getnames()
        png = tar.extractfile("000000001.png").read()  # type: ignore[union-attr]
        meta = json.loads(tar.extractfile("000000001.json").read())  # type: ignore[union-attr]
        cls = tar.extractfile("000000001.cls").read()  # type: ignore[union-attr]
    assert names[:3] == ["000000000.cls", "000000000.json", "000000000.png"] and len(names) == 15
    assert png == (images / "class_0" / "class_0_0001.png").read_bytes()
    assert meta == {"index": 1, "file": "class_0/class_0_0001.png", "label": 0} and cls == b"0"


def test_the_manifest_counts_samples_bytes_and_classes(images: Path, tmp_path: Path) -> None:
    out = _write(images, tmp_path / "s", max_count=5)
    data = json.loads((out / "manifest.json").read_text())
    assert [s["count"] for s in data["shards"]] == [5, 5, 2] and data["num_samples"] == 12
    assert [s["bytes"] for s in data["shards"]] == [(out / s["name"]).stat().st_size for s in data["shards"]]
    assert data["bytes"] == sum(s["bytes"] for s in data["shards"])
    assert data["classes"] == ["class_0", "class_1", "class_2"]
    assert data["class_counts"] == {"class_0": 4, "class_1": 4, "class_2": 4}
    assert data["shards"][1]["labels"] == [1, 1, 1, 2, 2] and data["shards"][1]["first"] == 5
    assert data["source"] == {"source": "image_folder", "root": str(images)} and data["modality"] == "image"


def test_max_size_cuts_shards_by_bytes(images: Path, tmp_path: Path) -> None:
    one = (images / "class_0" / "class_0_0000.png").stat().st_size + 4 * 512  # a sample with its headers
    out = _write(images, tmp_path / "s", max_size=3 * one + 600)
    manifest = load_manifest(out / "manifest.json")
    assert all(s.count <= 3 for s in manifest.shards) and manifest.num_samples == 12
    assert all(s.bytes <= 3 * one + 600 + 10240 for s in manifest.shards)  # + the tar's end-of-archive record


def test_the_same_folder_gives_the_same_bytes_and_a_used_folder_is_refused(images: Path, tmp_path: Path) -> None:
    a, b = _write(images, tmp_path / "a"), _write(images, tmp_path / "b", num_workers=2)  # checked in 2 processes
    assert (a / "train-000000.tar").read_bytes() == (b / "train-000000.tar").read_bytes()
    with pytest.raises(ValueError, match="already holds shards"):
        _write(images, a)


def test_sources_without_files_are_refused_with_the_ones_that_shard(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synthetic_images.*cannot be sharded.*image_folder, video_files"):
        write_shards({"source": "synthetic_images", "n": 4}, tmp_path / "s", progress=False)
    with pytest.raises(ValueError, match="scanobjectnn.*packed"):
        write_shards({"source": "scanobjectnn", "root": str(tmp_path)}, tmp_path / "s", progress=False)


def test_options_change_how_samples_decode_but_never_which_files(images: Path, tmp_path: Path) -> None:
    out = _write(images, tmp_path / "s")
    assert ShardDataset(str(out))[0][0].shape == (3, 224, 224)  # no img_size given: the source's default
    assert ShardDataset(str(out), model_config={"img_size": 32})[0][0].shape == (3, 32, 32)  # the model's
    assert ShardDataset(str(out), options={"img_size": 8})[0][0].shape == (3, 8, 8)
    with pytest.raises(ConfigError, match="data.options.root: the shards give the files"):
        ShardDataset(str(out), options={"root": "/elsewhere"})
    with pytest.raises(ConfigError, match="data.options.img_sise"):
        ShardDataset(str(out), options={"img_sise": 8})


def test_multi_label_audio_keeps_its_classes_and_refuses_waveform_mixup(
    folder_sets: Callable[[str], FolderSet], tmp_path: Path
) -> None:
    fs = folder_sets("audio_csv")
    out = tmp_path / "s"
    manifest = write_shards(fs.section, out, progress=False, model_config=fs.model)
    assert manifest.classes == ["class /m/a", "class /m/b", "class /m/c"]  # the class index's display names
    assert [label for s in manifest.shards for label in s.labels] == [[0], [0, 2], [1], []]  # CSV order
    assert manifest.class_counts() == {"class /m/a": 2, "class /m/b": 1, "class /m/c": 1}
    ds = ShardDataset(str(out), model_config=fs.model)
    assert ds.labels is None and ds[1][1].tolist() == [1.0, 0.0, 1.0] and ds[3][1].sum() == 0
    with pytest.raises(ConfigError, match="data.options.mixup=0.5: waveform mixup"):
        ShardDataset(str(out), split="train", augment="finetune", model_config=fs.model)
    ShardDataset(str(out), split="train", augment="finetune", model_config=fs.model, options={"mixup": 0.0})
