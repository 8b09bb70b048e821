"""Several views per sample (datasets/views.py): `data.views` / `data.view_mode`, batching as `Views`,
and views that depend only on the sample's seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anymae.core.config import ConfigError
from anymae.core.skeleton import Views
from anymae.datasets.collate import collate_items
from anymae.datasets.image.synthetic import write_image_folder
from anymae.datasets.seeding import SeededSamples
from anymae.datasets.sources import build_dataset
from anymae.datasets.views import ViewSamples


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("views") / "images", 3, 2, size=40, seed=0)


def _data(folder: Path, **views: object) -> SeededSamples:
    section = {"source": "image_folder", "root": str(folder), "img_size": 16, **views}
    return SeededSamples(build_dataset(section, split="pretrain"), base_seed=0)


def test_augment_views_are_distinct_draws_that_depend_only_on_the_sample_seed(folder: Path) -> None:
    data = _data(folder, views=2, view_mode="augment")
    (v1, v2), _label, seed = data[3]
    assert v1.shape == v2.shape == (3, 16, 16) and not torch.equal(v1, v2)  # two crops / flips
    again = data[3]
    assert all(torch.equal(a, b) for a, b in zip(again[0], (v1, v2))) and again[2] == seed
    data.set_epoch(1)
    assert not torch.equal(data[3][0][0], v1)  # another epoch, another seed, other views
    # the same sample in another batch, or read alone: the same views
    data.set_epoch(0)
    batch = collate_items(data, [data[1], data[3]])
    assert isinstance(batch[0], Views) and len(batch[0]) == 2 and batch[0][0].shape == (2, 3, 16, 16)
    assert torch.equal(batch[0][0][1], v1) and torch.equal(batch[0][1][1], v2)
    assert batch[2].tolist() == [data[1][2], seed]  # one mask seed per sample, shared by its views


def test_same_mode_repeats_one_draw(folder: Path) -> None:
    (v1, v2), _, _ = _data(folder, views=2, view_mode="same")[0]
    assert torch.equal(v1, v2)


def test_views_apply_to_pretraining_only_and_bad_values_name_the_key(folder: Path) -> None:
    section = {"source": "image_folder", "root": str(folder), "img_size": 16, "views": 2}
    assert isinstance(build_dataset(section, split="pretrain"), ViewSamples)
    assert not isinstance(build_dataset(section, split="test"), ViewSamples)  # probes read one view
    assert not isinstance(build_dataset({**section, "views": 1}, split="pretrain"), ViewSamples)
    with pytest.raises(ConfigError, match="data.view_mode"):
        build_dataset({**section, "view_mode": "twice"}, split="pretrain")
    with pytest.raises(ConfigError, match="views=0"):
        build_dataset({**section, "views": 0}, split="pretrain")
    with pytest.raises(ValueError, match="int >= 2"):
        ViewSamples(build_dataset({**section, "views": 1}, split="pretrain"), views=1)
