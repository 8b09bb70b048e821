"""The stream's splitting rule: shard order per epoch, contiguous ranges per rank and loader worker."""

from __future__ import annotations

import pytest

from anymae.tasks.train.loader.stream import WorkerPlan, own_micro_batches, worker_plan

COUNTS = [7, 3, 5, 1, 9, 7]  # uneven shards, 32 samples


def _indices(plan: WorkerPlan, counts: list[int]) -> list[int]:
    """The dataset indices a worker's plan reads (shard start + position)."""
    starts = [sum(counts[:k]) for k in range(len(counts))]
    return [starts[shard] + p for shard, lo, hi in plan.segments for p in range(lo, hi)]


def _plans(counts: list[int], epoch: int, **kw: int) -> dict[tuple[int, int], WorkerPlan]:
    return {(rank, w): worker_plan(counts, epoch=epoch, seed=3, batch_size=2, world_size=2, rank=rank, accum_iter=2,
                                   workers=2, worker=w, **kw)
            for rank in (0, 1) for w in (0, 1)}  # fmt: skip


@pytest.mark.parametrize("epoch", [0, 1, 5])
def test_two_ranks_by_two_workers_read_every_sample_exactly_once(epoch: int) -> None:
    plans = _plans(COUNTS, epoch)
    read = [i for plan in plans.values() for i in _indices(plan, COUNTS)]
    assert sorted(read) == list(range(32))  # 32 = 4 optimizer steps of 2 ranks × batch 2 × accum 2
    for (rank, w), plan in plans.items():
        assert len(_indices(plan, COUNTS)) == plan.own * 2  # batch 2 per owned micro-batch
        assert plan.skip == 0 and plan.take == plan.own
    for rank in (0, 1):  # every rank yields the same number of micro-batches (DDP would hang otherwise)
        assert plans[(rank, 0)].take + plans[(rank, 1)].take == 8


def test_each_rank_reads_a_contiguous_range_of_the_epoch_order_and_the_order_changes() -> None:
    first, second = _plans(COUNTS, 0), _plans(COUNTS, 1)
    shards = {rank: {s for w in (0, 1) for s, _, _ in first[(rank, w)].segments} for rank in (0, 1)}
    assert len(shards[0] & shards[1]) <= 1  # ranks share at most the shard their ranges meet in
    assert [_indices(first[k], COUNTS) for k in first] != [_indices(second[k], COUNTS) for k in second]
    assert len({p.seed for p in first.values()}) == 4  # one shuffle seed per (rank, worker)


def test_the_tail_smaller_than_one_step_is_left_out_and_moves_with_the_shard_order() -> None:
    counts = [5, 4, 4, 6, 2, 9, 3]  # 33 samples: 4 steps of 8, one sample left over
    left = set()
    for epoch in range(6):
        read = [i for plan in _plans(counts, epoch).values() for i in _indices(plan, counts)]
        assert len(read) == len(set(read)) == 32
        (missing,) = set(range(33)) - set(read)
        left.add(missing)
    assert len(left) > 1


def test_micro_batches_go_round_robin_over_loader_workers_across_epochs() -> None:
    # 5 micro-batches per epoch, 2 workers: global micro-batch g goes to worker g % 2
    assert own_micro_batches(0, 5, 2, 0) == [0, 2, 4] and own_micro_batches(0, 5, 2, 1) == [1, 3]
    assert own_micro_batches(1, 5, 2, 0) == [1, 3] and own_micro_batches(1, 5, 2, 1) == [0, 2, 4]


def test_a_resumed_plan_skips_the_micro_batches_the_steps_before_consumed() -> None:
    full = _plans(COUNTS, 1)
    steps = 4  # per epoch; micro-batches 8 per epoch, run micro-batch g = 8 + m in epoch 1
    resumed = _plans(COUNTS, 1, first=(steps + 3) * 2)  # resume at optimizer step 3 of epoch 1
    for key, plan in resumed.items():
        assert plan.segments == full[key].segments and plan.seed == full[key].seed  # the same stream
        assert plan.skip + plan.take == plan.own
    for rank in (0, 1):
        assert sum(resumed[(rank, w)].skip for w in (0, 1)) == 6  # 3 steps × accum 2 micro-batches
        assert sum(resumed[(rank, w)].take for w in (0, 1)) == 2


def test_a_dataset_smaller_than_one_step_is_refused() -> None:
    with pytest.raises(ValueError, match="fewer than one optimizer step"):
        worker_plan([3], epoch=0, seed=0, batch_size=2, world_size=2, rank=0, accum_iter=1, workers=1, worker=0)
