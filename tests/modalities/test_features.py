"""The features modality (LV-MAE's input): tokenizer, padding, per-sample counts, LV-MAE's size."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

import anymae
from anymae.modalities.features import FeatureBatch, FeaturesMAEConfig, FeatureTokenizer, build_features_mae

TINY = FeaturesMAEConfig(in_dim=8, embed_dim=16, depth=1, num_heads=2, decoder_embed_dim=16, decoder_depth=1,
                         decoder_num_heads=2, max_len=16, masking="similarity", mask_ratio=0.5)



def test_tokenizer_identity_when_widths_match() -> None:
    tok = FeatureTokenizer(16, 16, 32)
    assert isinstance(tok.proj, nn.Identity)
    rows = torch.randn(2, 5, 16)
    t = tok(rows)
    unit = F.normalize(rows, dim=-1)
    assert torch.equal(t.x, unit) and torch.equal(t.target, unit)  # LV-MAE: input = target = normalized rows
    assert t.grid == (5,) and t.valid is None
    pos = tok.pos_embed(t.grid)  # 1-D sin-cos (MAE concat layout) on 0..4
    assert torch.allclose(pos[0, 3, 0], torch.tensor(3.0).sin())
    assert torch.allclose(pos[0, 3, 8], torch.tensor(3.0).cos())


def test_tokenizer_projects_other_widths_and_zeroes_padding() -> None:
    tok = FeatureTokenizer(8, 16, 32, l2_normalize=False)
    assert isinstance(tok.proj, nn.Linear)
    rows = torch.randn(2, 6, 8)
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    t = tok(FeatureBatch(rows, valid))
    assert t.x.shape == (2, 6, 16) and torch.equal(t.valid, valid)
    assert torch.equal(t.target[1, 4:], torch.zeros(2, 8)) and torch.equal(t.target[0], rows[0])
    assert tok(FeatureBatch(rows, torch.ones(2, 6, dtype=torch.bool))).valid is None  # no padding: plain path
    with pytest.raises(ValueError, match="B×L×8"):
        tok(torch.randn(2, 6, 9))
    with pytest.raises(ValueError, match="max_len=32"):
        tok(torch.randn(1, 33, 8))


def _batch(seed: int = 0) -> FeatureBatch:
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(3, 10, 8, generator=g)
    valid = torch.arange(10)[None] < torch.tensor([10, 7, 4])[:, None]
    return FeatureBatch(rows, valid)


def test_padding_is_never_scored_and_its_values_never_matter() -> None:
    torch.manual_seed(0)
    model = build_features_mae("t", TINY).eval()
    batch = _batch()
    out = model(batch, seeds=torch.arange(3))
    assert torch.equal(out.loss_weight * ~batch.valid, torch.zeros(3, 10))  # padding never in the loss
    visible = ((1 - out.mask) * batch.valid).sum(1)
    assert visible.tolist() == [5, 3, 2]  # int(L_i · 0.5) per sample, exact
    assert out.loss_weight.sum(1).tolist() == [5, 4, 2]
    garbage = FeatureBatch(batch.features.masked_fill(~batch.valid.unsqueeze(-1), 1e3), batch.valid)
    again = model(garbage, seeds=torch.arange(3))
    assert torch.equal(again.loss, out.loss) and torch.equal(again.pred, out.pred)


def test_padding_amount_never_changes_the_real_tokens_outputs() -> None:
    torch.manual_seed(0)
    model = build_features_mae("t", TINY).eval()
    batch = _batch()
    full = model(batch, seeds=torch.arange(3))
    short = FeatureBatch(batch.features[1:2, :7], None)  # sample 1 alone, unpadded (similarity: no random draw)
    alone = model(short, seeds=torch.arange(1))
    assert torch.allclose(full.pred[1, :7], alone.pred[0], atol=1e-5)
    assert torch.allclose(full.loss_weight[1, :7], alone.loss_weight[0])
    feats = model.features(batch).tokens[1, :7]
    assert torch.allclose(feats, model.features(short).tokens[0], atol=1e-5)


def test_cos_loss_is_one_minus_cosine() -> None:
    torch.manual_seed(0)
    model = build_features_mae("t", TINY, cos_loss=True)
    out = model(_batch(), seeds=torch.arange(3))
    cos = F.cosine_similarity(out.pred, out.target, dim=-1)  # B×N
    expected = ((1 - cos) * out.loss_weight).sum() / out.loss_weight.sum()
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_lvmae_base_parameter_count() -> None:
    with torch.device("meta"):
        model = anymae.create_model("lvmae_base")
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    encoder = sum(v for n, v in trainable.items() if n.startswith(("encoder.", "tokenizer.")))
    assert round(sum(trainable.values()) / 1e6, 2) == 429.35  # crossmodal_and_zoo.md A7 (computed)
    assert round(encoder / 1e6, 2) == 403.08
    assert isinstance(model.tokenizer.proj, nn.Identity)  # 1024-d embeddings, no patch embedding
