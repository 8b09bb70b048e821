"""Loss terms that distil a teacher into the student's encoder, and CAE's latent alignment.

    FeatureAlignment   student layer(s) -> projector -> [l2] vs teacher layer(s) at the visible
                       tokens (+ cls): DMAE (L1 of normalized block outputs, teacher on the same
                       visible set) and MR-MAE's mimic (final visible tokens vs teacher features)
    MaskAlignLoss      every student block, mixed by a learned matrix ("dynamic alignment"),
                       one linear head per teacher layer, vs whitened teacher layers at the visible
                       tokens + cls; smooth-L1 averaged over the top-k teacher layers (MaskAlign)
    LatentAlignment    CAE: the regressor's predicted latents of the hidden tokens vs a no-grad
                       pass of the encoder on the hidden tokens (MSE)

Teachers are run through `core.targets.teacher_features.teacher_pass` (once per pass, cached under
the teacher's name). Layer indices are 0-based block indices; a block's output is read before the
encoder's final norm (`Encoded.taps`), `None` means the final (normed) latent. The terms read the
first branch. They work for any modality whose student and teacher encoders are
`TransformerEncoder`s over the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anymae.core.masking import gather_tokens
from anymae.core.skeleton.steps import Pass
from anymae.core.skeleton.terms import LossTerm
from anymae.core.targets.teacher_features import (
    FeatureNorm, TeacherRequest, feature_norm, layer_features, teacher_pass,
)

ElementLoss = Literal["l1", "mse", "smooth_l1"]
Fusion = Literal["linear", "sum", "none"]


def element_loss(pred: Tensor, target: Tensor, kind: ElementLoss) -> Tensor:
    """Mean over every element of B×L×D: L1, squared error, or smooth-L1 (β = 1)."""
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target)
    raise ValueError(f"loss {kind!r}: expected 'l1', 'mse' or 'smooth_l1'")


def _student_layer(state: Pass, layer: int | None) -> Tensor:
    """B×(P+Nv)×D: the first branch's final latent (None) or block `layer`'s output."""
    encoded = state.branches[0].encoded
    if layer is None:
        return encoded.latent
    if layer not in encoded.taps:
        raise ValueError(f"the student's encoder output holds blocks {sorted(encoded.taps)}, not block {layer}")
    return encoded.taps[layer]


def teacher_at_visible(state: Pass, request: TeacherRequest, layer: int | None, norm: FeatureNorm,
                       prefix: bool) -> Tensor:
    """B×([1]+Nv)×D: the teacher's features (layer, normalized per token) at the student's
    visible tokens in `plan.keep` order, its cls token first when `prefix`."""
    keep = state.branches[0].plan.keep  # B×Nv
    out = teacher_pass(state.model, request, state.inputs, state.cache, index=keep)
    feats = feature_norm(layer_features(out, layer).float(), norm)  # B×(P+M)×D
    p = out.num_prefix
    tokens = feats[:, p:] if request.visible else gather_tokens(feats[:, p:], keep)  # B×Nv×D
    if prefix:
        if p < 1:
            raise ValueError("the teacher has no cls token to align (num_prefix 0)")
        tokens = torch.cat([feats[:, :1], tokens], dim=1)  # B×(1+Nv)×D
    return tokens.detach()


def student_at_visible(state: Pass, layer: int | None, prefix: bool) -> Tensor:
    """B×([1]+Nv)×D: the student's layer at its visible tokens, cls first when `prefix`."""
    x = _student_layer(state, layer)
    p = state.branches[0].encoded.num_prefix
    if prefix and p < 1:
        raise ValueError("the student has no cls token to align (num_prefix 0)")
    return torch.cat([x[:, :1], x[:, p:]], dim=1) if prefix else x[:, p:]


class FeatureAlignment(LossTerm):
    """Pairs of (student layer, teacher layer) aligned at the visible tokens (+ cls).

    Per pair: `loss(norm(teacher), norm(head(student)))`, averaged over the pairs, where `head`
    is a Linear(student width -> teacher width) per pair and `norm` is `target_norm` on the
    teacher's side and `pred_norm` on the projected student's side.

    DMAE: pairs ((8, 17),) at ViT-B <- ViT-L, Linear 768 -> 1024, both sides l2, L1, cls +
    visible, the teacher run on the student's visible set. MR-MAE: ((None, None),), MSE,
    visible tokens only, the teacher on the whole input.

    Args:
        student_dim, teacher_dim: widths.
        pairs: (student block or None, teacher block or None) per aligned pair.
        request: how the teacher runs (its taps must hold the pairs' teacher blocks).
        loss: "l1", "mse" or "smooth_l1" (mean over elements).
        pred_norm, target_norm: per-token normalization of the two sides.
        prefix: include the cls token.
        name, weight: as `LossTerm`.
    """

    def __init__(
        self, student_dim: int, teacher_dim: int, *, pairs: Sequence[tuple[int | None, int | None]],
        request: TeacherRequest, loss: ElementLoss = "l1", pred_norm: FeatureNorm = "none",
        target_norm: FeatureNorm = "none", prefix: bool = False, name: str = "distill", weight: float = 1.0,
    ) -> None:
        if not pairs:
            raise ValueError(f"loss term {name!r}: give at least one (student layer, teacher layer) pair")
        missing = [t for _, t in pairs if t is not None and t not in request.taps]
        if missing:
            raise ValueError(
                f"loss term {name!r}: teacher blocks {missing} are not in the teacher's taps {request.taps}"
            )
        element_loss(torch.zeros(1), torch.zeros(1), loss)
        super().__init__(name, weight, taps=tuple(sorted({s for s, _ in pairs if s is not None})))
        self.pairs = [tuple(p) for p in pairs]
        self.request = request
        self.loss, self.pred_norm, self.target_norm, self.prefix = loss, pred_norm, target_norm, prefix
        self.heads = nn.ModuleList(nn.Linear(student_dim, teacher_dim) for _ in self.pairs)
        for head in self.heads:
            nn.init.xavier_uniform_(head.weight)  # MAE's init of every Linear
            nn.init.zeros_(head.bias)

    def forward(self, state: Pass) -> Tensor:
        total = None
        for (s_layer, t_layer), head in zip(self.pairs, self.heads):
            target = teacher_at_visible(state, self.request, t_layer, self.target_norm, self.prefix)  # B×L×Dt
            pred = feature_norm(head(student_at_visible(state, s_layer, self.prefix)), self.pred_norm)  # B×L×Dt
            value = element_loss(pred.float(), target, self.loss)
            total = value if total is None else total + value
        assert total is not None
        return total / len(self.pairs)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pairs={self.pairs}, loss={self.loss!r}, prefix={self.prefix}"


class MaskAlignLoss(LossTerm):
    """MaskAlign's dynamic alignment of every student block to the top-k teacher layers.

    Student block outputs h_0..h_{S-1} (visible tokens + cls) are mixed per teacher layer t:
    `m_t = Σ_s W[t, s] h_s` (fusion "linear": W = I + 0.01, square, S = T; "sum": W = 1/S,
    T×S; "none": m_t = h_t), mapped by a Linear head to the teacher width, and compared with the
    teacher's block-t output (whitened: LayerNorm without affine) at the same tokens:
    `loss = Σ_{t in top k} (1/k) · 2 · smooth_l1(m_t head, teacher_t)`.

    Heads exist only for the k scored layers (the reference builds one per teacher layer, the
    others never get a gradient). The student's final latent (after the encoder's final norm) is
    not aligned; it is added to the loss times 0, so the final norm gets an exact zero gradient
    (AdamW leaves it at its init, as the reference's unused norm) and DDP without unused-parameter
    search sees every parameter used, while the norm stays trainable for fine-tuning.

    Args:
        student_dim, student_depth, teacher_dim, teacher_depth: sizes.
        request: how the teacher runs (whole input; taps must hold the top-k blocks).
        top: k, the scored teacher layers (the last k blocks).
        fusion: "linear", "sum" or "none".
        target_norm: the teacher side's normalization ("layer" = whiten).
        loss: element loss ("smooth_l1" in the reference's recipe; the factor 2 applies to it).
        name, weight: as `LossTerm`.
    """

    def __init__(
        self, student_dim: int, student_depth: int, teacher_dim: int, teacher_depth: int, *,
        request: TeacherRequest, top: int = 5, fusion: Fusion = "linear", target_norm: FeatureNorm = "layer",
        loss: ElementLoss = "smooth_l1", name: str = "align", weight: float = 1.0,
    ) -> None:
        if not 1 <= top <= teacher_depth:
            raise ValueError(f"maskalign top={top}: expected 1..{teacher_depth} (the teacher's depth)")
        if fusion in ("linear", "none") and student_depth != teacher_depth:
            raise ValueError(f"maskalign fusion={fusion!r} needs equal depths, got student {student_depth}, "
                             f"teacher {teacher_depth}; use fusion 'sum'")
        self.layers = tuple(range(teacher_depth - top, teacher_depth))
        missing = [t for t in self.layers if t not in request.taps]
        if missing:
            raise ValueError(f"maskalign: teacher blocks {missing} are not in the teacher's taps {request.taps}")
        super().__init__(name, weight, taps=tuple(range(student_depth)))
        self.request, self.fusion, self.target_norm, self.loss = request, fusion, target_norm, loss
        if fusion == "linear":
            self.mix = nn.Parameter(torch.eye(student_depth) + 0.01)  # T×S
        elif fusion == "sum":
            self.mix = nn.Parameter(torch.ones(teacher_depth, student_depth) / student_depth)  # T×S
        elif fusion != "none":
            raise ValueError(f"maskalign fusion {fusion!r}: expected 'linear', 'sum' or 'none'")
        self.heads = nn.ModuleList(nn.Linear(student_dim, teacher_dim) for _ in self.layers)
        for head in self.heads:
            nn.init.xavier_uniform_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, state: Pass) -> Tensor:
        hs = torch.stack([student_at_visible(state, s, True) for s in self.taps])  # S×B×(1+Nv)×D
        rows = torch.tensor(self.layers, device=hs.device)
        if self.fusion == "none":
            mixed = hs[rows]  # k×B×(1+Nv)×D
        else:
            mixed = torch.einsum("ts,sbld->tbld", self.mix[rows], hs)  # k×B×(1+Nv)×D
        total = hs.new_zeros(())
        for j, (t_layer, head) in enumerate(zip(self.layers, self.heads)):
            target = teacher_at_visible(state, self.request, t_layer, self.target_norm, True)  # B×(1+Nv)×Dt
            value = element_loss(head(mixed[j]).float(), target, self.loss)
            total = total + (2.0 * value if self.loss == "smooth_l1" else value) / len(self.layers)
        return total + 0.0 * state.branches[0].encoded.latent.sum()  # the final norm: a zero gradient (doc)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layers={self.layers}, fusion={self.fusion!r}, loss={self.loss!r}"


class LatentAlignment(LossTerm):
    """CAE's alignment: MSE(predicted latents of the hidden tokens, no-grad encoder on them).

    The prediction is the latent regressor's output at the queried tokens (`Decoded.hidden`
    holds `[visible latents, predicted latents]`, `core.decoders.latent_regressor`). The target is the
    encoder (the student's own weights: CAE's alignment encoder is a copy re-synced every step,
    `param.data = encoder.data`) run without gradient on the queried tokens alone, final norm
    on, prefix dropped, then through the regressor's input projection (identity at equal widths).
    `mean((pred - target)²)` over every element; CAE weights it 2.

    Args:
        name, weight: as `LossTerm`.
    """

    def __init__(self, *, name: str = "align", weight: float = 2.0) -> None:
        super().__init__(name, weight)

    def forward(self, state: Pass) -> Tensor:
        branch, model = state.branches[0], state.model
        hidden, query = branch.decoded.hidden, branch.planned.query
        if hidden is None or query is None:
            raise ValueError(f"loss term {self.name!r} needs a latent regressor decoder (predicted latents at queries)")
        pred = hidden[:, hidden.shape[1] - query.shape[1] :]  # B×Nq×dim
        with torch.no_grad():
            tokens = state.tokens
            enc = model.run_encoder(gather_tokens(tokens.x, query), tokens, query)  # B×(P+Nq)×D
            target = model.decoders[0].project_latent(enc.latent[:, enc.num_prefix :])  # B×Nq×dim
        return F.mse_loss(pred.float(), target.detach().float())


__all__ = ["FeatureAlignment", "LatentAlignment", "MaskAlignLoss", "element_loss", "student_at_visible",
           "teacher_at_visible"]
