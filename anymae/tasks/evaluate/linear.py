"""The MAE linear probe on precomputed frozen features, and the head-training loop it shares.

Protocol (MAE ``main_linprobe``): head = ``BatchNorm1d(D, affine=False, eps=1e-6)`` then
``Linear(D, C)`` (weight trunc_normal std 0.01, bias 0); ``lr = blr * batch / 256``, weight decay 0;
linear warmup then half-cycle cosine to 0, set every iteration; cross-entropy. The optimizer is
AdamW (blr 1e-2) by default, which works at the data size in front of it; ``optimizer="lars"`` is
the paper's (LARS, momentum 0.9, trust coefficient 0.001, blr 0.1). Differences from the reference, by design: the
features are computed once (:func:`anymae.tasks.evaluate.features.extract_features`), so there is no
per-epoch augmentation, and the encoder's mode is the caller's (eval in ``extract_features``).

Reporting: ``top1`` is the final-epoch test accuracy. With a validation set, the head of the
best epoch on val is kept and evaluated on test once (``test_top1_at_best_val``). Test data is
never used to select an epoch.

LARS scales each weight's step by ``0.001 * ||w|| / ||g||``, which the reference balances with a
huge batch (16384, lr 6.4). On small data it barely moves the head: on frozen features of 400 crops
of 10 photos (``demo_photo_crops``, a tiny ViT), 90 epochs of batch 256 gave 28% with LARS at blr
0.1 and 70% with AdamW at blr 1e-2 (AdamW at lr 1e-3 underfits there: 56%); hence the default.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.labels import check_probe_labels
from anymae.tasks.evaluate.lars import LARS
from anymae.tasks.evaluate.result import ProbeResult
from anymae.tasks.train.schedule import lr_at

OptimizerName = Literal["lars", "adamw"]
DEFAULT_BLR: dict[str, float] = {"lars": 0.1, "adamw": 1e-2}


def linear_head(dim: int, num_classes: int) -> nn.Sequential:
    """MAE's probe head: BN without affine, then a linear classifier.

    Args:
        dim: input width D.
        num_classes: C.

    Returns:
        ``nn.Sequential(BatchNorm1d(D, affine=False, eps=1e-6), Linear(D, C))`` mapping B×D to
        B×C logits; weight ~ trunc_normal(std=0.01), bias 0 (draws from torch's global RNG).
    """
    linear = nn.Linear(dim, num_classes)
    nn.init.trunc_normal_(linear.weight, std=0.01)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(nn.BatchNorm1d(dim, affine=False, eps=1e-6), linear)


@torch.no_grad()
def evaluate_top1(
    head: nn.Module, data: FeatureSet, *, batch_size: int = 1024, device: str | torch.device = "cpu"
) -> float:
    """Top-1 accuracy (%) of ``head`` (in eval mode) on ``data``, batched.

    Args:
        head: maps a batch of features (B×D or B×T×D) to B×C logits.
        data: the FeatureSet to score.
        batch_size: rows per forward.
        device: where the head runs.

    Returns:
        100 × correct / N.
    """
    was_training = head.training
    head.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        x = data.features[start : start + batch_size].to(device)
        y = data.labels[start : start + batch_size].to(device)
        correct += int((head(x).argmax(dim=1) == y).sum())
    head.train(was_training)
    return 100.0 * correct / max(len(data), 1)


def _check_feature_sets(
    where: str, ndim: int, train: FeatureSet, test: FeatureSet, val: FeatureSet | None
) -> None:
    """Raise a clear error unless the sets have ``ndim``-D features of one width and data.

    Args:
        where: the caller's name, for the message.
        ndim: 2 for pooled (N×D) or 3 for per-token (N×T×D) features.
        train: training set; must hold at least 2 samples (BatchNorm in train mode).
        test: test set.
        val: optional validation set.
    """
    expected = "N×D pooled features (pooling 'cls' or 'mean')" if ndim == 2 else (
        "N×T×D per-token features (pooling 'tokens' or 'all')"
    )
    for name, fs in (("train", train), ("test", test), ("val", val)):
        if fs is None:
            continue
        if fs.features.ndim != ndim:
            raise ValueError(
                f"{where}: {name}.features must be {expected}, got shape {tuple(fs.features.shape)}"
            )
        if fs.dim != train.dim:
            raise ValueError(f"{where}: {name} has feature width {fs.dim} but train has {train.dim}")
        if len(fs) == 0:
            raise ValueError(f"{where}: {name} is empty")
    if len(train) < 2:
        raise ValueError(f"{where}: train needs at least 2 samples, got {len(train)}")
    check_probe_labels(train.labels, test.labels, where=where)


def _make_optimizer(name: str, head: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """LARS (own handling of 1-D params) or AdamW with 1-D params excluded from weight decay."""
    if name == "lars":
        return LARS(head.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        params = [p for p in head.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)
    raise ValueError(f"optimizer must be 'lars' or 'adamw', got {name!r}")


def fit_head(
    head: nn.Module,
    train: FeatureSet,
    test: FeatureSet,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    warmup_epochs: float,
    optimizer: OptimizerName,
    weight_decay: float,
    seed: int,
    val: FeatureSet | None,
    device: str | torch.device,
    protocol: str,
) -> ProbeResult:
    """Train ``head`` on frozen features with cross-entropy; report final-epoch and best-on-val.

    Each epoch visits a seeded permutation of ``train`` in batches of ``batch_size`` and drops the
    last incomplete batch (as MAE's loader does). The learning rate follows :func:`anymae.tasks.train.schedule.lr_at` per
    iteration. The encoder is never involved: ``train.features`` are the head's input.

    Args:
        head: maps B×D (or B×T×D) features to B×C logits; trained in place.
        train: training features and labels.
        test: evaluated once after the last epoch, and once with the best-on-val head.
        epochs: number of epochs (>= 1).
        batch_size: samples per step (<= len(train); callers clamp it).
        lr: peak (absolute) learning rate.
        warmup_epochs: linear warmup length in epochs.
        optimizer: "lars" or "adamw".
        weight_decay: weight decay on tensors with ndim > 1.
        seed: seeds the shuffling.
        val: optional validation set, scored after every epoch.
        device: where the head trains.
        protocol: description stored in the result.

    Returns:
        ProbeResult (see its fields for which number is which).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"warmup_epochs must be in [0, epochs={epochs}], got {warmup_epochs}")
    if not 1 <= batch_size <= len(train):
        raise ValueError(f"batch_size must be in [1, {len(train)}], got {batch_size}")
    head.to(device).train()
    opt = _make_optimizer(optimizer, head, lr, weight_decay)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(train) // batch_size
    history: list[dict[str, float]] = []
    best_val, best_epoch, best_state = -1.0, -1, None
    step = 0
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=generator)
        losses: list[float] = []
        current_lr = lr
        for i in range(steps_per_epoch):
            current_lr = lr_at(step, lr=lr, min_lr=0.0, warmup_epochs=warmup_epochs, epochs=epochs, iters_per_epoch=steps_per_epoch)
            for group in opt.param_groups:
                group["lr"] = current_lr
            idx = order[i * batch_size : (i + 1) * batch_size]
            x: Tensor = train.features[idx].to(device)  # B×D or B×T×D
            y: Tensor = train.labels[idx].to(device)  # B
            loss = F.cross_entropy(head(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        record = {"epoch": float(epoch), "lr": current_lr, "train_loss": sum(losses) / len(losses)}
        if val is not None:
            val_top1 = evaluate_top1(head, val, device=device)
            record["val_top1"] = val_top1
            if val_top1 > best_val:
                best_val, best_epoch = val_top1, epoch
                best_state = copy.deepcopy(head.state_dict())
        history.append(record)
    result = ProbeResult(top1=evaluate_top1(head, test, device=device), history=history, protocol=protocol)
    if best_state is not None:
        head.load_state_dict(best_state)
        result.best_val_top1 = best_val
        result.best_val_epoch = best_epoch
        result.test_top1_at_best_val = evaluate_top1(head, test, device=device)
    return result


def train_probe(
    where: str,
    head_name: str,
    make_head: Callable[[int, int], nn.Module],
    feature_ndim: int,
    train: FeatureSet,
    test: FeatureSet,
    *,
    epochs: int,
    batch_size: int,
    blr: float | None,
    warmup_epochs: float,
    optimizer: OptimizerName,
    weight_decay: float,
    seed: int,
    val: FeatureSet | None,
    device: str | torch.device,
) -> ProbeResult:
    """Build a probe head from ``seed`` and train it with :func:`fit_head` (shared by all probes).

    Args:
        where: the public caller's name, for error messages.
        head_name: description of the head for the protocol string.
        make_head: ``(D, C) -> module`` mapping features to C logits; built under ``seed``.
        feature_ndim: 2 (N×D pooled) or 3 (N×T×D tokens), what the head expects.
        train, test, val: the feature sets (see :func:`fit_head`).
        epochs, warmup_epochs, weight_decay, device: see :func:`fit_head`.
        batch_size: clamped to len(train).
        blr: base lr; lr = blr × batch / 256; None -> :data:`DEFAULT_BLR` of the optimizer.
        optimizer: "lars" or "adamw".
        seed: seeds the head's initialisation (torch's global RNG is restored afterwards) and
            the shuffling.

    Returns:
        ProbeResult.
    """
    _check_feature_sets(where, feature_ndim, train, test, val)
    if optimizer not in DEFAULT_BLR:
        raise ValueError(f"{where}: optimizer must be 'lars' or 'adamw', got {optimizer!r}")
    blr = DEFAULT_BLR[optimizer] if blr is None else blr
    batch = min(batch_size, len(train))
    lr = blr * batch / 256
    warmup = min(warmup_epochs, epochs)
    num_classes = max(train.num_classes, test.num_classes, val.num_classes if val else 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = make_head(train.dim, num_classes)
    selection = (
        "test_top1_at_best_val = test at best-epoch on val"
        if val is not None
        else "no val set: no epoch selection"
    )
    protocol = (
        f"{head_name}; {optimizer} blr={blr:g} lr={lr:g} (blr*batch/256) batch={batch} "
        f"epochs={epochs} warmup={warmup:g} cosine per-iteration wd={weight_decay:g} seed={seed}; "
        f"frozen precomputed features, no augmentation; top1 = final-epoch test; {selection}; "
        "never selected on test"
    )
    return fit_head(
        head, train, test, epochs=epochs, batch_size=batch, lr=lr, warmup_epochs=warmup,
        optimizer=optimizer, weight_decay=weight_decay, seed=seed, val=val, device=device,
        protocol=protocol,
    )


def linear_probe(
    train: FeatureSet,
    test: FeatureSet,
    *,
    epochs: int = 90,
    batch_size: int = 256,
    blr: float | None = None,
    warmup_epochs: float = 10,
    optimizer: OptimizerName = "adamw",
    weight_decay: float = 0.0,
    seed: int = 0,
    val: FeatureSet | None = None,
    device: str | torch.device = "cpu",
) -> ProbeResult:
    """MAE linear probe (BN(affine=False) + Linear) on precomputed pooled features.

    Args:
        train: N×D features (pooling "cls" or "mean") and labels.
        test: M×D features and labels; scored at the final epoch (and at the best-val epoch).
        epochs: training epochs.
        batch_size: samples per step, clamped to len(train); the last incomplete batch is dropped.
        blr: base learning rate; lr = blr × batch / 256. None -> 0.1 for LARS, 1e-2 for AdamW.
        warmup_epochs: linear warmup epochs (clamped to ``epochs``).
        optimizer: "adamw" (default: works at any data size) or "lars" (the paper's, meant for
            batches of 16k).
        weight_decay: on the Linear weight only (0 in the reference).
        seed: seeds the head's initialisation and the shuffling; the same seed gives the same
            result. Torch's global RNG state is left untouched.
        val: optional validation set for best-epoch selection.
        device: where the head trains.

    Returns:
        ProbeResult: ``top1`` final-epoch test; ``best_val_top1`` / ``test_top1_at_best_val``
        from the best epoch on val.
    """
    return train_probe(
        "linear_probe",
        "linear probe (MAE): BN(affine=False, eps=1e-6) + Linear(trunc_normal 0.01)",
        linear_head,
        2,
        train,
        test,
        epochs=epochs, batch_size=batch_size, blr=blr, warmup_epochs=warmup_epochs,
        optimizer=optimizer, weight_decay=weight_decay, seed=seed, val=val, device=device,
    )
