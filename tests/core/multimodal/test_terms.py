"""The contrastive InfoNCE and the per-modality reconstruction against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from anymae.core.losses import get_loss
from anymae.core.masking import MaskPlan
from anymae.core.multimodal import SpanReconstruction, info_nce
from anymae.core.skeleton.steps import Branch, BranchPlan, Decoded, Encoded, Pass
from anymae.core.tokens import Span, Tokens


def _hand_nce(a: torch.Tensor, v: torch.Tensor, tau: float) -> float:
    """-1/B Σ_j log( exp(s_jj) / Σ_i exp(s_ij) ), s_ij = cos(a_i, v_j) / τ (softmax over the audio axis)."""
    b = a.shape[0]
    sim = [[float(torch.dot(a[i], v[j]) / (a[i].norm() * v[j].norm())) / tau for j in range(b)] for i in range(b)]
    total = 0.0
    for j in range(b):
        total += sim[j][j] - math.log(sum(math.exp(sim[i][j]) for i in range(b)))
    return -total / b


def test_info_nce_single_direction_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    a, v = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    assert math.isclose(float(info_nce(a, v, 0.05)), _hand_nce(a, v, 0.05), rel_tol=1e-9)
    both = (_hand_nce(a, v, 0.05) + _hand_nce(v, a, 0.05)) / 2
    assert math.isclose(float(info_nce(a, v, 0.05, bidirectional=True)), both, rel_tol=1e-9)
    assert not math.isclose(float(info_nce(a, v, 0.05)), float(info_nce(v, a, 0.05)), rel_tol=1e-6)


def _state(pred: torch.Tensor, target: torch.Tensor, query: torch.Tensor) -> Pass:
    b, n = target.shape[:2]
    spans = (Span("audio", 0, 4, (4,), 3), Span("video", 4, 10, (6,), 5))
    tokens = Tokens(x=torch.zeros(b, n, 2), target=target, grid=(n,), spans=spans)
    keep = torch.stack([torch.tensor([i for i in range(n) if i not in row.tolist()]) for row in query])
    plan = MaskPlan(keep=keep, hide=query, restore=torch.argsort(torch.cat([keep, query], 1), 1))
    branch = Branch(BranchPlan(plan, query, torch.ones(query.shape)), Encoded(torch.zeros(b, 1, 2), 0),
                    Decoded(pred=pred))
    return Pass(tokens, target, [branch])


def test_span_reconstruction_averages_its_own_tokens_and_columns() -> None:
    torch.manual_seed(1)
    target = torch.randn(2, 10, 5)
    query = torch.tensor([[0, 1, 4, 5, 6], [2, 7, 8, 9, 3]])  # sample 0: 2 audio + 3 video; sample 1: 2 + 3
    query[1] = torch.tensor([2, 7, 8, 9, 5])  # sample 1: 1 audio, 4 video
    pred = torch.randn(2, 5, 5)
    state = _state(pred, target, query)
    errs_a, errs_v, per_a = [], [], []
    for b in range(2):
        row_a = []
        for q in range(5):
            t = int(query[b, q])
            if t < 4:
                e = float(((pred[b, q, :3] - target[b, t, :3]) ** 2).mean())
                errs_a.append(e)
                row_a.append(e)
            else:
                errs_v.append(float(((pred[b, q] - target[b, t]) ** 2).mean()))
        per_a.append(sum(row_a) / len(row_a))
    audio = SpanReconstruction("audio", get_loss("mse"))
    video = SpanReconstruction("video", get_loss("mse"))
    assert math.isclose(float(audio(state)), sum(errs_a) / len(errs_a), rel_tol=1e-6)
    assert math.isclose(float(video(state)), sum(errs_v) / len(errs_v), rel_tol=1e-6)
    per_sample = SpanReconstruction("audio", get_loss("mse"), per_sample=True)  # MultiMAE: mean of sample means
    assert math.isclose(float(per_sample(state)), sum(per_a) / 2, rel_tol=1e-6)
    assert float(SpanReconstruction("depth", get_loss("mse"))(state)) == 0.0  # a modality not in the batch


def test_a_batch_of_one_modality_has_no_contrastive_pairs() -> None:
    """CAV-MAE given only its audio: the contrastive term is 0 (no pairs), the audio loss is the model's."""
    import anymae

    torch.manual_seed(0)
    model = anymae.create_model("cavmae_tiny")
    audio = {"audio": model.tokenizer.example(2)["audio"]}
    out = model(audio, seeds=torch.arange(2))
    assert float(out.parts["contrastive"]) == 0.0 and "rec_video" in out.parts
    assert float(out.parts["rec_video"]) == 0.0 and float(out.loss) == pytest.approx(float(out.parts["rec_audio"]))


def test_reconstruction_pictures_map_each_modalitys_norm_pix_predictions_back() -> None:
    """CAV-MAE (norm_pix per modality): the scored tokens of `reconstruct` are the predictions in data
    units, each span with its own statistics; unscored tokens are the input."""
    import anymae

    torch.manual_seed(0)
    model = anymae.create_model("cavmae_tiny").eval()
    batch = model.tokenizer.example(2)
    out = model(batch, seeds=torch.arange(2))
    recon = model.reconstruct(out)
    raw = out.tokens.target
    for term in model.terms:
        if getattr(term, "modality", None) is None or term.norm is None:
            continue
        span = out.tokens.span(term.modality)
        a, b, p = span.start, span.end, span.target_dim
        mean, scale = term.norm.stats(raw[:, a:b, :p])
        expected = out.pred[:, a:b, :p] * scale + mean  # hand: x̂ = pred · σ + μ of the token itself
        tokens = model.tokenizer.tokenizers[term.modality](recon[term.modality]).target  # back to tokens
        hidden = out.loss_weight[:, a:b].bool()
        torch.testing.assert_close(tokens[hidden], expected[hidden], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(tokens[~hidden], raw[:, a:b, :p][~hidden], rtol=1e-5, atol=1e-5)
