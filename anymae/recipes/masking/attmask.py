"""AttMask (crossmodal_and_zoo.md B2; gkakogeorgiou/attmask `attmask.py`, `main_attmask.py`, `loader.py`).

Masks from a teacher's attention: the teacher's last-block cls -> patch attention on the unmasked
images, averaged over heads, ranks the patches (`score_reveal` on the `teacher_cls_attention`
score source of `core.targets.teacher_features`, which gives its log: the same order):

- `attmask="high"`: hide the `int(L·r)` most attended; `"low"`: the least attended;
- `attmask="hint"` (the paper's default): hide the most attended, then reveal
  `int((show_max · r') · L)` of them drawn uniformly from the `int(L · show_max)` most attended.

The prediction ratio r is drawn once per batch from U(0.3 − 0.2, 0.3 + 0.2) (`pred_ratio 0.3 ±
0.2`), from the batch's seeds. The reference calls `get_pred_ratio()` twice, so the hint count uses
a second, independent draw r' (`reveal_draw="independent"`, the default); `"same"` uses r. Each
image is masked with probability `masking_prob` (0.5), otherwise not at all: `SampleGate` draws
that per sample from its seed, and `GatedReconstruction` counts only the masked images' tokens,
with iBOT's normalization (mean over each image's masked tokens, 0 for an unmasked image, mean
over the batch). The plan still draws a hidden set for an ungated image (our plans have exact
counts per sample), but the branch marks the image inactive (`BranchPlan.active`): the
replace-mode encoder sees its own tokens (no [MASK] vector, as the reference's unmasked image), no
loss counts it and `MAEOutput.mask` shows nothing hidden (the `rec` part, weight 0, logs the
masked images' plain mean).

What differs from the reference (which trains iBOT: a DINO cls loss across 2 global + 10 local
crops and a patch loss against the teacher's 8192-way patch distributions): there is no iBOT head
here. The student is SimMIM-style (replace mode: every patch encoded, hidden ones replaced by a
learned [MASK] vector, zero-initialized as iBOT's `masked_embed`; a linear head per token) and
reconstructs the normalized pixels of the hidden patches (norm_pix MSE; `loss=l1` /
`norm_pix_loss=false` are options). The teacher is an EMA of the student's tokenizer and encoder
(momentum 0.996 rising to 1 by a cosine over the run, iBOT / DINO's schedule), or a frozen encoder
from `teacher.checkpoint=PATH` (`teacher="frozen"`: the base preset's encoder architecture).

Presets: `attmask_vit_small_patch16` (ViT-S/16 at 224, the paper's size, student drop path 0.1;
100 epochs of 5338 steps: ImageNet-1k at 60 × 4 images per step) and `attmask_vit_tiny_patch4` (the tiny encoder, 32×32
images, patch 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anymae.core.masking.scores import RevealTopMasking, SampleGate
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import register_model
from anymae.core.skeleton import ReplaceMode
from anymae.core.skeleton.gated_terms import GatedReconstruction
from anymae.core.skeleton.teacher import EMATeacher, FrozenTeacher, Momentum
from anymae.core.targets.teacher_features import TEACHER  # also registers the teacher_cls_attention source
from anymae.recipes.masking._on_base import build_base, recipe_config, split_options

# the base options AttMask sets itself: its masking and ratio (pred_ratio) and the mode (replace)
_FIXED = ("masking", "masking_params", "mask_ratio", "mode")
_MODES = ("hint", "high", "low")


@dataclass
class AttMaskConfig:
    """AttMask's options (every other option goes to the base image preset, e.g. `img_size`, `loss`).

    Attributes:
        base: the base image preset (its encoder sizes; the model runs it in replace mode).
        attmask: "hint" (the paper's default), "high" or "low".
        pred_ratio, pred_ratio_var: the prediction ratio r ~ U(pred_ratio ± pred_ratio_var), once per batch.
        show_max: the hint pool (the top share of tokens) and the hint count's factor.
        reveal_draw: "independent" (the reference: a second draw of r for the hint count) or "same".
        masking_prob: the probability that an image is masked at all (0.5).
        teacher: "ema" (an EMA of the student) or "frozen" (a file given as `teacher.checkpoint`).
        momentum, momentum_end: the EMA decay, cosine from `momentum` to `momentum_end` over the run.
        epochs, steps_per_epoch: the run's length (the EMA cosine spans epochs × steps_per_epoch).
    """

    base: str = "mae_vit_small_patch16"
    attmask: str = "hint"
    pred_ratio: float = 0.3
    pred_ratio_var: float = 0.2
    show_max: float = 0.1
    reveal_draw: str = "independent"
    masking_prob: float = 0.5
    teacher: str = "ema"
    momentum: float = 0.996
    momentum_end: float = 1.0
    epochs: int = 100
    steps_per_epoch: int = 5338

    def check(self, name: str) -> None:
        """ValueError naming the option unless every value is usable."""
        if self.attmask not in _MODES:
            raise ValueError(f"model {name!r}: attmask={self.attmask!r}, expected one of {list(_MODES)}")
        if self.teacher not in ("ema", "frozen"):
            raise ValueError(f"model {name!r}: teacher={self.teacher!r}, expected 'ema' or 'frozen'")
        if self.reveal_draw not in ("same", "independent"):
            raise ValueError(f"model {name!r}: reveal_draw={self.reveal_draw!r}, expected 'same' or 'independent'")
        for option in ("epochs", "steps_per_epoch"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model {name!r}: {option}={value!r}, expected an integer >= 1")
        if not 0.0 < self.pred_ratio - self.pred_ratio_var or not self.pred_ratio + self.pred_ratio_var < 1.0 \
                or self.pred_ratio_var < 0:
            raise ValueError(f"model {name!r}: pred_ratio={self.pred_ratio} ± pred_ratio_var={self.pred_ratio_var} "
                             "must stay inside (0, 1)")
        if not 0.0 < self.show_max <= 1.0:
            raise ValueError(f"model {name!r}: show_max={self.show_max}, expected a share in (0, 1]")


ATTMASK_PRESETS: dict[str, AttMaskConfig] = {
    "attmask_vit_small_patch16": AttMaskConfig(),
    # CPU size: the tiny encoder of mae_vit_tiny_patch4 (so an anymae tiny MAE checkpoint is a frozen teacher).
    "attmask_vit_tiny_patch4": AttMaskConfig(base="mae_vit_tiny_patch4", epochs=100, steps_per_epoch=10),
}
# base options of the presets (users may override them): pixel targets normalized per patch; the
# reference's student drop path 0.1 (`--drop_path`) at the paper's size
_BASE_DEFAULTS: dict[str, dict[str, Any]] = {
    "attmask_vit_small_patch16": {"norm_pix_loss": True, "drop_path": 0.1},
    "attmask_vit_tiny_patch4": {"norm_pix_loss": True},
}


def attmask_masking(cfg: AttMaskConfig) -> SampleGate:
    """AttMask's masking: `score_reveal` on the teacher's cls attention, gated per sample."""
    inner = RevealTopMasking(
        cfg.pred_ratio, reveal=cfg.show_max if cfg.attmask == "hint" else 0.0, top=cfg.show_max,
        order="low" if cfg.attmask == "low" else "high", source="teacher_cls_attention",
        ratio_var=cfg.pred_ratio_var, reveal_draw=cfg.reveal_draw,  # type: ignore[arg-type]
    )
    return SampleGate(inner, cfg.masking_prob)


def build_attmask(name: str, **overrides: Any) -> MaskedAutoencoder:
    """An AttMask preset with overrides (`AttMaskConfig` fields, or the base image preset's options)."""
    cfg, options = split_options(name, ATTMASK_PRESETS[name], overrides, fixed=_FIXED,
                                 why="AttMask draws its ratio (pred_ratio ± pred_ratio_var) and runs in replace mode")
    cfg.check(name)
    base_options = {**_BASE_DEFAULTS[name], **options}
    base = build_base(name, cfg, cfg.base, {**base_options, "mode": "replace"})
    model = MaskedAutoencoder(
        base.tokenizer, base.encoder, base.decoder, attmask_masking(cfg),
        mode=ReplaceMode(remask=False, project=False, mask_token_std=0.0),  # iBOT's zero-init masked_embed
        terms=[GatedReconstruction()], reconstruction_weight=0.0,  # `rec` (every sample) is logged, not trained
        target_norm=base.target_norm, loss=base.loss_name, loss_params=base.loss_params,
        config=recipe_config(name, base, cfg, fixed=_FIXED),
    )
    if cfg.teacher == "ema":
        spe = cfg.steps_per_epoch
        decay = Momentum(cfg.momentum) if cfg.momentum_end == cfg.momentum else \
            Momentum(cfg.momentum, cfg.momentum_end, cfg.epochs * spe)
        model.add_teacher(TEACHER, EMATeacher(model, decay, parts=("tokenizer", "encoder")))
    else:  # the base's encoder architecture, weights from teacher.checkpoint (tasks.train.teacher_setup)
        fresh = build_base(name, cfg, cfg.base, base_options)
        model.add_teacher(TEACHER, FrozenTeacher(fresh.tokenizer, fresh.encoder))
    return model


for _name, _cfg in ATTMASK_PRESETS.items():
    _patch = 4 if _name.endswith("patch4") else 16
    register_model(
        _name, build_attmask, modality="image",
        summary=f"AttMask ({_cfg.attmask}): {_cfg.base} in replace mode, masks from the teacher's cls attention",
        # 4×4 tokens: the hint pool int(16 · 0.1) = 1 >= the revealed int(0.1 · r' · 16) = 0
        small={"img_size": 4 * _patch, "depth": 1},
    )
