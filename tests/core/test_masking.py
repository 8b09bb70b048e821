from __future__ import annotations

import pytest
import torch

from anymae.core.masking import (
    BlockMasking,
    RandomMasking,
    SampleRNG,
    gather_tokens,
    make_plan,
    plan_from_noise,
)


def test_plan_counts_disjoint_and_restore_inverts_shuffle() -> None:
    noise = torch.rand(5, 196)
    plan = plan_from_noise(noise, 49)
    assert plan.keep.shape == (5, 49) and plan.hide.shape == (5, 147)
    for b in range(5):
        keep, hide = set(plan.keep[b].tolist()), set(plan.hide[b].tolist())
        assert not keep & hide and keep | hide == set(range(196))
    shuffled = torch.cat([plan.keep, plan.hide], dim=1)
    assert torch.equal(torch.gather(shuffled, 1, plan.restore), torch.arange(196).expand(5, -1))
    assert torch.equal(plan.mask.sum(1), torch.full((5,), 147.0))


def test_smallest_noise_is_kept_as_the_reference() -> None:
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3]])
    plan = plan_from_noise(noise, 2)
    assert plan.keep.tolist() == [[1, 3]]
    assert plan.mask.tolist() == [[1.0, 0.0, 1.0, 0.0]]


def test_mae_keep_count_truncates() -> None:
    assert RandomMasking(0.75).num_keep(196) == 49
    assert RandomMasking(0.8).num_keep(512) == 102  # Audio-MAE: 102 kept of 512
    assert RandomMasking(0.6).num_keep(64) == 25


@pytest.mark.parametrize("keep", [0, 10])
def test_plan_refuses_empty_sides(keep: int) -> None:
    with pytest.raises(ValueError, match="num_keep"):
        plan_from_noise(torch.rand(2, 10), keep)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_ratio_out_of_range_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="mask ratio"):
        RandomMasking(ratio)


def test_too_few_tokens_for_the_ratio_names_the_problem() -> None:
    with pytest.raises(ValueError, match="leaves no visible"):
        make_plan(RandomMasking(0.9), (3, 3), 2, device="cpu")  # int(9 * 0.1) = 0 kept


def test_per_sample_seeds_make_masks_batch_independent() -> None:
    seeds = torch.tensor([11, 22, 33])
    full = make_plan(RandomMasking(0.75), (8, 8), 3, device="cpu", seeds=seeds)
    alone = make_plan(RandomMasking(0.75), (8, 8), 1, device="cpu", seeds=seeds[1:2])
    assert torch.equal(full.mask[1:2], alone.mask)
    again = make_plan(RandomMasking(0.75), (8, 8), 3, device="cpu", seeds=seeds)
    assert torch.equal(full.keep, again.keep)
    assert not torch.equal(full.mask[0], full.mask[1])


def test_generator_makes_batched_draw_deterministic() -> None:
    a = make_plan(RandomMasking(0.5), (4, 4), 2, device="cpu", generator=torch.Generator().manual_seed(3))
    b = make_plan(RandomMasking(0.5), (4, 4), 2, device="cpu", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.keep, b.keep)


def test_injected_noise_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="injected noise"):
        make_plan(RandomMasking(0.5), (4, 4), 2, device="cpu", noise=torch.rand(2, 15))


def _components(mask: torch.Tensor) -> int:
    """4-connected components of a 2-D {0,1} mask."""
    h, w = mask.shape
    seen = torch.zeros_like(mask, dtype=torch.bool)
    count = 0
    for i in range(h):
        for j in range(w):
            if mask[i, j] and not seen[i, j]:
                count += 1
                stack = [(i, j)]
                while stack:
                    y, x = stack.pop()
                    if 0 <= y < h and 0 <= x < w and mask[y, x] and not seen[y, x]:
                        seen[y, x] = True
                        stack += [(y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)]
    return count


def test_block_masks_are_blocks() -> None:
    strategy = BlockMasking(0.4)
    plan = make_plan(strategy, (14, 14), 8, device="cpu", seeds=torch.arange(8))
    assert torch.equal(plan.mask.sum(1), torch.full((8,), float(int(196 * 0.4))))
    random_plan = make_plan(RandomMasking(0.4), (14, 14), 8, device="cpu", seeds=torch.arange(8))
    block_parts = [_components(m.view(14, 14)) for m in plan.mask]
    random_parts = [_components(m.view(14, 14)) for m in random_plan.mask]
    # a few rectangles (plus a rare random fill) versus dozens of scattered islands
    assert max(block_parts) <= 12 and min(random_parts) > 2 * max(block_parts)


def test_sample_rng_seeds_and_shapes() -> None:
    rng = SampleRNG(2, seeds=[1, 2])
    a = rng.rand(3, 4)
    assert a.shape == (2, 3, 4)
    assert torch.equal(a[0], torch.rand(3, 4, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="seeds for a batch"):
        SampleRNG(3, seeds=[1, 2])


def test_gather_tokens_broadcasts_a_shared_table() -> None:
    table = torch.arange(12.0).view(1, 6, 2)
    idx = torch.tensor([[5, 0], [1, 2]])
    out = gather_tokens(table, idx)
    assert out.shape == (2, 2, 2)
    assert out[0, 0].tolist() == [10.0, 11.0] and out[1, 1].tolist() == [4.0, 5.0]


def test_make_masking_by_name_and_unknown_name_lists_choices() -> None:
    from anymae.core.masking import MASKINGS, make_masking

    strategy = make_masking("random", 0.6)
    assert isinstance(strategy, RandomMasking) and strategy.ratio == 0.6
    with pytest.raises(ValueError, match="unknown masking 'nope'; expected one of block, dcp"):
        make_masking("nope", 0.5)
    assert {"random", "block"} <= set(MASKINGS)


def test_make_plan_passes_the_grid_to_num_keep() -> None:
    seen: list[tuple[int, tuple[int, ...] | None]] = []

    class Recorder(RandomMasking):
        def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
            seen.append((num_tokens, grid))
            return 3

    plan = make_plan(Recorder(0.5), (2, 4), 2, device="cpu", generator=torch.Generator().manual_seed(0))
    assert seen == [(8, (2, 4))] and plan.keep.shape == (2, 3)
