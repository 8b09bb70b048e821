"""core/seeds.py: every seed hash pinned to the values recorded runs were made with, offsets and folding."""

from __future__ import annotations

import pytest
import torch

from anymae.core import seeds
from anymae.datasets import seeding
from anymae.tasks.train.loader import sampler


def test_one_module_serves_every_caller() -> None:
    assert sampler.mix_seed is seeds.mix_seed
    assert seeding.sample_seed is seeds.sample_seed


def test_hashes_are_pinned_to_the_previous_values() -> None:
    # values of the three hashes before they moved here (tasks/sampler.py, datasets/seeding.py,
    # core/replace_model.py): data order, per-sample seeds and graph masks of recorded runs
    assert (seeds.mix_seed(0, 0), seeds.mix_seed(3, 1), seeds.mix_seed(7, 2, 1)) == (
        520810605562734633, 8939634170434151268, 4421349964320141798)
    assert seeds.sample_seed(0, 0, 0) == 1317536309490288386
    assert int(seeds.fold_seeds(torch.tensor([11, 12, 13]), 1)) == 1612884143323820752
    assert int(seeds.fold_seeds(torch.tensor([2**40, 5]), 1)) == 3989005996886763718


def test_fold_seeds_passes_equal_counts_and_refuses_several_packed_rows() -> None:
    s = torch.tensor([4, 5])
    assert seeds.fold_seeds(s, 2) is s
    with pytest.raises(ValueError, match="one row"):
        seeds.fold_seeds(torch.tensor([1, 2, 3]), 2)


def test_offsets_and_branch_seeds() -> None:
    s = torch.tensor([0, 1, 2**62])
    assert seeds.SECOND_STREAM_OFFSET == 0x2545F4914F6CDD1D and seeds.DECODER_MASK_OFFSET == 0x5DEECE66D
    assert seeds.offset_seeds(None, 5) is None and seeds.branch_seeds(s, 0) is s
    assert torch.equal(seeds.branch_seeds(s, 1), s + 0x2545F4914F6CDD1D)
    # branch 4: 4 · offset exceeds int64 and wraps, as int64 arithmetic does
    wrapped = (4 * 0x2545F4914F6CDD1D) % 2**64 - 2**64
    assert torch.equal(seeds.branch_seeds(s, 4), s + wrapped)
    assert seeds.branch_seeds(s, 4).tolist()[1] == 1 + wrapped
    with pytest.raises(ValueError, match="branch"):
        seeds.branch_seeds(s, -1)


def test_seed_words_validates() -> None:
    assert seeds.seed_words("x", 2**32 + 7) == [7, 1]
    with pytest.raises(TypeError, match="int"):
        seeds.seed_words("x", True)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*64\)"):
        seeds.seed_words("x", -1)
