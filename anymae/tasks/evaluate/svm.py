"""Support-vector probes on frozen features (scikit-learn), for point clouds, graphs and the rest.

Two protocols, both on N×D pooled features (`FeatureSet`):

- `svm_probe(train, test)`: fit on train, top-1 on test. Default: a linear SVM with C = 1
  (`LinearSVC()`, the classifier of Point-MAE's / Point-BERT's ModelNet40 SVM hook). With
  `c_grid`, C is chosen by stratified k-fold cross-validation on the TRAIN split only (the test
  split never selects anything), then refit on all of train.
- `svm_cross_validate(features)`: the graph-classification protocol (GraphMAE / InfoGraph):
  stratified k-fold (10, shuffled) over one labelled set; in each fold an SVC whose C is chosen
  from `c_grid` by an inner 5-fold grid search on the training folds; the result is the mean ±
  std of the folds' test accuracies.

The SVM reads pooled features of the one vocabulary (`anymae.core.pooling`); the probes extract
them directly (`probe.svm_pool`, e.g. "mean_max" = [mean, max] over tokens, 2·D: the pooling
follow-ups of Point-MAE use for the SVM; Point-MAE's own hook is commented out and never returns
features). `pool_tokens` pools already extracted per-token features N×T×D the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from anymae.core.pooling import needs_cls, pool
from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.labels import check_probe_labels

Estimator = Literal["linear", "svc"]
TokenPool = Literal["mean", "max", "sum", "mean_max"]  # the pools of the vocabulary that need no cls token


@dataclass
class SVMResult:
    """What an SVM probe reports.

    Attributes:
        top1: accuracy (%) on test (svm_probe), or the mean over folds (svm_cross_validate).
        std: std (%) over folds (cross-validation), else 0.
        C: the C used (svm_probe), or the C chosen in each fold.
        fold_top1: per-fold accuracies (%) (cross-validation).
        protocol: one line saying what was done and which number is which.
    """

    top1: float
    std: float = 0.0
    C: float | list[float] = 1.0
    fold_top1: list[float] = field(default_factory=list)
    protocol: str = ""


def pool_tokens(fs: FeatureSet, how: TokenPool) -> FeatureSet:
    """N×T×D per-token features -> N×D ("mean", "max", "sum") or N×2D ("mean_max": [mean, max]),
    by :func:`anymae.core.pooling.pool`."""
    if fs.features.ndim != 3:
        raise ValueError(f"pool_tokens: expected N×T×D token features, got shape {tuple(fs.features.shape)}")
    if needs_cls(how):
        raise ValueError(f"pool_tokens: how={how!r} needs a cls token, which token features do not hold")
    return FeatureSet(features=pool(fs.features, how), labels=fs.labels)  # type: ignore[arg-type]


def _estimator(kind: Estimator, C: float, kernel: str, seed: int):
    if kind == "linear":
        from sklearn.svm import LinearSVC

        return LinearSVC(C=C, random_state=seed)
    if kind == "svc":
        from sklearn.svm import SVC

        return SVC(C=C, kernel=kernel, random_state=seed)
    raise ValueError(f"estimator={kind!r}: expected 'linear' (LinearSVC) or 'svc' (SVC with a kernel)")


def _arrays(fs: FeatureSet, name: str) -> tuple[np.ndarray, np.ndarray]:
    if fs.features.ndim != 2 or len(fs) == 0:
        raise ValueError(f"SVM probe: {name} must hold N×D pooled features (N > 0), got shape "
                         f"{tuple(fs.features.shape)}; pool token features with pool_tokens()")
    return fs.features.double().numpy(), fs.labels.numpy()


def _check_grid(c_grid: Sequence[float]) -> list[float]:
    grid = [float(c) for c in c_grid]
    if not grid or any(c <= 0 for c in grid):
        raise ValueError(f"c_grid must be a non-empty list of C > 0, got {list(c_grid)!r}")
    return grid


def _choose_c(x: np.ndarray, y: np.ndarray, grid: list[float], *, kind: Estimator, kernel: str, folds: int,
              seed: int, shuffle: bool) -> float:
    """C of `grid` with the best mean accuracy over stratified `folds`-fold CV of (x, y)."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    smallest = int(np.bincount(y).min()) if len(y) else 0
    k = min(folds, smallest)
    if k < 2:
        raise ValueError(f"choosing C needs >= 2 samples of every class for cross-validation, the smallest "
                         f"class has {smallest}")
    cv = StratifiedKFold(n_splits=k, shuffle=shuffle, random_state=seed if shuffle else None)
    search = GridSearchCV(_estimator(kind, 1.0, kernel, seed), {"C": grid}, cv=cv)
    search.fit(x, y)
    return float(search.best_params_["C"])


def svm_probe(
    train: FeatureSet,
    test: FeatureSet,
    *,
    C: float = 1.0,
    estimator: Estimator = "linear",
    kernel: str = "rbf",
    c_grid: Sequence[float] | None = None,
    cv_folds: int = 5,
    seed: int = 0,
) -> SVMResult:
    """Top-1 (%) on test of an SVM fit on train features.

    Args:
        train, test: N×D pooled features and labels.
        C: the SVM's C when `c_grid` is None (Point-MAE: LinearSVC's default 1.0).
        estimator: "linear" (LinearSVC, liblinear) or "svc" (SVC with `kernel`).
        kernel: SVC kernel ("rbf", "linear", ...).
        c_grid: candidate Cs chosen by stratified `cv_folds`-fold CV on train only.
        cv_folds: folds of that CV (fewer when a class has fewer samples).
        seed: random_state of the estimator and of the CV shuffling.
    """
    x_tr, y_tr = _arrays(train, "train")
    x_te, y_te = _arrays(test, "test")
    if x_te.shape[1] != x_tr.shape[1]:
        raise ValueError(f"SVM probe: test has feature width {x_te.shape[1]} but train has {x_tr.shape[1]}")
    check_probe_labels(train.labels, test.labels, where="SVM probe")
    chosen = C if c_grid is None else _choose_c(
        x_tr, y_tr, _check_grid(c_grid), kind=estimator, kernel=kernel, folds=cv_folds, seed=seed, shuffle=True
    )
    clf = _estimator(estimator, chosen, kernel, seed).fit(x_tr, y_tr)
    top1 = 100.0 * float((clf.predict(x_te) == y_te).mean())
    how = f"C={chosen:g}" if c_grid is None else f"C={chosen:g} chosen from {list(c_grid)} by {cv_folds}-fold CV on train"
    name = "LinearSVC" if estimator == "linear" else f"SVC(kernel={kernel})"
    return SVMResult(top1=top1, C=chosen, protocol=f"{name} {how}; top1 on test ({len(y_te)} samples), "
                                                   "features frozen, no selection on test")


def svm_cross_validate(
    features: FeatureSet,
    *,
    c_grid: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0, 10.0),
    folds: int = 10,
    inner_folds: int = 5,
    estimator: Estimator = "svc",
    kernel: str = "rbf",
    seed: int = 0,
) -> SVMResult:
    """Mean ± std accuracy (%) of stratified `folds`-fold CV, C chosen per fold by an inner grid search.

    The graph-classification protocol (GraphMAE `evaluate_graph_embeddings_using_svm`: 10 shuffled
    stratified folds with random_state 0, `GridSearchCV(SVC(), {"C": [1e-3 ... 10]})` with its
    default 5-fold inner CV, accuracy = micro-F1 for single-label data).
    """
    from sklearn.model_selection import StratifiedKFold

    x, y = _arrays(features, "features")
    check_probe_labels(features.labels, where="SVM cross-validation")
    grid = _check_grid(c_grid)
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    accs, chosen = [], []
    for tr, te in outer.split(x, y):
        c = _choose_c(x[tr], y[tr], grid, kind=estimator, kernel=kernel, folds=inner_folds, seed=seed,
                      shuffle=False)
        clf = _estimator(estimator, c, kernel, seed).fit(x[tr], y[tr])
        accs.append(100.0 * float((clf.predict(x[te]) == y[te]).mean()))
        chosen.append(c)
    name = "LinearSVC" if estimator == "linear" else f"SVC(kernel={kernel})"
    return SVMResult(
        top1=float(np.mean(accs)), std=float(np.std(accs)), C=chosen, fold_top1=accs,
        protocol=f"{name}, C from {grid} by inner {inner_folds}-fold grid search; mean ± std over {folds} "
                 "stratified folds (shuffled)",
    )
