"""N-way K-shot few-shot evaluation: folds, a protocol per fold, mean ± std over folds.

Folds follow Point-BERT / Point-MAE's `generate_few_shot_data.py` (ModelNet40 few-shot): per fold,
`way` classes drawn at random; per class `shot` support samples from the TRAIN split and `query`
(20) query samples from the TEST split; labels renumbered 0..way-1 in the order the classes were
drawn; 10 folds. Here fold f draws from `numpy.random.default_rng([seed, f])`, so the folds are
reproducible (the reference ships pickled folds drawn with python's unseeded `random`).

Protocols per fold:
- `fewshot_svm`: frozen features once per split, a linear SVM (C = 1) on each fold's support
  set, accuracy on its queries. Cheap; not the paper's protocol.
- `fewshot_finetune`: the paper's protocol, end-to-end fine-tuning per fold
  (`tasks.finetune.finetune`: Point-MAE uses 150 epochs, AdamW lr 5e-4). Each fold's number is
  the FINAL-epoch accuracy on its queries; the reference reports the best epoch on the queries
  (selection on test), which this does not do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from anymae.core.pooling import Pool
from anymae.datasets.contract import SubsetView, item_labels
from anymae.tasks.evaluate.features import FeatureSet, resolve_pool
from anymae.tasks.evaluate.labels import check_probe_labels
from anymae.tasks.train.config import RunConfig
from anymae.tasks.train.loader.workers import workers_for


@dataclass
class FewShotFold:
    """One episode: the drawn classes (original labels, new label = position) and sample indices."""

    classes: list[int]
    support: list[int]  # indices into the train split
    query: list[int]  # indices into the test split


@dataclass
class FewShotResult:
    """Mean ± std (%) over folds, the per-fold accuracies and the protocol line."""

    mean: float
    std: float
    fold_top1: list[float] = field(default_factory=list)
    protocol: str = ""


def _labels(labels: Sequence[int] | torch.Tensor) -> np.ndarray:
    return np.asarray(labels.tolist() if isinstance(labels, torch.Tensor) else list(labels), dtype=np.int64)


def make_folds(
    train_labels: Sequence[int] | torch.Tensor,
    test_labels: Sequence[int] | torch.Tensor,
    *,
    way: int,
    shot: int,
    query: int = 20,
    folds: int = 10,
    seed: int = 0,
) -> list[FewShotFold]:
    """Draw `folds` N-way K-shot episodes (see module doc).

    Raises:
        ValueError: fewer than `way` classes with > `shot` train and >= `query` test samples
            (the reference asserts these counts).
    """
    tr, te = _labels(train_labels), _labels(test_labels)
    eligible = [c for c in np.unique(tr) if (tr == c).sum() > shot and (te == c).sum() >= query]
    if len(eligible) < way:
        raise ValueError(f"few-shot {way}-way {shot}-shot: only {len(eligible)} classes have more than {shot} "
                         f"train and at least {query} test samples")
    out = []
    for f in range(folds):
        rng = np.random.default_rng([seed, f])
        classes = [int(c) for c in rng.permutation(eligible)[:way]]
        support = [int(i) for c in classes for i in rng.permutation(np.flatnonzero(tr == c))[:shot]]
        queries = [int(i) for c in classes for i in rng.permutation(np.flatnonzero(te == c))[:query]]
        check_probe_labels(torch.from_numpy(tr[support]), torch.from_numpy(te[queries]), where=f"few-shot fold {f}")
        out.append(FewShotFold(classes, support, queries))
    return out


class FoldSubset(SubsetView):
    """Items of `dataset` at `indices`, labels renumbered by `classes` (original -> position); the
    rest of the dataset contract (e.g. `collate_x`) is `dataset`'s."""

    def __init__(self, dataset: Dataset, indices: Sequence[int], classes: Sequence[int]) -> None:
        super().__init__(dataset, indices)
        self.mapping = {c: i for i, c in enumerate(classes)}

    def __getitem__(self, i: int) -> tuple[Any, int]:
        x, label = self.dataset[self.indices[i]]
        return x, self.mapping[int(label)]

    @property  # type: ignore[override]
    def labels(self) -> list[int] | None:
        inner = super().labels
        return None if inner is None else [self.mapping[int(label)] for label in inner]


def _summary(accs: list[float], protocol: str) -> FewShotResult:
    return FewShotResult(float(np.mean(accs)), float(np.std(accs)), accs, protocol)


def fewshot_svm(train: FeatureSet, test: FeatureSet, folds: Sequence[FewShotFold], *, C: float = 1.0,
                seed: int = 0) -> FewShotResult:
    """Per fold: LinearSVC(C) on the support features, accuracy (%) on the query features."""
    from anymae.tasks.evaluate.svm import svm_probe

    def subset(fs: FeatureSet, idx: list[int], classes: list[int]) -> FeatureSet:
        mapping = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([mapping[int(fs.labels[i])] for i in idx], dtype=torch.long)
        return FeatureSet(features=fs.features[idx], labels=labels)

    accs = [svm_probe(subset(train, f.support, f.classes), subset(test, f.query, f.classes), C=C, seed=seed).top1
            for f in folds]
    way, shot = len(folds[0].classes), len(folds[0].support) // len(folds[0].classes)
    return _summary(accs, f"{way}-way {shot}-shot, {len(folds)} folds: frozen features, LinearSVC C={C:g} on the "
                          "support set, accuracy on the queries; mean ± std over folds")


def fewshot_finetune(
    folds: Sequence[FewShotFold],
    train: Dataset,
    test: Dataset,
    run_fold: Callable[[int, Dataset, Dataset], float],
) -> FewShotResult:
    """Per fold: `run_fold(fold_index, support_set, query_set) -> accuracy (%)`; mean ± std.

    `run_fold` usually builds a fresh classifier from the pretrained model and calls
    `tasks.finetune.finetune` (see `finetune_fold_runner`).
    """
    accs = []
    for i, fold in enumerate(folds):
        accs.append(float(run_fold(i, FoldSubset(train, fold.support, fold.classes),
                                   FoldSubset(test, fold.query, fold.classes))))
    way, shot = len(folds[0].classes), len(folds[0].support) // len(folds[0].classes)
    return _summary(accs, f"{way}-way {shot}-shot, {len(folds)} folds: end-to-end fine-tuning per fold, FINAL-epoch "
                          "accuracy on the queries (the reference reports the best epoch); mean ± std over folds")


def finetune_fold_runner(mae: Any, cfg: Any, run_cfg: Any) -> Callable[[int, Dataset, Dataset], float]:
    """A `run_fold` that fine-tunes a fresh classifier of `mae` per fold into `run_cfg.out_dir/fold_i`.

    Args:
        mae: the pretrained MaskedAutoencoder.
        cfg: a `FinetuneConfig` (its num_classes is replaced by the fold's way).
        run_cfg: a `RunConfig`.
    """
    from anymae.tasks.finetune.run import classifier_from_config, finetune

    def run(i: int, support: Dataset, query: Dataset) -> float:
        fold_cfg = dataclasses.replace(cfg, num_classes=len(support.mapping))  # type: ignore[attr-defined]
        fold_run = dataclasses.replace(run_cfg, out_dir=str(Path(run_cfg.out_dir) / f"fold_{i}"))
        return finetune(classifier_from_config(mae, fold_cfg), support, query, fold_cfg, fold_run).top1

    return run


@dataclass
class FewShotSettings:
    """`anymae fewshot` settings (Point-MAE: 5/10-way, 10/20-shot, 20 queries, 10 folds)."""

    way: int = 5
    shot: int = 10
    query: int = 20
    folds: int = 10
    seed: int = 0
    protocol: str = "svm"  # "svm" (frozen features) or "finetune" (the paper's protocol)
    svm_c: float = 1.0
    svm_pool: Pool = "mean_max"  # a pool of anymae.core.pooling; mean_max (every model has tokens) as Point-MAE's SVM


@dataclass
class FewShotRunConfig:
    """`anymae fewshot`: a pretraining checkpoint, labelled train / test data, the settings."""

    checkpoint: str
    data: dict[str, Any]
    test_data: dict[str, Any] | None = None  # default: `data` with its test split
    fewshot: FewShotSettings = field(default_factory=FewShotSettings)
    finetune: dict[str, Any] | None = None  # FinetuneConfig fields for protocol "finetune"
    # run.device / run.num_workers for both protocols; protocol "finetune" fine-tunes each fold into
    # run.out_dir/fold_i with the rest of the section (run.seed seeds the fine-tuning, fewshot.seed the folds)
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/fewshot", num_workers=0, tensorboard=False))
    out: str | None = None  # `anymae fewshot` also writes the result here as JSON


def load_fewshot_config(path: str | None, overrides: list[str]) -> FewShotRunConfig:
    from anymae.core.config import load_config

    return load_config(FewShotRunConfig, path, overrides)


def run_fewshot(cfg: FewShotRunConfig) -> FewShotResult:
    """Load the encoder, build the labelled splits, draw the folds, run the protocol."""
    from anymae.core.config import from_dict
    from anymae.datasets.sources import build_dataset
    from anymae.tasks.train.distributed import resolve_device
    from anymae.tasks.train.pretrain import load_pretrained
    from anymae.tasks.evaluate.probe import encoder_features

    s = cfg.fewshot
    if s.protocol not in ("svm", "finetune"):
        raise ValueError(f"fewshot.protocol={s.protocol!r}: expected 'svm' or 'finetune'")
    model = load_pretrained(cfg.checkpoint)
    train = build_dataset(cfg.data, split="train", augment=False, model_config=model.config)
    test = build_dataset(cfg.test_data or cfg.data, split="test", augment=False, model_config=model.config)
    labels = [[int(label) for label in item_labels(ds)] for ds in (train, test)]
    folds = make_folds(labels[0], labels[1], way=s.way, shot=s.shot, query=s.query, folds=s.folds, seed=s.seed)
    if s.protocol == "svm":
        kind = resolve_pool(s.svm_pool, model, where="fewshot.svm_pool")
        device = resolve_device(cfg.run.device)
        workers = workers_for(cfg.run.num_workers)
        feats = [encoder_features(model, ds, (kind,), device=device, num_workers=workers)[kind] for ds in (train, test)]
        return fewshot_svm(feats[0], feats[1], folds, C=s.svm_c, seed=s.seed)
    from anymae.tasks.finetune.run import FinetuneConfig

    ft = from_dict(FinetuneConfig, {"num_classes": s.way, **(cfg.finetune or {})}, where="finetune")
    train_aug = build_dataset(cfg.data, split="train", augment="finetune", model_config=model.config)
    return fewshot_finetune(folds, train_aug, test, finetune_fold_runner(model, ft, cfg.run))
