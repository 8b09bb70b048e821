"""A teacher's features as targets, computed once per forward pass and shared.

    teacher_pass(model, name, inputs, cache, index=..., taps=..., attention_block=...) -> TeacherOutput
    TeacherFeatures(name, dim, layer=None, norm="none")     a TargetProvider: B×N×dim in token order
    feature_norm(x, "none" | "layer" | "l2")                MaskAlign's "whiten" = LayerNorm without affine
    SCORE_SOURCES["teacher_cls_attention"]                  log cls -> patch attention of the teacher's last block

Every user of a teacher in one pass (a masking strategy, a target provider, loss terms) calls
`teacher_pass`; the first call runs the teacher (`core.skeleton.teacher.Teacher.forward`) and stores
its `TeacherOutput` in the pass's shared dict under the teacher's name (`Pass.cache[name]` ==
`MaskContext.cache[name]`); later calls reuse it. A later call may not ask for more than the first
one computed (other taps, attention, or another visible set): that is an error naming what
differs, so a recipe asks every user of a teacher for one `TeacherRequest` (and sets it as the
teacher's `request` attribute, which the "teacher_cls_attention" score source reads).

The teacher sees all N tokens (`index=None`: MaskAlign, MR-MAE) or only the student's visible
tokens (`index=plan.keep`: DMAE shares `ids_keep`). Features "at hidden or visible positions" are
read from the token-order output: `TeacherFeatures` gives all N (the reconstruction term then
scores the hidden ones); visible-token terms gather `plan.keep` (`core.skeleton.distill_terms`).
Any modality whose tokenizer a `TransformerEncoder` teacher can run works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anymae.core.masking import MaskContext
from anymae.core.masking.scores import SCORE_SOURCES
from anymae.core.targets import TargetProvider
from anymae.core.tokens import Tokens

FeatureNorm = Literal["none", "layer", "l2"]
TEACHER = "teacher"  # the name recipes give their one teacher


@dataclass(frozen=True)
class TeacherRequest:
    """What a pass asks of a teacher (the same for every user in a recipe).

    Attributes:
        name: the teacher's name in `model.teachers`.
        taps: block indices (0-based) whose outputs are kept.
        attention_block: a block whose attention maps are kept (None: none).
        visible: run on the student's visible tokens (`index=plan.keep`) instead of all tokens.
    """

    name: str = TEACHER
    taps: tuple[int, ...] = ()
    attention_block: int | None = None
    visible: bool = False


def teacher_pass(
    model: nn.Module, request: TeacherRequest, inputs: Any, cache: dict[str, Any], index: Tensor | None = None
) -> Any:
    """The teacher's output for this pass: computed on the first call, then read from `cache`.

    Args:
        model: the model owning `model.teachers[request.name]`.
        request: what to compute (module doc).
        inputs: the modality batch (the teacher tokenizes it itself).
        cache: the pass's shared dict.
        index: B×Nv the student's visible tokens (required when `request.visible`).

    Returns:
        `TeacherOutput` (B×(P+M)×D latent; M = N, or Nv on the visible set).
    """
    teachers = getattr(model, "teachers", {})
    if request.name not in teachers:
        raise ValueError(f"this model has no teacher named {request.name!r}; it has {sorted(teachers)}")
    if request.visible and index is None:
        raise ValueError(f"teacher {request.name!r} runs on the student's visible tokens: give index=plan.keep")
    key = request.name
    if key in cache:
        stored_request, stored_index, out = cache[key]
        if stored_request != request:
            raise ValueError(
                f"teacher {request.name!r} was already run this pass as {stored_request}; a second user asked "
                f"for {request}: give every user of one teacher the same TeacherRequest"
            )
        if request.visible and not torch.equal(stored_index, index):
            raise ValueError(f"teacher {request.name!r} was run on another visible set this pass")
        return out
    out = teachers[request.name](
        inputs, index=index if request.visible else None, taps=request.taps, attention_block=request.attention_block
    )
    cache[key] = (request, index, out)
    return out


def feature_norm(x: Tensor, kind: FeatureNorm) -> Tensor:
    """Per-token normalization of B×L×D features: "none", "layer" (LayerNorm without affine,
    eps 1e-5: MaskAlign's "whiten", `F.layer_norm(y, (D,))`) or "l2" (unit length)."""
    if kind == "none":
        return x
    if kind == "layer":
        return F.layer_norm(x, (x.shape[-1],))
    if kind == "l2":
        return F.normalize(x, dim=-1)
    raise ValueError(f"feature norm {kind!r}: expected 'none', 'layer' or 'l2'")


def layer_features(out: Any, layer: int | None) -> Tensor:
    """B×(P+M)×D: the final (normed) latent (`layer=None`) or block `layer`'s output (a tap)."""
    if layer is None:
        return out.latent
    if layer not in out.taps:
        raise ValueError(f"the teacher output holds blocks {sorted(out.taps)}, not block {layer}: add it to the taps")
    return out.taps[layer]


class TeacherFeatures(TargetProvider):
    """A teacher's per-token features as the decoder's targets (all N tokens, token order).

    Args:
        dim: the teacher's width D (the decoder head's output size).
        layer: None = the teacher's final features (after its final norm); k = block k's output.
        norm: per-token normalization of the targets (`feature_norm`).
        name: the teacher's name in `model.teachers`.
    """

    def __init__(self, dim: int, *, layer: int | None = None, norm: FeatureNorm = "none", name: str = TEACHER) -> None:
        super().__init__()
        feature_norm(torch.zeros(1, 1, 1), norm)  # validates the name
        self.dim, self.layer, self.norm = int(dim), layer, norm
        self.request = TeacherRequest(name, taps=() if layer is None else (layer,))

    def forward(self, tokens: Tokens, inputs: Any, cache: dict[str, Any], model: nn.Module) -> Tensor:
        out = teacher_pass(model, self.request, inputs, cache)
        feats = layer_features(out, self.layer)[:, out.num_prefix :]  # B×N×D, prefix left out
        if feats.shape[1] != tokens.x.shape[1]:
            raise ValueError(f"the teacher gives {feats.shape[1]} tokens, the student has {tokens.x.shape[1]}")
        return feature_norm(feats.float(), self.norm).detach()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, layer={self.layer}, norm={self.norm!r}, teacher={self.request.name!r}"


def cls_attention_scores(context: MaskContext) -> Tensor:
    """B×N log of the teacher's last-block cls -> token attention (heads averaged), for
    `score_sample` masking: softmax(log a) = a / Σa, so the draw is MaskAlign's
    `multinomial(attention)` over the tokens, without replacement."""
    model = context.model
    if model is None or TEACHER not in getattr(model, "teachers", {}):
        raise ValueError(f"score source 'teacher_cls_attention' needs a model with a teacher named {TEACHER!r}")
    teacher = model.teachers[TEACHER]
    request = getattr(teacher, "request", None) or TeacherRequest(attention_block=teacher.encoder.depth - 1)
    out = teacher_pass(model, request, context.inputs, context.cache)
    return out.cls_attention().clamp_min(1e-12).log()  # B×N


SCORE_SOURCES["teacher_cls_attention"] = cls_attention_scores

__all__ = ["TEACHER", "FeatureNorm", "TeacherFeatures", "TeacherRequest", "feature_norm", "layer_features",
           "teacher_pass"]
