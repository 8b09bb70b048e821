"""Frozen-encoder feature extraction, once per dataset, for every probe and every modality.

The probes (linear, k-NN, attentive) train on the :class:`FeatureSet` this module produces, so the
encoder runs once per sample instead of once per sample per probe epoch. The only thing asked of
the model is the ``features(x)`` method of the core contract: it returns an object with
``tokens`` (B×N×D, prefix removed), ``prefix`` (B×P×D, P may be 0) and ``pooled(kind) -> B×D``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from anymae.tasks.train.steps import to_device

Pooling = Literal["cls", "mean", "tokens", "all"]
POOLINGS: tuple[str, ...] = ("cls", "mean", "tokens", "all")


@dataclass
class FeatureSet:
    """Precomputed features with their labels.

    Attributes:
        features: N×D pooled features, or N×T×D per-token features (pooling "tokens" / "all").
        labels: N int64 class indices.
    """

    features: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.features.ndim not in (2, 3):
            raise ValueError(
                f"FeatureSet.features: expected N×D or N×T×D, got shape {tuple(self.features.shape)}"
            )
        if self.labels.ndim != 1 or self.labels.dtype != torch.long:
            raise ValueError(
                "FeatureSet.labels: expected a 1-D int64 tensor, got "
                f"shape {tuple(self.labels.shape)} dtype {self.labels.dtype}"
            )
        if self.labels.shape[0] != self.features.shape[0]:
            raise ValueError(
                f"FeatureSet: features hold {self.features.shape[0]} samples but labels hold "
                f"{self.labels.shape[0]}"
            )
        if self.labels.numel() and int(self.labels.min()) < 0:
            raise ValueError(f"FeatureSet.labels: expected labels >= 0, got {int(self.labels.min())}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def dim(self) -> int:
        """Feature width D."""
        return int(self.features.shape[-1])

    @property
    def num_classes(self) -> int:
        """1 + the largest label (0 for an empty set)."""
        return int(self.labels.max()) + 1 if len(self) else 0


def _pool(feats: Any, pooling: str) -> Tensor:
    """One batch of the model's ``Features`` -> B×D (cls / mean) or B×T×D (tokens / all)."""
    if pooling == "tokens":
        return feats.tokens  # B×N×D
    if pooling == "all":
        return torch.cat([feats.prefix, feats.tokens], dim=1)  # B×(P+N)×D
    if pooling == "cls" and feats.prefix.shape[1] == 0:
        raise ValueError(
            "extract_features: pooling='cls' but the model has no prefix (cls) token "
            "(Features.prefix has P=0); use pooling='mean'"
        )
    return feats.pooled(pooling)  # B×D


def _split_batch(batch: Any, index: int) -> tuple[Any, Tensor]:
    """A loader item ``(x, label)`` or ``(x, label, seed)`` -> (x, B labels as int64)."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise ValueError(
            f"extract_features: loader batch {index} must be a tuple (x, label) or "
            f"(x, label, seed), got {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        )
    x, labels = batch[0], batch[1]
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"extract_features: loader batch {index} labels must be a 1-D integer tensor, got "
            f"shape {tuple(labels.shape)} dtype {labels.dtype}"
        )
    return x, labels.long()


def extract_features(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    pooling: Pooling = "cls",
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> FeatureSet:
    """Run the frozen encoder over a loader and keep pooled or per-token features on the CPU.

    The model is moved to ``device`` and run in eval mode under ``torch.no_grad``; its previous
    train/eval mode is restored afterwards.

    Args:
        model: any module with ``features(x)`` returning ``tokens`` (B×N×D), ``prefix`` (B×P×D)
            and ``pooled(kind) -> B×D``.
        loader: yields ``(x, label)`` or ``(x, label, seed)``; x is the modality batch (anything
            with ``.to(device)``), label B integers. Seeds are ignored (no masking here).
        pooling: "cls" (prefix[:, 0], B×D), "mean" (tokens.mean(1), B×D), "tokens" (B×N×D,
            prefix removed) or "all" (prefix then tokens, B×(P+N)×D; EP's input for cls-trained
            encoders).
        device: where the encoder runs.
        progress: show a tqdm progress bar.

    Returns:
        FeatureSet with features N×D ("cls"/"mean") or N×T×D ("tokens"/"all") as float32 on the
        CPU, and labels N int64.

    Raises:
        ValueError: unknown pooling, a malformed batch, "cls" on a model without prefix tokens,
            or an empty loader.
    """
    return extract_feature_sets(model, loader, poolings=(pooling,), device=device, progress=progress)[pooling]


@torch.no_grad()
def extract_feature_sets(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    poolings: Sequence[Pooling],
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, FeatureSet]:
    """Like :func:`extract_features`, for several poolings in one pass over the loader.

    Only the requested poolings are kept, so asking for "cls" and "mean" never holds per-token
    features in memory. Returns {pooling: FeatureSet}.
    """
    unknown = [p for p in poolings if p not in POOLINGS]
    if unknown or not poolings:
        raise ValueError(f"extract_features: pooling must be one of {POOLINGS}, got {list(poolings)!r}")
    if not callable(getattr(model, "features", None)):
        raise ValueError(
            f"extract_features: model {type(model).__name__} has no features(x) method"
        )
    was_training = model.training
    model.to(device)
    model.eval()
    chunks: dict[str, list[Tensor]] = {p: [] for p in poolings}
    label_chunks: list[Tensor] = []
    try:
        for index, batch in enumerate(tqdm(loader, desc="features", disable=not progress)):
            x, labels = _split_batch(batch, index)
            x = to_device(x, device)
            feats = model.features(x)
            for pooling in poolings:
                out = _pool(feats, pooling)
                if out.shape[0] != labels.shape[0]:
                    raise ValueError(
                        f"extract_features: loader batch {index} has {labels.shape[0]} labels but "
                        f"the model returned {out.shape[0]} feature rows"
                    )
                chunks[pooling].append(out.detach().float().cpu())
            label_chunks.append(labels.cpu())
    finally:
        model.train(was_training)
    if not label_chunks:
        raise ValueError("extract_features: the loader yielded no batches")
    labels = torch.cat(label_chunks)
    return {p: FeatureSet(features=torch.cat(c), labels=labels) for p, c in chunks.items()}
