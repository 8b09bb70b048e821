"""Span bookkeeping: MultiTokenizer's concatenation, positions, padded targets; exact per-span counts."""

from __future__ import annotations

import pytest
import torch

from anymae.core.masking import RandomMasking, make_plan
from anymae.core.masking.plan import MaskContext
from anymae.core.multimodal import ModalityBatch, MultiTokenizer, SpanMasking
from anymae.modalities.audio import AudioTokenizer
from anymae.modalities.image import ImageTokenizer


def _tokenizer(embed: bool = False) -> MultiTokenizer:
    torch.manual_seed(0)
    return MultiTokenizer({"audio": AudioTokenizer(32, 16, 8, 32), "video": ImageTokenizer(16, 4, 3, 32)},
                          modality_embed=embed)


def _batch(b: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {"audio": torch.randn(b, 1, 32, 16), "video": torch.randn(b, 3, 16, 16)}


def test_spans_targets_and_positions_are_each_modalitys_own() -> None:
    tok = _tokenizer()
    batch = _batch()
    tokens = tok(batch)
    audio, video = tok.tokenizers["audio"](batch["audio"]), tok.tokenizers["video"](batch["video"])
    assert [(s.modality, s.start, s.end, s.grid, s.target_dim) for s in tokens.spans] == [
        ("audio", 0, 8, (4, 2), 64), ("video", 8, 24, (4, 4), 48)]
    assert tokens.grid == (24,) and tokens.target.shape == (3, 24, 64)
    assert torch.equal(tokens.x, torch.cat([audio.x, video.x], 1))
    assert torch.equal(tokens.target[:, :8], audio.target)
    assert torch.equal(tokens.target[:, 8:, :48], video.target) and not tokens.target[:, 8:, 48:].any()
    pos = tok.positions(tokens)
    assert torch.equal(pos[:, :8], tok.tokenizers["audio"].pos_embed((4, 2)))
    assert torch.equal(pos[:, 8:], tok.tokenizers["video"].pos_embed((4, 4)))
    back = tok.untokenize(tokens.target, tokens)  # targets are the patch values: exact round trip
    assert isinstance(back, ModalityBatch) and all(torch.equal(back[m], batch[m]) for m in batch)


def test_modality_embedding_is_added_per_span_and_subsets_work() -> None:
    tok = _tokenizer(embed=True)
    batch = _batch()
    tokens = tok(batch)
    plain = tok.tokenizers["video"](batch["video"]).x
    assert torch.equal(tokens.x[:, 8:], plain + tok.modality_embed["video"])
    only = tok({"video": batch["video"]})
    assert [s.modality for s in only.spans] == ["video"] and only.num_tokens == 16
    with pytest.raises(ValueError, match="unknown modality key"):
        tok({"video": batch["video"], "depth": batch["video"]})
    with pytest.raises(TypeError, match="mapping modality"):
        tok(batch["video"])


def test_span_masking_counts_exact_and_restore_is_a_permutation_per_span() -> None:
    tok = _tokenizer()
    tokens = tok(_batch(5))
    masking = SpanMasking({"audio": RandomMasking(0.75), "video": RandomMasking(0.5)})
    plan = make_plan(masking, tokens.grid, 5, device="cpu", seeds=torch.arange(5), context=MaskContext(tokens=tokens))
    k_audio, k_video = int(8 * 0.25), int(16 * 0.5)
    assert plan.keep.shape == (5, k_audio + k_video)
    n = torch.arange(24)
    for i in range(5):
        assert torch.equal(torch.cat([plan.keep[i], plan.hide[i]])[plan.restore[i]], n)  # one permutation
        keep = plan.keep[i]
        assert torch.equal(((keep < 8)).nonzero().flatten(), torch.arange(k_audio))  # kept grouped, audio first
        assert int((keep < 8).sum()) == k_audio and int((keep >= 8).sum()) == k_video
        for lo, hi in ((0, 8), (8, 24)):  # each span's kept + hidden tokens are exactly that span
            inside = torch.cat([keep, plan.hide[i]])
            inside = inside[(inside >= lo) & (inside < hi)]
            assert torch.equal(inside.sort().values, torch.arange(lo, hi))
    again = make_plan(masking, tokens.grid, 5, device="cpu", seeds=torch.arange(5), context=MaskContext(tokens=tokens))
    assert torch.equal(again.keep, plan.keep)


def test_one_span_plan_is_the_strategys_own_plan() -> None:
    tok = MultiTokenizer({"image": ImageTokenizer(16, 4, 3, 32)})
    tokens = tok({"image": torch.randn(4, 3, 16, 16)})
    seeds = torch.arange(10, 14)
    alone = make_plan(RandomMasking(0.75), (4, 4), 4, device="cpu", seeds=seeds)
    spans = make_plan(SpanMasking({"image": RandomMasking(0.75)}), tokens.grid, 4, device="cpu", seeds=seeds,
                      context=MaskContext(tokens=tokens))
    assert torch.equal(alone.keep, spans.keep) and torch.equal(alone.mask, spans.mask)
