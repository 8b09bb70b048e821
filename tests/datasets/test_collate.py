from __future__ import annotations

import torch
from torch.utils.data import Dataset

from anymae.datasets.collate import collate_fn_for, collate_items
from anymae.datasets.contract import SampleDataset, SubsetView
from anymae.datasets.seeding import SeededSamples


class Ragged(Dataset, SampleDataset):
    """Items whose inputs have different lengths: default collate cannot stack them."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((i + 1,), float(i)), i

    def collate_x(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(xs)


class Plain(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.zeros(2), i


def test_collate_x_is_forwarded_by_wrappers_and_labels_and_seeds_are_stacked() -> None:
    data = SeededSamples(SubsetView(Ragged(), [0, 1, 2]), base_seed=7)
    fn = collate_fn_for(data)
    xs, labels, seeds = fn([data[i] for i in range(3)])
    assert [x.tolist() for x in xs] == [[0.0], [1.0, 1.0], [2.0, 2.0, 2.0]]
    assert labels.tolist() == [0, 1, 2]
    assert seeds.dtype == torch.int64 and seeds.tolist() == [data[i][2] for i in range(3)]


def test_plain_datasets_use_the_default_collate() -> None:
    x, label = collate_fn_for(Plain())([Plain()[0], Plain()[1]])
    assert x.shape == (2, 2) and label.tolist() == [0, 1]
    x, label = collate_items(Plain(), [Plain()[0], Plain()[1]])
    assert x.shape == (2, 2) and label.tolist() == [0, 1]
