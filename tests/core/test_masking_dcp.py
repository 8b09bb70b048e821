"""Dynamic channel & patch masking (ChA-MAEViT's DCP) in core/masking.py."""

from __future__ import annotations

import pytest
import torch

from anymae.core.masking import DynamicChannelPatchMasking, SampleRNG, make_masking, make_plan


def _plan(strategy: DynamicChannelPatchMasking, grid: tuple[int, ...], seeds: list[int]):
    return make_plan(strategy, grid, len(seeds), device="cpu", seeds=torch.tensor(seeds))


def _hidden(plan, grid):
    return plan.mask.view(plan.mask.shape[0], grid[0], -1)  # B×C×P, 1 = hidden


def test_registered_and_reference_keep_counts() -> None:
    dcp = make_masking("dcp", 0.75, p_patch=1.0, p_channel=0.0)
    assert isinstance(dcp, DynamicChannelPatchMasking)
    assert dcp.keep_per_channel(196) == 49  # int(0.25 * 196)
    assert DynamicChannelPatchMasking(0.25).keep_per_channel(16) == 12  # So2Sat 32 px / patch 8
    assert dcp.num_keep(5 * 196, (5, 14, 14)) == 5 * 49  # injected noise: the patch-only count


def test_patch_mode_keeps_the_same_count_in_every_channel() -> None:
    grid = (3, 4, 4)
    plan = _plan(DynamicChannelPatchMasking(0.75, p_patch=1.0, p_channel=0.0), grid, [1, 2, 3])
    hidden = _hidden(plan, grid)
    assert plan.keep.shape == (3, 3 * 4)
    assert torch.equal((1 - hidden).sum(-1), torch.full((3, 3), 4.0))  # int(0.25 * 16) = 4 per channel
    assert not torch.equal(hidden[0], hidden[1])  # own draw per sample


def test_channel_mode_hides_whole_channels_shared_by_the_batch() -> None:
    grid = (5, 2, 2)
    dcp = DynamicChannelPatchMasking(0.75, p_patch=0.0, p_channel=1.0)
    seen = set()
    for s in range(40):
        plan = _plan(dcp, grid, [s, s + 100])
        hidden = _hidden(plan, grid)
        per_channel = hidden[0].mean(-1)  # C: 1 = whole channel hidden, 0 = whole channel visible
        assert set(per_channel.tolist()) <= {0.0, 1.0}
        assert torch.equal(hidden[0], hidden[1])  # same channels for the whole batch
        k = int(per_channel.sum())
        assert 1 <= k <= 4 and plan.keep.shape[1] == (5 - k) * 4
        assert dcp.last_mode == "channel" and dcp.last_hidden_channels == torch.nonzero(per_channel).flatten().tolist()
        seen.add(k)
    assert seen == {1, 2, 3, 4}  # k uniform in [1, C-1]


def test_both_mode_combines_channel_and_patch_masks() -> None:
    grid = (4, 4, 4)
    dcp = DynamicChannelPatchMasking(0.25, p_patch=0.0, p_channel=0.0)  # So2Sat's combination
    ks = set()
    for s in range(30):
        plan = _plan(dcp, grid, [s, s + 7])
        hidden = _hidden(plan, grid)
        k = len(dcp.last_hidden_channels)
        ks.add(k)
        for b in range(2):
            visible = (1 - hidden[b]).sum(-1)  # C
            for c in range(4):
                assert visible[c] == (0 if c in dcp.last_hidden_channels else 12)
        assert plan.keep.shape[1] == (4 - k) * 12
    assert 0 in ks and max(ks) == 3  # without at_least_one_channel, k = 0 happens (patch masking only)
    dcp1 = DynamicChannelPatchMasking(0.25, p_patch=0.0, p_channel=0.0, at_least_one_channel=True)
    assert all((_plan(dcp1, grid, [s]), len(dcp1.last_hidden_channels))[1] >= 1 for s in range(20))


def test_mode_frequencies_follow_the_probabilities() -> None:
    dcp = DynamicChannelPatchMasking(0.75, p_patch=0.5, p_channel=0.3)
    counts = {"patch": 0, "channel": 0, "both": 0}
    for s in range(600):
        _plan(dcp, (3, 2, 2), [3 * s, 3 * s + 1])
        counts[dcp.last_mode] += 1  # type: ignore[index]
    assert abs(counts["patch"] / 600 - 0.5) < 0.07
    assert abs(counts["channel"] / 600 - 0.3) < 0.07
    assert abs(counts["both"] / 600 - 0.2) < 0.07


def test_reproducible_from_seeds_and_independent_of_batch_order() -> None:
    grid = (4, 3, 3)
    dcp = DynamicChannelPatchMasking(0.5, p_patch=0.3, p_channel=0.3)
    for s in range(10):
        seeds = [s, 50 + s, 99 + s]
        a, b = _plan(dcp, grid, seeds), _plan(dcp, grid, seeds)
        assert torch.equal(a.keep, b.keep) and torch.equal(a.restore, b.restore)
        mode = dcp.last_mode
        c = _plan(dcp, grid, seeds[::-1])
        assert dcp.last_mode == mode
        assert torch.equal(c.mask, a.mask.flip(0))  # each sample's mask depends on its seed only


def test_generator_path_and_single_channel() -> None:
    gen = torch.Generator().manual_seed(0)
    dcp = DynamicChannelPatchMasking(0.75, p_patch=0.0, p_channel=1.0)
    plan = make_plan(dcp, (1, 4, 4), 2, device="cpu", generator=gen)  # one channel: channel mode -> patches
    assert dcp.last_mode == "patch" and plan.keep.shape == (2, 4)
    noise, num_keep = dcp.noise((3, 2, 2), SampleRNG(2, generator=gen))
    assert noise.shape == (2, 12)
    assert num_keep == int((noise < 0.5).sum(1)[0]) == int((noise < 0.5).sum(1)[1])  # the draw's own count
    assert dcp.num_keep(12, (3, 2, 2)) == 3  # injected noise: the patch-only count


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="p_patch"):
        DynamicChannelPatchMasking(0.5, p_patch=0.7, p_channel=0.5)
    with pytest.raises(ValueError, match="grid"):
        DynamicChannelPatchMasking(0.5).num_keep(16, (16,))
