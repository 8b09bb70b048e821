"""Efficient-probing (EP) attentive probe on precomputed per-token features.

EP (Psomas et al., "Attention, Please! Revisiting Attentive Probing Through the Lens of
Efficiency") replaces pooling by a stripped-down cross-attention. With tokens ``X`` (B×T×D),
Q learned queries ``W_q`` (Q×D), one value projection ``W_v`` (D_out×D, no bias) where
``D_out = D / d_out``, and slice width ``c = D_out / Q``:

1. logits  ``L[b, q, t] = <W_q[q], X[b, t]> / sqrt(D)``           B×Q×T  (keys are the raw
   tokens: no key, query or output projection, no LayerNorm, one head)
2. weights ``A[b, q, :] = softmax_t(L[b, q, :])``                  B×Q×T
3. values  ``V[b, t] = W_v X[b, t]``                               B×T×D_out, viewed as
   B×T×Q×c: query q owns the slice ``V[b, t, q*c:(q+1)*c]``
4. output  ``Z[b, q] = sum_t A[b, q, t] * V[b, t, q*c:(q+1)*c]``   B×Q×c
5. concat  ``z[b] = [Z[b, 0], ..., Z[b, Q-1]]``                    B×D_out

The probe head is then MAE's: ``BatchNorm1d(D_out, affine=False, eps=1e-6)`` and ``Linear``.
Training is the linear probe's loop (:func:`anymae.tasks.evaluate.linear.fit_head`): LARS,
blr 0.1, warmup + cosine, cross-entropy. The EP paper reports best-epoch top-1; here, as for
the linear probe, ``top1`` is final-epoch test and the best epoch is chosen on val only.

The pooler is :class:`anymae.core.pooling.EfficientProbe`, the learned pool named "attentive" of
the one pooling vocabulary (a fine-tuning ``Classifier`` can use it too).
"""

from __future__ import annotations

import torch
from torch import nn

from anymae.core.pooling import EfficientProbe, learned_pool
from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.linear import OptimizerName, linear_head, train_probe
from anymae.tasks.evaluate.result import ProbeResult

__all__ = ["EfficientProbe", "attentive_head", "attentive_probe"]


def attentive_head(dim: int, num_classes: int, num_queries: int = 32, d_out: int = 1) -> nn.Sequential:
    """EP pooling, then MAE's BN(affine=False) + Linear head: B×T×D tokens -> B×C logits.

    Args:
        dim: token width D.
        num_classes: C.
        num_queries: Q.
        d_out: width divisor (D_out = D / d_out).

    Returns:
        ``nn.Sequential(EfficientProbe, BatchNorm1d(D_out, affine=False), Linear(D_out, C))``.
    """
    pool = learned_pool("attentive", dim, num_queries=num_queries, d_out=d_out)
    return nn.Sequential(pool, *linear_head(pool.out_dim, num_classes))


def attentive_probe(
    train: FeatureSet,
    test: FeatureSet,
    *,
    num_queries: int = 32,
    d_out: int = 1,
    epochs: int = 90,
    batch_size: int = 256,
    blr: float | None = None,
    warmup_epochs: float = 10,
    optimizer: OptimizerName = "lars",
    weight_decay: float = 0.0,
    seed: int = 0,
    val: FeatureSet | None = None,
    device: str | torch.device = "cpu",
) -> ProbeResult:
    """Train the EP attentive probe on frozen per-token features.

    Args:
        train: N×T×D token features (pooling "tokens", or "all" to include cls) and labels.
        test: M×T'×D token features and labels; scored at the final epoch (and best-val epoch).
        num_queries: Q learned queries.
        d_out: width divisor of the value projection.
        epochs: training epochs.
        batch_size: samples per step, clamped to len(train); last incomplete batch dropped.
        blr: base learning rate; lr = blr × batch / 256. None -> 0.1 for LARS, 1e-2 for AdamW.
        warmup_epochs: linear warmup epochs (clamped to ``epochs``).
        optimizer: "lars" (EP's protocol) or "adamw" (small data).
        weight_decay: on tensors with ndim > 1 (queries, value and linear weights).
        seed: seeds initialisation and shuffling; torch's global RNG state is left untouched.
        val: optional validation set for best-epoch selection.
        device: where the head trains.

    Returns:
        ProbeResult: ``top1`` final-epoch test; ``best_val_top1`` / ``test_top1_at_best_val``
        from the best epoch on val.
    """
    return train_probe(
        "attentive_probe",
        f"attentive probe (EP): {num_queries} queries, 1 head, value D->D/{d_out}, "
        "BN(affine=False, eps=1e-6) + Linear(trunc_normal 0.01)",
        lambda dim, num_classes: attentive_head(dim, num_classes, num_queries, d_out),
        3,
        train,
        test,
        epochs=epochs, batch_size=batch_size, blr=blr, warmup_epochs=warmup_epochs,
        optimizer=optimizer, weight_decay=weight_decay, seed=seed, val=val, device=device,
    )
