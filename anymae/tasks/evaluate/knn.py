"""Weighted k-NN probe on L2-normalised features (the DINO / lightly k-NN classifier).

For a test feature ``q`` and the training bank ``{(f_i, y_i)}``, all L2-normalised:
``s_i = <q, f_i>`` (cosine similarity); take the k largest ``s_i``; each votes for its class
with weight ``exp(s_i / T)``; the prediction is the class with the largest summed weight.

Memory is bounded by chunking: test rows in blocks of ``batch_size``, the bank in blocks of
``bank_chunk``; a running top-k is merged across bank blocks, so the peak similarity block is
``batch_size × bank_chunk``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.labels import check_probe_labels


def _check(train: FeatureSet, test: FeatureSet, k: int, temperature: float) -> None:
    for name, fs in (("train", train), ("test", test)):
        if fs.features.ndim != 2:
            raise ValueError(
                f"knn_probe: {name}.features must be N×D pooled features (pooling 'cls' or "
                f"'mean'), got shape {tuple(fs.features.shape)}"
            )
    if test.dim != train.dim:
        raise ValueError(f"knn_probe: test has feature width {test.dim} but train has {train.dim}")
    if len(test) == 0:
        raise ValueError("knn_probe: test is empty")
    if not 1 <= k <= len(train):
        raise ValueError(f"knn_probe: k must be in [1, len(train)={len(train)}], got {k}")
    if temperature <= 0:
        raise ValueError(f"knn_probe: temperature must be > 0, got {temperature}")
    check_probe_labels(train.labels, test.labels, where="knn_probe")


@torch.no_grad()
def knn_predict(
    train: FeatureSet,
    test: FeatureSet,
    *,
    k: int = 20,
    temperature: float = 0.07,
    batch_size: int = 256,
    bank_chunk: int = 65536,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Weighted k-NN class predictions for every test row.

    Args:
        train: the bank, N×D features and N labels.
        test: M×D query features.
        k: neighbours per query (1 <= k <= N).
        temperature: T in the vote weight ``exp(sim / T)``.
        batch_size: test rows per block.
        bank_chunk: bank rows per block.
        device: where the similarities are computed.

    Returns:
        M int64 predicted classes (on the CPU).
    """
    _check(train, test, k, temperature)
    num_classes = train.num_classes
    bank_labels = train.labels.to(device)  # N
    predictions: list[Tensor] = []
    for start in range(0, len(test), batch_size):
        queries = F.normalize(test.features[start : start + batch_size].to(device).float(), dim=1)  # B×D
        top_sim = queries.new_full((queries.shape[0], 0), float("-inf"))  # B×0, grows to B×k
        top_idx = torch.zeros((queries.shape[0], 0), dtype=torch.long, device=device)  # B×0
        for bank_start in range(0, len(train), bank_chunk):
            bank = F.normalize(
                train.features[bank_start : bank_start + bank_chunk].to(device).float(), dim=1
            )  # Cb×D
            sim = queries @ bank.T  # B×Cb
            sim, idx = sim.topk(min(k, sim.shape[1]), dim=1)  # B×k'
            merged_sim = torch.cat([top_sim, sim], dim=1)  # B×(k+k')
            merged_idx = torch.cat([top_idx, idx + bank_start], dim=1)  # B×(k+k')
            top_sim, pos = merged_sim.topk(min(k, merged_sim.shape[1]), dim=1)  # B×k
            top_idx = merged_idx.gather(1, pos)  # B×k
        weights = (top_sim / temperature).exp()  # B×k
        votes = torch.zeros(queries.shape[0], num_classes, device=device)  # B×C
        votes.scatter_add_(1, bank_labels[top_idx], weights)
        predictions.append(votes.argmax(dim=1).cpu())
    return torch.cat(predictions)


def knn_probe(
    train: FeatureSet,
    test: FeatureSet,
    *,
    k: int = 20,
    temperature: float = 0.07,
    batch_size: int = 256,
    bank_chunk: int = 65536,
    device: str | torch.device = "cpu",
) -> float:
    """Top-1 accuracy (%) of the weighted k-NN classifier (see :func:`knn_predict`).

    Args:
        train: the bank, N×D features and labels.
        test: M×D features and labels.
        k: neighbours per query (DINO uses 20).
        temperature: vote temperature (0.07).
        batch_size: test rows per block.
        bank_chunk: bank rows per block.
        device: where the similarities are computed.

    Returns:
        100 × correct / M.
    """
    predictions = knn_predict(
        train, test, k=k, temperature=temperature, batch_size=batch_size,
        bank_chunk=bank_chunk, device=device,
    )
    return 100.0 * float((predictions == test.labels).float().mean())
