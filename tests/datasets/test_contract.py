"""The dataset contract: defaults, the adapter for foreign datasets, explicit forwarding by wrappers."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

import anymae.datasets
from anymae.datasets.contract import (
    DatasetView,
    PlainSamples,
    SampleDataset,
    SubsetView,
    as_samples,
    item_labels,
)
from anymae.datasets.image.files import ImageFiles
from anymae.datasets.image.synthetic import write_image_folder
from anymae.datasets.seeding import SeededSamples, sample_seed


class Bare(Dataset, SampleDataset):
    """Follows the contract with every default."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((2,), float(i)), 10 + i


class Rich(Dataset, SampleDataset):
    """Overrides every optional member: 2 inputs per item (2×4 each), 3 views, labels, epochs, skips."""

    num_views = 3
    inputs_per_item = 2

    def __init__(self) -> None:
        self.labels = [5, 6, 7, 8]
        self.epochs: list[int] = []

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.stack([torch.full((4,), 10.0 * i + j) for j in range(2)]), self.labels[i]  # 2×4

    def collate_x(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs)  # (B·2)×4, item-major

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def skipped(self) -> int:
        return 2

    def skip_report(self) -> str:
        return "Rich: skipped 2"


class HalfDeclared(Dataset):
    """Declares `num_views` without subclassing SampleDataset: it would be ignored."""

    num_views = 2

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> tuple[int, int]:
        return 0, 0


def test_defaults_of_the_contract() -> None:
    data = Bare()
    assert as_samples(data) is data
    assert (data.num_views, data.inputs_per_item, data.labels) == (1, 1, None)
    assert data.skipped() == 0 and data.skip_report() == "" and data.set_epoch(3) is None
    x, labels = data.collate([data[0], data[2]])
    assert torch.equal(x, torch.tensor([[0.0, 0.0], [2.0, 2.0]])) and labels.tolist() == [10, 12]
    assert item_labels(data) == [10, 11, 12]  # read from the items


def test_foreign_datasets_get_the_defaults_and_half_declared_ones_are_refused() -> None:
    foreign = TensorDataset(torch.arange(6.0).view(3, 2), torch.tensor([4, 5, 6]))
    plain = as_samples(foreign)
    assert isinstance(plain, PlainSamples) and len(plain) == 3 and plain.num_views == 1
    x, labels = plain.collate([plain[1], plain[2]])
    assert torch.equal(x, torch.tensor([[2.0, 3.0], [4.0, 5.0]])) and labels.tolist() == [5, 6]
    with pytest.raises(TypeError, match=r"HalfDeclared defines num_views but does not follow the dataset contract"):
        as_samples(HalfDeclared())
    with pytest.raises(TypeError, match="HalfDeclared defines num_views"):
        SeededSamples(HalfDeclared(), 0)


def test_wrappers_forward_every_member_explicitly() -> None:
    inner = Rich()
    view = SeededSamples(SubsetView(inner, [2, 0]), base_seed=3)
    assert len(view) == 2 and view.num_views == 3 and view.inputs_per_item == 2
    assert view.labels == [7, 5] and item_labels(view) == [7, 5]
    view.set_epoch(4)
    assert inner.epochs == [4] and view.epoch == 4
    assert view.skipped() == 2 and view.skip_report() == "Rich: skipped 2"
    x, label, s = view[1]
    assert label == 5 and torch.equal(x, inner[0][0]) and s == sample_seed(3, 4, 1)


def test_seeded_collate_gives_each_repeated_input_its_own_seed() -> None:
    data = SeededSamples(Rich(), base_seed=9)
    items = [data[1], data[3]]
    x, labels, seeds = data.collate(items)
    assert x.shape == (4, 4) and x[:, 0].tolist() == [10.0, 11.0, 30.0, 31.0]  # item-major inputs
    assert labels.tolist() == [6, 8]
    s1, s3 = sample_seed(9, 0, 1), sample_seed(9, 0, 3)
    assert seeds.tolist() == [sample_seed(s1, 0, 0), sample_seed(s1, 0, 1), sample_seed(s3, 0, 0), sample_seed(s3, 0, 1)]
    one = SeededSamples(Bare(), base_seed=9)
    assert one.collate([one[0], one[2]])[2].tolist() == [sample_seed(9, 0, 0), sample_seed(9, 0, 2)]  # k = 1: as drawn


def test_tensor_labels_are_subset_by_index() -> None:
    class Tensored(Bare):
        labels = torch.tensor([3, 1, 2])

    assert SubsetView(Tensored(), [2, 1]).labels.tolist() == [2, 1]
    assert item_labels(SubsetView(Tensored(), [2, 1])) == [2, 1]


def test_image_files_know_their_labels_without_reading(tmp_path) -> None:
    write_image_folder(tmp_path, 2, ["a", "b"], size=8)
    data = ImageFiles(tmp_path)
    assert data.labels == [0, 0, 1, 1] == [data[i][1] for i in range(4)]


def test_every_dataset_class_of_the_package_follows_the_contract() -> None:
    classes = []
    for info in pkgutil.walk_packages(anymae.datasets.__path__, "anymae.datasets."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        classes += [c for _, c in inspect.getmembers(module, inspect.isclass)
                    if issubclass(c, Dataset) and c.__module__ == info.name]
    names = {c.__name__ for c in classes}
    assert {"ImageFiles", "VideoClips", "AudioClips", "StackDataset", "PointFiles", "GraphListDataset",
            "SeededSamples", "SyntheticShapes", "NodePartitions"} <= names
    assert [c.__name__ for c in classes if SampleDataset not in c.__mro__] == []
    assert issubclass(SeededSamples, DatasetView)
