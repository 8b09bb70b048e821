"""Cross-modal retrieval scores against hand-made similarity matrices and CAV-MAE's metric code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anymae.tasks.evaluate.retrieval import format_table, ranks, recall_metrics, retrieval_scores


def _reference_metrics(x: np.ndarray) -> dict[str, float]:
    """CAV-MAE's `compute_metrics` (src/retrieval.py), rewritten: position of the diagonal in its sorted row."""
    order = np.sort(-x, axis=1)
    ind = np.where(order - np.diag(-x)[:, None] == 0)[1]
    return {"R1": float(np.mean(ind == 0)), "R5": float(np.mean(ind < 5)), "R10": float(np.mean(ind < 10)),
            "MR": float(np.median(ind) + 1)}


def test_ranks_of_a_hand_made_matrix() -> None:
    sim = torch.tensor([
        [0.9, 0.1, 0.5],   # query 0: its own item first -> rank 1
        [0.8, 0.3, 0.7],   # query 1: two above it -> rank 3
        [0.2, 0.6, 0.4],   # query 2: one above it -> rank 2
    ])  # fmt: skip
    assert ranks(sim, torch.eye(3, dtype=torch.bool)).tolist() == [1, 3, 2]
    m = recall_metrics(sim, torch.eye(3, dtype=torch.bool), "a2v", ks=(1, 2))
    assert m == {"a2v_r1": pytest.approx(1 / 3), "a2v_r2": pytest.approx(2 / 3), "a2v_mean_rank": 2.0,
                 "a2v_median_rank": 2.0}
    # label matching: query 1's best positive is candidate 0 (same class) -> rank 1
    labels = torch.tensor([0, 0, 1])
    assert ranks(sim, labels[:, None] == labels[None, :]).tolist() == [1, 1, 2]


def test_ties_count_in_the_querys_favour_and_a_query_needs_a_positive() -> None:
    sim = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    assert ranks(sim, torch.eye(2, dtype=torch.bool)).tolist() == [1, 1]
    with pytest.raises(ValueError, match="at least one positive"):
        ranks(sim, torch.zeros(2, 2, dtype=torch.bool))


def test_both_directions_match_cavmaes_metric_code() -> None:
    g = torch.Generator().manual_seed(0)
    n = 40
    audio = F.normalize(torch.randn(n, 8, generator=g), dim=-1)
    video = F.normalize(audio + 0.9 * torch.randn(n, 8, generator=g), dim=-1)  # noisy partners
    out = retrieval_scores({"audio": audio, "video": video}, torch.arange(n), ["audio", "video"])
    for prefix, sim in (("a2v", audio @ video.T), ("v2a", video @ audio.T)):
        ref = _reference_metrics(sim.double().numpy())
        assert out[f"{prefix}_r1"] == pytest.approx(ref["R1"]) and out[f"{prefix}_r5"] == pytest.approx(ref["R5"])
        assert out[f"{prefix}_r10"] == pytest.approx(ref["R10"])
        assert out[f"{prefix}_median_rank"] == pytest.approx(ref["MR"])
    assert out["num_items"] == n and out["chance_r1"] == pytest.approx(1 / n)
    assert 0 < out["a2v_r1"] < 1 and out["a2v_r1"] != out["v2a_r1"]  # the two directions differ
    assert out["a2v_mean_rank"] == pytest.approx(float(ranks(audio @ video.T, torch.eye(n, dtype=torch.bool)).double().mean()))
    assert "a2v" in format_table(out) and "v2a" in format_table(out)


def test_label_matching_and_its_chance() -> None:
    feats = {"rgb": torch.eye(4), "depth": torch.eye(4)[[1, 0, 3, 2]]}  # partners swapped within each class
    labels = torch.tensor([0, 0, 1, 1])
    inst = retrieval_scores(feats, labels, ["rgb", "depth"])
    assert inst["r2d_r1"] == 0.0 and inst["r2d_mean_rank"] == 2.0  # the item itself is second (0 similarity ties)
    lab = retrieval_scores(feats, labels, ["rgb", "depth"], match="label")
    assert lab["r2d_r1"] == 1.0 and lab["d2r_r1"] == 1.0 and lab["chance_r1"] == 0.5
    with pytest.raises(ValueError, match="labelled data"):
        retrieval_scores(feats, torch.full((4,), -1), ["rgb", "depth"], match="label")
