"""Probing a frozen encoder: features once, then k-NN, linear and attentive probes on them.

Protocols (see their modules): `knn` weighted k-NN (cosine, T 0.07, k 20); `linear` MAE's linear
probe head (BatchNorm without affine + Linear), trained with `probe.optimizer`: AdamW (blr 1e-2) by
default, which works on small data, or `lars` (blr 0.1), the paper's, meant for batches of 16k;
`attentive` the efficient-probing (EP) multi-query attention pooling + the same BN + Linear head
(same optimizer); `svm` a linear
SVM (C = 1, Point-MAE's `LinearSVC()`) on frozen features, see `svm` (`svm_pool`
"mean_max" = [mean, max] over tokens, the point-cloud convention). Every number is the
final-epoch test accuracy; nothing is selected on the test split.

Pools are names of the one vocabulary (`anymae.core.pooling`). `pool` unset (the default) means
the model's `default_pool`: cls for an encoder with a cls token, else mean (VideoMAE, Point-MAE,
graphs); the chosen pool is printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import replace
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from anymae.core.config import load_config
from anymae.core.pooling import Pool
from anymae.datasets.collate import collate_fn_for
from anymae.datasets.sources import build_dataset
from anymae.tasks.evaluate.features import FeatureSet, extract_feature_sets, resolve_pool
from anymae.tasks.evaluate.attentive import attentive_probe
from anymae.tasks.evaluate.knn import knn_probe
from anymae.tasks.evaluate.linear import linear_probe
from anymae.tasks.train.config import EvalRunConfig

Protocol = Literal["knn", "linear", "attentive", "svm", "prototypical"]
_PROTOCOLS = ("knn", "linear", "attentive", "svm", "prototypical")


@dataclass
class ProbeSettings:
    """How the probes are trained (defaults: the MAE / EP references)."""

    protocols: list[str] = field(default_factory=lambda: ["knn", "linear"])
    pool: Pool | None = None  # None: the model's default_pool (cls if it has a cls token, else mean)
    epochs: int = 90
    warmup_epochs: int = 10
    batch_size: int = 256
    # linear and attentive heads: "adamw" (blr 1e-2, robust at any data size) or "lars" (the papers'
    # protocol, blr 0.1, meant for batches of 16k: 28% vs AdamW's 70% on 400 demo crops)
    optimizer: Literal["lars", "adamw"] = "adamw"
    blr: float | None = None
    k: int = 20
    temperature: float = 0.07
    num_queries: int = 32
    seed: int = 0
    svm_c: float = 1.0
    svm_pool: Pool | None = None  # None: `pool` above; e.g. mean_max = [mean, max] over tokens
    prototypes_per_class: int = 20  # prototypical (Bird-MAE): J prototypes per class
    prototypical_epochs: int = 30
    # cross-modal checkpoints: "joint" (every modality through the joint blocks) or one modality's
    # modality-only features (CAV-MAE's audio-only / visual-only modes: "audio", "video", ...)
    modality: str = "joint"


@dataclass
class ProbeConfig:
    """`anymae probe`: a checkpoint, labelled data, and the probe settings."""

    checkpoint: str
    data: dict[str, Any]
    test_data: dict[str, Any] | None = None  # default: `data` with its test split
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    run: EvalRunConfig = field(default_factory=lambda: EvalRunConfig(num_workers=2))  # run.device, run.num_workers
    out: str | None = None  # `anymae probe` also writes the results here as JSON


def _check_protocols(protocols: list[str]) -> None:
    unknown = sorted(set(protocols) - set(_PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown probe protocol(s) {unknown}; expected one of {', '.join(_PROTOCOLS)}")


def _reads_pool(settings: ProbeSettings) -> bool:
    """Whether a requested protocol reads the `pool` features (knn, linear, svm without svm_pool)."""
    protocols = set(settings.protocols)
    return bool(protocols & {"knn", "linear"}) or ("svm" in protocols and settings.svm_pool is None)


def _settled_pool(settings: ProbeSettings, pool: str | None = None) -> str:
    chosen = pool or settings.pool
    if chosen is None:
        raise ValueError("probe: no pooling chosen (probe.pool is unset); name one, or let probe_encoder "
                         "take the model's default_pool")
    return chosen


def with_model_pool(settings: ProbeSettings, model: nn.Module) -> ProbeSettings:
    """`settings` with `pool` set: as given, or the model's default pool (printed) when a protocol reads it."""
    if settings.pool is not None or not _reads_pool(settings):
        return settings
    return replace(settings, pool=resolve_pool(None, model, where="probe"))


def needed_poolings(settings: ProbeSettings, pools: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The feature kinds the requested protocols read: the pooled kinds (knn, linear, svm), tokens
    (attentive, prototypical) and cls (prototypical)."""
    kinds: list[str] = []
    for kind in (
        *(pools or (_settled_pool(settings),) if _reads_pool(settings) else ()),
        *((settings.svm_pool,) if "svm" in settings.protocols and settings.svm_pool is not None else ()),
        *(("tokens",) if "attentive" in settings.protocols else ()),
        *(("tokens", "cls") if "prototypical" in settings.protocols else ()),  # Bird-MAE's focal similarity
    ):
        if kind not in kinds:
            kinds.append(kind)
    return tuple(kinds)


def encoder_features(
    model: nn.Module, data: Dataset, poolings: tuple[str, ...], *, device: str | torch.device = "cpu",
    num_workers: int = 0, modality: str = "joint",
) -> dict[str, FeatureSet]:
    """One pass of the frozen encoder over `data`, keeping each requested pooling (`modality`:
    "joint", the model's own features, or one modality's modality-only pass)."""
    names = getattr(getattr(model, "tokenizer", None), "modalities", None)
    if modality != "joint" and (names is None or modality not in names):
        raise ValueError(f"probe.modality={modality!r}: expected 'joint'"
                         + (f" or one of the model's modalities {list(names)}" if names else
                            " (the model has one modality)"))
    loader = DataLoader(data, batch_size=128, shuffle=False, num_workers=num_workers, collate_fn=collate_fn_for(data))
    return extract_feature_sets(model, loader, poolings=poolings, device=device, progress=True,  # type: ignore[arg-type]
                                modality=None if modality == "joint" else modality)


def probe_features(
    train: dict[str, FeatureSet], test: dict[str, FeatureSet], settings: ProbeSettings, *, pool: str | None = None
) -> dict[str, float]:
    """Top-1 (%) of each requested protocol on precomputed features (from `encoder_features`).

    knn and linear read the `pool` features (default `settings.pool`), svm the `settings.svm_pool`
    features (default the same), attentive the tokens.
    """
    _check_protocols(settings.protocols)
    pool = _settled_pool(settings, pool) if _reads_pool(settings) else ""
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
        from anymae.tasks.evaluate.svm import svm_probe

        kind = settings.svm_pool or pool
        results["svm"] = svm_probe(train[kind], test[kind], C=settings.svm_c, seed=settings.seed).top1
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
    """Top-1 (%) of each requested protocol; one feature pass per split. An unset `settings.pool`
    becomes the model's default pool (printed)."""
    _check_protocols(settings.protocols)
    settings = with_model_pool(settings, model)
    kinds = needed_poolings(settings)
    tr, te = (encoder_features(model, d, kinds, device=device, num_workers=num_workers, modality=settings.modality)
              for d in (train, test))
    return probe_features(tr, te, settings)


def run_probe(cfg: ProbeConfig) -> dict[str, float]:
    """Load the checkpoint's encoder, build the labelled splits, probe."""
    from anymae.tasks.train.distributed import resolve_device
    from anymae.tasks.train.pretrain import load_pretrained

    model = load_pretrained(cfg.checkpoint)
    train = build_dataset(cfg.data, split="train", augment=False, model_config=model.config)
    test = build_dataset(cfg.test_data or cfg.data, split="test", augment=False, model_config=model.config)
    return probe_encoder(
        model, train, test, cfg.probe, device=resolve_device(cfg.run.device), num_workers=cfg.run.num_workers
    )


def load_probe_config(path: str | None, overrides: list[str]) -> ProbeConfig:
    return load_config(ProbeConfig, path, overrides)
