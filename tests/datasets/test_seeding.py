"""Tests for anymae/datasets/seeding.py: per-sample seeds and SeededSamples."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from anymae.datasets.image.files import ImageFiles
from anymae.core.seeds import sample_seeds
from anymae.datasets.seeding import SeededSamples, sample_seed
from anymae.datasets.image.synthetic import write_image_folder
from anymae.datasets.image.transforms import pretrain_transform


def test_sample_seed_is_pinned():
    # Changing the hash breaks exact resume of runs saved by earlier versions.
    assert sample_seed(0, 0, 0) == 1317536309490288386
    assert sample_seed(1, 2, 3) == 1502106318634021856


def test_sample_seed_is_63_bit_and_distinct_over_a_grid():
    seeds = [sample_seed(b, e, i) for b, e, i in itertools.product(range(4), range(5), range(50))]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)
    # Fields are fixed-width words, so shifting a value between fields changes the seed.
    assert sample_seed(2**32, 0, 1) != sample_seed(0, 1, 2**32)
    assert sample_seed(0, 1, 0) != sample_seed(0, 0, 1)


def test_sample_seed_rejects_bad_inputs():
    with pytest.raises(ValueError, match="epoch"):
        sample_seed(0, -1, 0)
    with pytest.raises(TypeError, match="index"):
        sample_seed(0, 0, 1.5)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    root = write_image_folder(tmp_path_factory.mktemp("imgs"), 4, 2, size=24, seed=1)
    return SeededSamples(ImageFiles(root, pretrain_transform(16)), base_seed=7)


def _by_index(ds: SeededSamples, order: list[int]) -> dict[int, torch.Tensor]:
    return {i: ds[i][0] for i in order}


def test_same_seed_epoch_index_gives_same_tensor_in_any_order(augmented):
    n = len(augmented)
    forward = _by_index(augmented, list(range(n)))
    torch.manual_seed(123)  # the caller's RNG state must not matter
    backward = _by_index(augmented, list(reversed(range(n))))
    for i in range(n):
        assert torch.equal(forward[i], backward[i])


def test_worker_count_does_not_change_samples(augmented):
    def collect(workers: int) -> dict[int, tuple[torch.Tensor, int]]:
        loader = DataLoader(
            augmented,
            batch_size=3,
            shuffle=True,
            num_workers=workers,
            generator=torch.Generator().manual_seed(workers),
        )
        out = {}
        for x, _, s in loader:
            assert s.dtype == torch.int64
            for xi, si in zip(x, s.tolist(), strict=True):
                out[si] = xi
        return out

    serial, parallel = collect(0), collect(2)
    expected = {sample_seed(7, 0, i) for i in range(len(augmented))}
    assert set(serial) == set(parallel) == expected
    for s in serial:
        assert torch.equal(serial[s], parallel[s])


def test_epochs_give_different_crops(augmented):
    first = _by_index(augmented, list(range(len(augmented))))
    augmented.set_epoch(1)
    try:
        second = _by_index(augmented, list(range(len(augmented))))
        assert augmented[0][2] == sample_seed(7, 1, 0)
    finally:
        augmented.set_epoch(0)
    assert all(not torch.equal(first[i], second[i]) for i in first)


class _Draws(Dataset):
    """Returns one draw from each global RNG: ((torch, random, numpy), label)."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int):
        return (torch.rand(()).item(), random.random(), float(np.random.rand())), i


def test_all_three_global_rngs_are_seeded_and_callers_state_is_restored():
    ds = SeededSamples(_Draws(), base_seed=5)
    torch_state = torch.get_rng_state()
    py_state, np_state = random.getstate(), np.random.get_state()
    (a, label, s), (b, _, _) = ds[1], ds[1]
    assert a == b and label == 1 and s == sample_seed(5, 0, 1)
    assert ds[2][0] != a and all(0.0 <= v < 1.0 for v in a)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]


class _Bare(Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int):
        return torch.zeros(2)


def test_inner_dataset_must_return_a_pair():
    with pytest.raises(TypeError, match=r"_Bare.*\(x, label\)"):
        SeededSamples(_Bare(), 0)[0]


def test_a_batch_read_at_once_equals_its_items_read_one_by_one_and_restores_the_callers_rngs():
    ds = SeededSamples(_Draws(), base_seed=5)
    torch.manual_seed(11)
    random.seed(11)
    np.random.seed(11)
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()
    batch = ds.__getitems__([2, 0, 2, 1])
    assert batch == [ds[2], ds[0], ds[2], ds[1]]  # every item under its own seed, whatever its neighbours
    assert torch.equal(torch.get_rng_state(), states[0]) and random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2][1])


def test_a_batch_with_an_item_that_is_not_a_pair_names_the_dataset_and_restores_the_rngs():
    state = random.getstate()
    with pytest.raises(TypeError, match=r"_Bare.*\(x, label\)"):
        SeededSamples(_Bare(), 0).__getitems__([0])
    assert random.getstate() == state


def test_a_batchs_seeds_hashed_together_equal_numpys_seed_sequence_per_sample():
    rng = random.Random(0)
    for _ in range(40):
        base, epoch = rng.getrandbits(64), rng.getrandbits(rng.choice([1, 12, 64]))
        indices = [rng.getrandbits(rng.choice([1, 20, 64])) for _ in range(rng.randint(1, 70))]
        want = [int(np.random.SeedSequence([base & 0xFFFFFFFF, base >> 32, epoch & 0xFFFFFFFF, epoch >> 32,
                                            i & 0xFFFFFFFF, i >> 32]).generate_state(1, np.uint64)[0]) >> 1
                for i in indices]  # fmt: skip
        assert sample_seeds(base, epoch, indices) == want == [sample_seed(base, epoch, i) for i in indices]
    assert sample_seeds(0, 0, []) == []
    assert sample_seeds(1, 2, [3, 0]) == [sample_seed(1, 2, 3), sample_seed(1, 2, 0)]
    with pytest.raises(ValueError, match="index"):
        sample_seeds(0, 0, [1, -1])
