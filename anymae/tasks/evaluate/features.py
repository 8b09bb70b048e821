"""Frozen-encoder feature extraction, once per dataset, for every probe and every modality.

The probes (linear, k-NN, attentive) train on the :class:`FeatureSet` this module produces, so the
encoder runs once per sample instead of once per sample per probe epoch. The only thing asked of
the model is the ``features(x)`` method of the core contract: it returns an object with
``tokens`` (B×N×D, prefix removed) and ``prefix`` (B×P×D, P may be 0). A feature kind is a pool
of the one vocabulary (:data:`anymae.core.pooling.POOLS`, pooled by
:func:`anymae.core.pooling.pool`) or a per-token kind ("tokens", "all"). Where nobody names a
pool, :func:`resolve_pool` takes the model's :func:`~anymae.core.pooling.default_pool` and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from anymae.core.pooling import POOLS, Pool, check_pool, default_pool, default_pool_reason, needs_cls, pool
from anymae.tasks.train.steps import to_device

Pooling = Literal[Pool, "tokens", "all"]
POOLINGS: tuple[str, ...] = POOLS + ("tokens", "all")


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


def resolve_pool(kind: Pool | None, model: nn.Module, *, where: str) -> Pool:
    """``kind``, or, when it is None, the model's default pool, announced in one printed line.

    Raises:
        ValueError: ``kind`` is not a pool of the vocabulary.
    """
    if kind is not None:
        check_pool(kind, where=where)
        return kind
    chosen = default_pool(model)
    print(f"{where}: pooling {chosen!r} (the model's default: {default_pool_reason(model)})")
    return chosen


def _features_of(feats: Any, kind: str) -> Tensor:
    """One batch of the model's ``Features`` -> B×D' (a pool) or B×T×D (tokens / all)."""
    if kind == "tokens":
        return feats.tokens  # B×N×D
    if kind == "all":
        return torch.cat([feats.prefix, feats.tokens], dim=1)  # B×(P+N)×D
    try:
        return pool(feats, kind)  # type: ignore[arg-type]  # B×D'
    except ValueError as err:
        raise ValueError(f"extract_features: {err}") from None


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
    pooling: Pooling | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> FeatureSet:
    """Run the frozen encoder over a loader and keep pooled or per-token features on the CPU.

    The model is moved to ``device`` and run in eval mode under ``torch.no_grad``; its previous
    train/eval mode is restored afterwards.

    Args:
        model: any module with ``features(x)`` returning ``tokens`` (B×N×D) and ``prefix`` (B×P×D).
        loader: yields ``(x, label)`` or ``(x, label, seed)``; x is the modality batch (anything
            with ``.to(device)``), label B integers. Seeds are ignored (no masking here).
        pooling: a pool of :data:`anymae.core.pooling.POOLS` ("cls", "mean", "max", "sum",
            "cls_max", "mean_max": N×D'), "tokens" (N×T×D, prefix removed) or "all" (prefix then
            tokens, N×(P+N)×D; EP's input for cls-trained encoders). None: the model's
            :func:`~anymae.core.pooling.default_pool` (quietly).
        device: where the encoder runs.
        progress: show a tqdm progress bar.

    Returns:
        FeatureSet with features N×D' (a pool) or N×T×D ("tokens"/"all") as float32 on the CPU,
        and labels N int64.

    Raises:
        ValueError: unknown pooling, a malformed batch, a cls pool on a model without prefix
            tokens, or an empty loader.
    """
    kind = pooling if pooling is not None else default_pool(model)
    return extract_feature_sets(model, loader, poolings=(kind,), device=device, progress=progress)[kind]


@torch.no_grad()
def extract_feature_sets(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    poolings: Sequence[Pooling],
    device: str | torch.device = "cpu",
    progress: bool = True,
    modality: str | None = None,
) -> dict[str, FeatureSet]:
    """Like :func:`extract_features`, for several poolings in one pass over the loader.

    Only the requested poolings are kept, so asking for "cls" and "mean" never holds per-token
    features in memory. `modality` (a cross-modal model): that modality's modality-only pass
    (`model.features(x, modality=...)`, CAV-MAE's audio-only / visual-only modes); None: the
    model's own features (joint for a cross-modal model). Returns {pooling: FeatureSet}.
    """
    unknown = [p for p in poolings if p not in POOLINGS]
    if unknown or not poolings:
        raise ValueError(f"extract_features: pooling must be one of {POOLINGS}, got {list(poolings)!r}")
    if not callable(getattr(model, "features", None)):
        raise ValueError(
            f"extract_features: model {type(model).__name__} has no features(x) method"
        )
    encoder = getattr(model, "encoder", None)
    cls_pools = [p for p in poolings if needs_cls(p)]
    if cls_pools and encoder is not None and getattr(encoder, "cls_token", "unknown") is None:
        raise ValueError(  # its prefix tokens, if any, are registers: never read one as the cls token
            f"extract_features: pooling {cls_pools[0]!r} needs a cls token, but the model's encoder has none; "
            "use 'mean' (or no pooling: the model's default)"
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
            feats = model.features(x) if modality is None else model.features(x, modality=modality)
            for pooling in poolings:
                out = _features_of(feats, pooling)
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
