"""Probing a frozen encoder: features once, then k-NN, linear and attentive probes on them.

Protocols (see their modules): `knn` weighted k-NN (cosine, T 0.07, k 20); `linear` MAE's linear
probe (BatchNorm without affine + Linear, LARS, blr 0.1 by default); `attentive` the
efficient-probing (EP) multi-query attention pooling + the same BN + Linear head; `svm` a linear
SVM (C = 1, Point-MAE's `LinearSVC()`) on frozen features, see `probe_svm` (`svm_pool`
"mean_max" = [mean, max] over tokens, the point-cloud convention). Every number is the
final-epoch test accuracy; nothing is selected on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from anymae.core.config import load_config
from anymae.datasets.collate import collate_fn_for
from anymae.datasets.sources import build_dataset
from anymae.tasks.evaluate.features import FeatureSet, extract_feature_sets
from anymae.tasks.evaluate.attentive import attentive_probe
from anymae.tasks.evaluate.knn import knn_probe
from anymae.tasks.evaluate.linear import linear_probe

Protocol = Literal["knn", "linear", "attentive", "svm", "prototypical"]
_PROTOCOLS = ("knn", "linear", "attentive", "svm", "prototypical")


@dataclass
class ProbeSettings:
    """How the probes are trained (defaults: the MAE / EP references)."""

    protocols: list[str] = field(default_factory=lambda: ["knn", "linear"])
    pool: Literal["cls", "mean"] = "cls"
    epochs: int = 90
    warmup_epochs: int = 10
    batch_size: int = 256
    optimizer: Literal["lars", "adamw"] = "lars"
    blr: float | None = None
    k: int = 20
    temperature: float = 0.07
    num_queries: int = 32
    seed: int = 0
    svm_c: float = 1.0
    svm_pool: Literal["pool", "mean", "max", "mean_max"] = "pool"  # "pool" = `pool` above
    prototypes_per_class: int = 20  # prototypical (Bird-MAE): J prototypes per class
    prototypical_epochs: int = 30


@dataclass
class ProbeConfig:
    """`anymae probe`: a checkpoint, labelled data, and the probe settings."""

    checkpoint: str
    data: dict[str, Any]
    test_data: dict[str, Any] | None = None  # default: `data` with its test split
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    device: str = "auto"
    num_workers: int = 2
    out: str | None = None  # also write the results as JSON here


def _check_protocols(protocols: list[str]) -> None:
    unknown = sorted(set(protocols) - set(_PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown probe protocol(s) {unknown}; expected one of {', '.join(_PROTOCOLS)}")


def needed_poolings(settings: ProbeSettings, pools: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The feature kinds the requested protocols read (pooled kinds, plus tokens for attentive)."""
    pooled = {"knn", "linear"} | ({"svm"} if settings.svm_pool == "pool" else set())
    kinds = tuple(pools or (settings.pool,)) if pooled & set(settings.protocols) else ()
    svm_tokens = "svm" in settings.protocols and settings.svm_pool != "pool"
    kinds += ("tokens",) if "attentive" in settings.protocols or svm_tokens else ()
    if "prototypical" in settings.protocols:  # tokens minus the cls output (Bird-MAE's focal similarity)
        kinds += tuple(k for k in ("tokens", "cls") if k not in kinds)
    return kinds


def encoder_features(
    model: nn.Module, data: Dataset, poolings: tuple[str, ...], *, device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> dict[str, FeatureSet]:
    """One pass of the frozen encoder over `data`, keeping each requested pooling."""
    loader = DataLoader(data, batch_size=128, shuffle=False, num_workers=num_workers, collate_fn=collate_fn_for(data))
    return extract_feature_sets(model, loader, poolings=poolings, device=device, progress=True)  # type: ignore[arg-type]


def probe_features(
    train: dict[str, FeatureSet], test: dict[str, FeatureSet], settings: ProbeSettings, *, pool: str | None = None
) -> dict[str, float]:
    """Top-1 (%) of each requested protocol on precomputed features (from `encoder_features`).

    knn and linear read the `pool` features (default `settings.pool`), attentive the tokens.
    """
    _check_protocols(settings.protocols)
    pool = pool or settings.pool
    results: dict[str, float] = {}
    if "knn" in settings.protocols:
        results["knn"] = knn_probe(
            train[pool], test[pool], k=min(settings.k, len(train[pool])), temperature=settings.temperature
        )
    if "linear" in settings.protocols:
        results["linear"] = linear_probe(
            train[pool], test[pool], epochs=settings.epochs, warmup_epochs=settings.warmup_epochs,
            batch_size=settings.batch_size, blr=settings.blr, optimizer=settings.optimizer, seed=settings.seed,
        ).top1
    if "prototypical" in settings.protocols:
        from anymae.tasks.evaluate.prototypical import prototypical_probe

        results["prototypical"] = prototypical_probe(
            train["tokens"], test["tokens"], train_cls=train["cls"], test_cls=test["cls"],
            per_class=settings.prototypes_per_class, epochs=settings.prototypical_epochs, seed=settings.seed,
        ).top1
    if "svm" in settings.protocols:
        from anymae.tasks.evaluate.svm import pool_tokens, svm_probe

        if settings.svm_pool == "pool":
            tr, te = train[pool], test[pool]
        else:
            tr, te = (pool_tokens(f["tokens"], settings.svm_pool) for f in (train, test))  # type: ignore[arg-type]
        results["svm"] = svm_probe(tr, te, C=settings.svm_c, seed=settings.seed).top1
    if "attentive" in settings.protocols:
        results["attentive"] = attentive_probe(
            train["tokens"], test["tokens"], num_queries=settings.num_queries, epochs=settings.epochs,
            warmup_epochs=settings.warmup_epochs, batch_size=settings.batch_size, blr=settings.blr,
            optimizer=settings.optimizer, seed=settings.seed,
        ).top1
    return results


def probe_encoder(
    model: nn.Module,
    train: Dataset,
    test: Dataset,
    settings: ProbeSettings,
    *,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> dict[str, float]:
    """Top-1 (%) of each requested protocol; one feature pass per split."""
    _check_protocols(settings.protocols)
    kinds = needed_poolings(settings)
    tr, te = (encoder_features(model, d, kinds, device=device, num_workers=num_workers) for d in (train, test))
    return probe_features(tr, te, settings)


def run_probe(cfg: ProbeConfig) -> dict[str, float]:
    """Load the checkpoint's encoder, build the labelled splits, probe."""
    from anymae.tasks.train.distributed import resolve_device
    from anymae.tasks.train.pretrain import load_pretrained

    model = load_pretrained(cfg.checkpoint)
    train = build_dataset(cfg.data, split="train", augment=False, model_config=model.config)
    test = build_dataset(cfg.test_data or cfg.data, split="test", augment=False, model_config=model.config)
    return probe_encoder(
        model, train, test, cfg.probe, device=resolve_device(cfg.device), num_workers=cfg.num_workers  # type: ignore[arg-type]
    )


def load_probe_config(path: str | None, overrides: list[str]) -> ProbeConfig:
    return load_config(ProbeConfig, path, overrides)
