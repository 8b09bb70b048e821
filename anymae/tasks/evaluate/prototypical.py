"""Prototypical probing (Bird-MAE, "Can Masked Autoencoders Also Listen to Birds?"), on frozen tokens.

Bird-MAE's frozen "ppnet" probe (houtan-ghaffari/Bird-SSL `models/ppnet/ppnet.py`, `VIT_ppnet`,
configs `paper/bigshot/*_ppnet.yaml`), as read from that code:

- features: the encoder's patch tokens after the final norm; with `focal` (their
  `focal_similarity: true`) the cls token's output is subtracted from every patch token;
- J prototypes per class (20 in the paper configs), each a D-vector; a token's activation for a
  prototype is the cosine similarity, ReLU-ed; each prototype keeps its maximum over tokens
  (global max pooling, top-k 1);
- a class logit is a NON-NEGATIVE weighted sum of its own J activations (no connections to other
  classes' prototypes) plus a bias (initialized -2.0); weights start at 1.0;
- loss: the task loss (BCE for multi-label, here cross-entropy for single-label) plus the
  prototypes' orthogonality loss `||P_c P_cᵀ - I||_F / numel` over each class's normalized
  prototypes; AdamW with lr 0.04 for the prototypes and 4e-4 for the last layer, weight decay
  3e-4, cosine schedule, 30 epochs, batch 128.

Assumed / simplified (could not be confirmed exactly from the code): the reference's cosine adds
two epsilon channels and scales by 1/1.01, and its "upsample" add-on layer bilinearly doubles the
token map before matching; both are left out (plain cosine on the token grid). Prototypes start
uniform in [0, 1) as the reference's `torch.rand`. Reported: final-epoch top-1 (%) on the test split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anymae.tasks.evaluate.features import FeatureSet
from anymae.tasks.evaluate.labels import check_probe_labels


class PrototypeHead(nn.Module):
    """J prototypes per class, max-pooled cosine activations, per-class non-negative weights.

    Args:
        dim: token width D.
        num_classes: C.
        per_class: J prototypes per class.
        bias_init: initial logit bias (Bird-MAE: -2.0).
    """

    def __init__(self, dim: int, num_classes: int, per_class: int = 20, bias_init: float = -2.0) -> None:
        super().__init__()
        self.num_classes, self.per_class = num_classes, per_class
        self.prototypes = nn.Parameter(torch.rand(num_classes * per_class, dim))  # (C·J)×D
        self.weight = nn.Parameter(torch.ones(num_classes, per_class))  # C×J, used through ReLU
        self.bias = nn.Parameter(torch.full((num_classes,), bias_init))

    def activations(self, tokens: Tensor) -> Tensor:
        """B×T×D tokens -> B×(C·J) max over tokens of ReLU(cosine(token, prototype))."""
        sim = F.normalize(tokens, dim=-1) @ F.normalize(self.prototypes, dim=-1).t()  # B×T×(C·J)
        return sim.clamp_min(0).amax(dim=1)

    def forward(self, tokens: Tensor) -> Tensor:
        """B×T×D -> B×C logits."""
        act = self.activations(tokens).view(-1, self.num_classes, self.per_class)  # B×C×J
        return (act * self.weight.clamp_min(0)).sum(-1) + self.bias

    def orthogonality(self) -> Tensor:
        """`||P_c P_cᵀ - I||_F` over classes, divided by the number of entries (Bird-MAE's loss)."""
        p = F.normalize(self.prototypes, dim=-1).view(self.num_classes, self.per_class, -1)  # C×J×D
        gram = p @ p.transpose(1, 2) - torch.eye(self.per_class, device=p.device)  # C×J×J
        return gram.norm() / gram.numel()


@dataclass
class PrototypicalResult:
    """Final-epoch top-1 (%) on the test features, and the last training loss."""

    top1: float
    last_loss: float


def _focal(tokens: FeatureSet, cls: FeatureSet | None) -> Tensor:
    """N×T×D tokens, minus the cls output (N×D) when given."""
    x = tokens.features
    if x.ndim != 3:
        raise ValueError(f"prototypical probe needs per-token features N×T×D, got shape {tuple(x.shape)}")
    return x - cls.features.unsqueeze(1) if cls is not None else x


def prototypical_probe(
    train_tokens: FeatureSet,
    test_tokens: FeatureSet,
    *,
    train_cls: FeatureSet | None = None,
    test_cls: FeatureSet | None = None,
    per_class: int = 20,
    epochs: int = 30,
    batch_size: int = 128,
    prototype_lr: float = 0.04,
    last_layer_lr: float = 4e-4,
    weight_decay: float = 3e-4,
    seed: int = 0,
) -> PrototypicalResult:
    """Train a `PrototypeHead` on frozen tokens (focal when the cls features are given), score top-1.

    Args:
        train_tokens, test_tokens: N×T×D token features with int labels.
        train_cls, test_cls: N×D cls outputs for focal similarity (Bird-MAE), or None.
        per_class: J prototypes per class.
        epochs, batch_size: training length (cosine lr schedule to 0 over all steps).
        prototype_lr, last_layer_lr, weight_decay: AdamW groups (Bird-MAE's values).
        seed: seeds initialization and data order.
    """
    if len(train_tokens) == 0 or len(test_tokens) == 0:
        raise ValueError("prototypical_probe: empty train or test features")
    check_probe_labels(train_tokens.labels, test_tokens.labels, where="prototypical_probe")
    gen = torch.Generator().manual_seed(seed)
    num_classes = max(train_tokens.num_classes, test_tokens.num_classes)
    x_tr, x_te = _focal(train_tokens, train_cls), _focal(test_tokens, test_cls)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = PrototypeHead(x_tr.shape[-1], num_classes, per_class)
    opt = torch.optim.AdamW(
        [{"params": [head.prototypes], "lr": prototype_lr}, {"params": [head.weight, head.bias], "lr": last_layer_lr}],
        weight_decay=weight_decay,
    )
    base = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = math.ceil(len(x_tr) / batch_size)
    total, step, loss = epochs * steps_per_epoch, 0, torch.tensor(float("nan"))
    for _ in range(epochs):
        order = torch.randperm(len(x_tr), generator=gen)
        for i in range(0, len(x_tr), batch_size):
            idx = order[i : i + batch_size]
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(head(x_tr[idx]), train_tokens.labels[idx]) + head.orthogonality()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    with torch.no_grad():
        pred = torch.cat([head(x_te[i : i + 512]).argmax(1) for i in range(0, len(x_te), 512)])
    top1 = 100.0 * float((pred == test_tokens.labels).float().mean())
    return PrototypicalResult(top1=top1, last_loss=float(loss.detach()))
