"""Loss terms over several branches / views: visible-token distillation and cross-view BYOL.

- `VisibleDistillation` (DMJD `models_dmjd.py`, "visible distillation"): the encoder's visible
  tokens of each branch -> a 3-layer MLP (Linear, LN, GELU, Linear, LN, GELU, Linear, LN without
  affine) -> Linear -> the targets of those visible tokens; smooth-L1 (β = 2) averaged over every
  value of every branch. DMJD's code pairs its predictions (in the encoder's shuffled `ids_keep`
  order) with targets gathered by a boolean mask (ascending token order): `order="reference"`
  reproduces that pairing, `order="aligned"` pairs every token with its own target (the paper's
  description).
- `CrossViewBYOL` (LUT `engine_lut.py` / `models_lut.py`): student view v = mean of its visible
  patch tokens -> projector -> predictor; teacher view u = an EMA teacher's mean of ALL patch
  tokens of the unmasked view u -> the teacher's copy of the projector; loss = mean over pairs
  u != v of `2 − 2·cos(student_v, teacher_u)` (batch-averaged per pair).

Both read only the `Pass` (encodings, plans, targets, views' inputs), so they work for any modality
whose tokens the skeleton encodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.distributed as dist
import torch.distributed.nn as dist_nn
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from anymae.core.masking import gather_tokens
from anymae.core.skeleton.steps import Pass
from anymae.core.skeleton.terms import LossTerm

Order = Literal["reference", "aligned"]


def _xavier_(module: nn.Module) -> None:
    """MAE / DMJD / LUT init: xavier-uniform Linear weights, zero biases; norms at weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class VisibleDistillation(LossTerm):
    """DMJD's visible distillation (module doc).

    Args:
        dim: encoder width D.
        hidden: the MLP width (DMJD: the decoder width, 512).
        out_dim: the target width P (DMJD: 108 HOG values per patch).
        branches: the branches whose visible tokens are distilled (DMJD: both views).
        beta: smooth-L1's β (DMJD: 2.0).
        order: "reference" (DMJD's code pairing) or "aligned" (each token with its own target).
        name, weight: as `LossTerm` (DMJD: θ = 1).
    """

    def __init__(
        self, dim: int, hidden: int, out_dim: int, *, branches: Sequence[int] = (0, 1), beta: float = 2.0,
        order: Order = "reference", name: str = "vis", weight: float = 1.0,
    ) -> None:
        super().__init__(name, weight)
        if order not in ("reference", "aligned"):
            raise ValueError(f"VisibleDistillation order={order!r}: expected 'reference' or 'aligned'")
        if beta <= 0:
            raise ValueError(f"VisibleDistillation beta={beta}: expected > 0")
        self.branches, self.beta, self.order = tuple(branches), float(beta), order
        self.proj = nn.Sequential(
            nn.Linear(dim, hidden), nn.LayerNorm(hidden, eps=1e-6), nn.GELU(),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden, eps=1e-6), nn.GELU(),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden, eps=1e-6, elementwise_affine=False),
        )
        self.predictor = nn.Linear(hidden, out_dim)
        _xavier_(self)

    def targets(self, state: Pass, branch: int) -> Tensor:
        """B×Nv×P targets paired with branch `branch`'s visible tokens (in `plan.keep` order)."""
        keep = state.branches[branch].plan.keep  # B×Nv
        index = keep if self.order == "aligned" else torch.sort(keep, dim=1).values  # reference: token order
        return gather_tokens(state.target_of(branch), index)

    def forward(self, state: Pass) -> Tensor:
        preds, targets = [], []
        for k in self.branches:
            enc = state.branches[k].encoded
            preds.append(self.predictor(self.proj(enc.latent[:, enc.num_prefix :])))  # B×Nv×P
            targets.append(self.targets(state, k))
        pred, target = torch.cat(preds), torch.cat(targets)  # (V·B)×Nv×P, DMJD's cat over views
        return F.smooth_l1_loss(pred.float(), target.float(), beta=self.beta)  # mean over every value

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, branches={self.branches}, beta={self.beta}, order={self.order!r}"


class SyncedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are those of the whole batch across processes.

    LUT converts its model with `convert_sync_batchnorm`; torch's SyncBatchNorm runs on GPUs only
    (and DDP refuses it on CPU), so this computes the same statistics with one differentiable
    all-reduce of (Σx, Σx², count) over the default process group, on any device. One process (or
    eval mode) is a plain BatchNorm1d. State-dict keys as BatchNorm1d.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        if x.ndim != 2:
            raise ValueError(f"SyncedBatchNorm1d expects B×C inputs, got shape {tuple(x.shape)}")
        c, x = x.shape[1], x.float()  # statistics in fp32 (also under bf16 autocast)
        local = torch.cat([x.sum(0), (x * x).sum(0), x.new_full((1,), float(x.shape[0]))])  # 2C+1
        total = dist_nn.all_reduce(local)  # summed over processes, gradients flow back to each
        count = total[-1]
        mean = total[:c] / count  # C
        var = total[c : 2 * c] / count - mean * mean  # C, biased (normalization)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * count / (count - 1).clamp(min=1))  # unbiased
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr,operator]
        y = (x - mean) * torch.rsqrt(var + self.eps)  # B×C
        return y * self.weight + self.bias if self.affine else y


def byol_mlp(dim: int, hidden: int, out: int, *, sync_bn: bool = True) -> nn.Sequential:
    """LUT's 2-layer head: Linear(no bias) -> BatchNorm1d -> ReLU -> Linear(no bias)."""
    norm = SyncedBatchNorm1d(hidden) if sync_bn else nn.BatchNorm1d(hidden)
    head = nn.Sequential(
        nn.Linear(dim, hidden, bias=False), norm, nn.ReLU(inplace=True), nn.Linear(hidden, out, bias=False)
    )
    _xavier_(head)
    return head


def byol_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """B per-sample `2 − 2·cos(student, teacher)` (both B×D, L2-normalized here)."""
    return 2 - 2 * (F.normalize(student, dim=-1) * F.normalize(teacher, dim=-1)).sum(dim=-1)


class CrossViewBYOL(LossTerm):
    """LUT's term: masked student views predict an EMA teacher's unmasked other views (module doc).

    Args:
        dim: encoder width D.
        hidden: the projector / predictor width (LUT: 4096).
        teacher: the name of the model's EMA teacher (`model.teachers[teacher]`), which must hold
            a copy of this term's projector (`EMATeacher(parts=(..., "terms.<i>.projector"))`).
        branches: the student branches, one per view (LUT: branch 0 on view 0, branch 1 on view 1).
        sync_bn: `SyncedBatchNorm1d` (statistics over every process's batch, as LUT's SyncBN) or a
            per-process BatchNorm1d.
        name, weight: as `LossTerm` (LUT: `w_bc` 0.25).
    """

    def __init__(
        self, dim: int, hidden: int = 4096, *, teacher: str = "ema", branches: Sequence[int] = (0, 1),
        sync_bn: bool = True, name: str = "lut", weight: float = 0.25,
    ) -> None:
        super().__init__(name, weight)
        if len(branches) < 2:
            raise ValueError(f"CrossViewBYOL needs two or more branches (views), got {tuple(branches)}")
        self.teacher, self.branches = teacher, tuple(branches)
        self.projector = byol_mlp(dim, hidden, dim, sync_bn=sync_bn)
        self.predictor = byol_mlp(dim, hidden, dim, sync_bn=sync_bn)

    def projector_path(self, model: nn.Module) -> str:
        """This term's projector as a submodule path of `model` ("terms.<i>.projector")."""
        for i, term in enumerate(model.terms):
            if term is self:
                return f"terms.{i}.projector"
        raise ValueError(f"loss term {self.name!r} is not one of the model's terms")

    def student(self, state: Pass) -> list[Tensor]:
        """Per branch: predictor(projector(mean of its visible patch tokens)), B×D each."""
        out = []
        for k in self.branches:
            enc = state.branches[k].encoded
            out.append(self.predictor(self.projector(enc.latent[:, enc.num_prefix :].mean(dim=1))))
        return out

    @torch.no_grad()
    def teacher_targets(self, state: Pass) -> list[Tensor]:
        """Per branch's view: the teacher's projector(mean of all patch tokens of the unmasked view), B×D."""
        model = state.model
        if model is None or self.teacher not in model.teachers:
            have = [] if model is None else sorted(model.teachers)
            raise ValueError(
                f"loss term {self.name!r} needs an EMA teacher named {self.teacher!r}; the model has {have}"
            )
        teacher = model.teachers[self.teacher]
        projector = teacher.part(self.projector_path(model))
        views = [state.branches[k].view for k in self.branches]
        return [projector(teacher(state.view_inputs[v] if state.view_inputs else state.inputs).tokens.mean(dim=1))
                for v in views]

    def forward(self, state: Pass) -> Tensor:
        student, teacher = self.student(state), self.teacher_targets(state)
        pairs = [byol_loss(student[v], teacher[u]).mean()
                 for u in range(len(teacher)) for v in range(len(student)) if u != v]
        return torch.stack(pairs).mean()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, teacher={self.teacher!r}, branches={self.branches}"
