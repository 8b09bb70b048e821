"""One source per batch (OmniMAE): every batch from one source, per-source frequencies from the
repeat factors, deterministic per seed, ranks that add up to the one-process batch, resume."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from anymae.datasets.collate import collate_fn_for
from anymae.tasks.train.loader.source_sampler import SourceBatchSampler, SourceItems

SIZES = [40, 30]  # source 0 items 0..39, source 1 items 40..69


def _source(i: int) -> int:
    return 0 if i < SIZES[0] else 1


def test_every_batch_is_from_one_source_and_counts_follow_the_repeats() -> None:
    sampler = SourceBatchSampler(SIZES, [4, 3], repeats=[1.0, 0.5], seed=0)
    batches = list(sampler)
    # source 0: 40 items / 4 = 10 batches; source 1: floor(0.5 · 30) = 15 items / 3 = 5 batches
    assert sampler.counts == [10, 5] and len(batches) == len(sampler) == 15
    assert all(len({_source(i) for i in b}) == 1 for b in batches)
    assert Counter(_source(b[0]) for b in batches) == {0: 10, 1: 5}
    assert [len(b) for b in batches] == [4 if _source(b[0]) == 0 else 3 for b in batches]
    first = [i for b in batches if _source(b[0]) == 0 for i in b]
    assert sorted(first) == list(range(40))  # repeat 1: each item of source 0 once
    second = [i for b in batches if _source(b[0]) == 1 for i in b]
    assert len(set(second)) == 15  # repeat 0.5: half of source 1, no item twice


def test_repeats_above_one_revisit_items_and_the_frequencies_hold_over_epochs() -> None:
    counts = Counter()
    for epoch in range(20):
        for b in SourceBatchSampler(SIZES, 5, repeats=[2.0, 1.0], seed=3, epoch=epoch):
            counts[_source(b[0])] += 1
    assert counts == {0: 20 * 16, 1: 20 * 6}  # 80 / 5 and 30 / 5 per epoch
    items = [i for b in SourceBatchSampler(SIZES, 5, repeats=[2.0, 1.0], seed=3) for i in b if i < 40]
    assert Counter(items) == {i: 2 for i in range(40)}


def test_deterministic_per_seed_and_epoch() -> None:
    a = list(SourceBatchSampler(SIZES, 4, seed=1, epoch=2))
    assert a == list(SourceBatchSampler(SIZES, 4, seed=1, epoch=2))
    assert a != list(SourceBatchSampler(SIZES, 4, seed=1, epoch=3))
    assert a != list(SourceBatchSampler(SIZES, 4, seed=2, epoch=2))
    sched = SourceBatchSampler(SIZES, 4, seed=1, epoch=2).schedule()
    assert sched != sorted(sched)  # sources interleaved at random, not one after the other


def test_ranks_add_up_to_the_one_process_batch_and_resume_skips() -> None:
    one = list(SourceBatchSampler(SIZES, 4, seed=0, world_size=1))
    ranks = [list(SourceBatchSampler(SIZES, 2, seed=0, world_size=2, rank=r)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(one)
    for k, b in enumerate(one):
        assert ranks[0][k] + ranks[1][k] == b
    assert list(SourceBatchSampler(SIZES, 4, seed=0, start=6)) == one[6:]
    with pytest.raises(ValueError, match="no source fills one batch"):
        SourceBatchSampler([3, 2], 4)


def test_source_items_batch_as_one_key_modality_dicts() -> None:
    images = TensorDataset(torch.zeros(8, 3, 4, 4), torch.zeros(8, dtype=torch.long))
    clips = TensorDataset(torch.ones(6, 3, 2, 4, 4), torch.ones(6, dtype=torch.long))
    data = SourceItems({"image": images, "video": clips})
    sampler = SourceBatchSampler([8, 6], 2, seed=0)
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=collate_fn_for(data))
    seen = Counter()
    for x, y in loader:
        (name,) = x
        seen[name] += 1
        assert x[name].shape == ((2, 3, 4, 4) if name == "image" else (2, 3, 2, 4, 4))
        assert y.tolist() == ([0, 0] if name == "image" else [1, 1])
    assert seen == {"image": 4, "video": 3} and len(data) == 14 and data.locate(9) == (1, 1)


def test_a_run_chains_epochs_and_resumes_at_any_step() -> None:
    from anymae.tasks.train.loader.source_sampler import RunSourceBatchSampler

    whole = list(RunSourceBatchSampler(SIZES, 4, [1.0, 0.5], accum_iter=2, seed=0, stop=20))
    steps = (10 + 3) // 2  # source 0: 10 batches, source 1: floor(15 / 4) = 3; accum 2 -> 6 steps per epoch
    assert len(whole) == 40 and RunSourceBatchSampler(SIZES, 4, [1.0, 0.5], accum_iter=2, stop=1).steps == steps
    epochs = [b[0][0] for b in whole]
    assert epochs == [k // (2 * steps) for k in range(40)]
    for e in range(3):
        expect = list(SourceBatchSampler(SIZES, 4, [1.0, 0.5], seed=0, epoch=e))[: 2 * steps]
        assert [[i for _, i in b] for b in whole[2 * steps * e : 2 * steps * (e + 1)]] == expect
    resumed = list(RunSourceBatchSampler(SIZES, 4, [1.0, 0.5], accum_iter=2, seed=0, start=7, stop=20))
    assert resumed == whole[14:]
