"""HPM, Hard Patches Mining (crossmodal_and_zoo.md B1; Haochen-Wang409/HPM `models_mae_learn_loss.py`,
`engine_pretrain.py`, `main_pretrain.py`).

MAE plus a loss predictor (`core.skeleton.aux_heads.LossPrediction`: a second decoder of the
decoder's size on the same decoder input, p²·C outputs averaged to one value per token), trained
with weight 1 on the student's hidden tokens to rank (relative, default) or regress (MSE to the
per-sample standardized losses) their detached reconstruction losses. An EMA copy of the whole
student (tokenizer, encoder, decoder, predictor) predicts the losses of every token of the
unmasked batch; `score_topk` masking hides the top `int(Nm · keep_ratio)` of them and fills the
rest of the Nm = N − int(N(1 − r)) hidden tokens at random.

Schedules (pure functions of the step; the recipe needs `steps_per_epoch`, a model option the
config fills, since the model cannot see the data):

- easy -> hard: `keep_ratio = float((epoch + 1) / epochs) · 0.5`, held for the epoch (`Stages`
  with one value per epoch, computed with the reference's float operations, so
  `int(Nm · keep_ratio)` matches it exactly: ViT-B, 800 epochs: 0 forced at epoch 0, 73 of 147 at
  the last); `guide=False` forces 0.5 from the start;
- EMA decay `0.999 + epoch / 100 · (0.9999 − 0.999)` for the first 100 epochs, then 0.9999
  (`Linear(..., every=steps_per_epoch)`), applied after every optimizer step.

The reference's `--learning_loss` and `--relative` are `store_true` with default True (they
cannot be turned off); here both are real options: `learning_loss=False` is plain MAE (random
masks, no predictor, no teacher), `relative=False` the MSE loss. Any base whose decoder is a
global-attention `MAEDecoder` works (`base=` an image, video or audio preset; Audio-MAE's local
decoder is windowed: use `decoder="global"`).

Presets: `hpm_vit_base_patch16` (MAE ViT-B/16, 137.27M trainable = 111.66M + 25.61M predictor;
800 epochs of 5004 steps: ImageNet-1k at 32 × 8 images per step, drop_last) and
`hpm_vit_tiny_patch4` (the tiny MAE, 32×32 images, patch 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from anymae.core.masking.scores import HardTopKMasking
from anymae.core.model import MaskedAutoencoder
from anymae.core.registry import register_model
from anymae.core.schedules import Constant, Linear, Stages
from anymae.core.skeleton import DropMode
from anymae.core.skeleton.aux_heads import LossPrediction
from anymae.core.skeleton.teacher import EMATeacher
from anymae.recipes.masking._on_base import build_base, recipe_config, split_options

TEACHER = "ema"
_FIXED = ("masking", "masking_params")  # HPM's masking is its own (score_topk on predicted losses)


@dataclass
class HPMConfig:
    """HPM's options (every other option goes to the base preset, e.g. `img_size`, `mask_ratio`).

    Attributes:
        base: the base preset (MAE ViT-B/16 in the paper).
        learning_loss: add the loss predictor, the EMA teacher and predicted-loss masking (True in
            the reference, where it cannot be turned off); False is plain MAE.
        relative: the relative (pairwise) predictor loss (True in the reference) or MSE.
        guide: the easy -> hard ramp of the forced share (True); False forces `hard_max` always.
        epochs: the run's epochs (`optim.epochs`): the length of the ramp.
        steps_per_epoch: optimizer steps per epoch of the run (floor(images / (batch × ranks ×
            accum_iter)); ImageNet-1k at 256 per step: 5004).
        hard_max: the forced share at the last epoch (0.5).
        ema_start, ema_end, ema_epochs: the EMA decay ramps linearly per epoch from `ema_start` to
            `ema_end` over `ema_epochs` epochs, then stays (0.999, 0.9999, 100).
        predictor_weight: weight of the predictor's loss (1).
    """

    base: str = "mae_vit_base_patch16"
    learning_loss: bool = True
    relative: bool = True
    guide: bool = True
    epochs: int = 800
    steps_per_epoch: int = 5004
    hard_max: float = 0.5
    ema_start: float = 0.999
    ema_end: float = 0.9999
    ema_epochs: int = 100
    predictor_weight: float = 1.0

    def check(self, name: str) -> None:
        """ValueError naming the option unless every value is usable."""
        for option in ("epochs", "steps_per_epoch", "ema_epochs"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model {name!r}: {option}={value!r}, expected an integer >= 1")
        if not 0.0 <= self.hard_max <= 1.0:
            raise ValueError(f"model {name!r}: hard_max={self.hard_max!r}, expected a share in [0, 1]")
        for option in ("ema_start", "ema_end"):
            if not 0.0 <= getattr(self, option) <= 1.0:
                raise ValueError(f"model {name!r}: {option}={getattr(self, option)!r}, expected a decay in [0, 1]")


def hard_schedule(epochs: int, steps_per_epoch: int, hard_max: float = 0.5, guide: bool = True) -> Stages | Constant:
    """The forced share per step: `float((epoch + 1) / epochs) * hard_max`, held for each epoch
    (HPM's `keep_ratio`), `hard_max` after the last epoch; `hard_max` at every step without `guide`."""
    if not guide or epochs == 1:
        return Constant(hard_max)
    return Stages(
        boundaries=tuple(e * steps_per_epoch for e in range(1, epochs)),
        values=tuple(float((e + 1) / epochs) * hard_max for e in range(epochs)),
    )


def ema_schedule(cfg: HPMConfig) -> Linear:
    """The EMA decay per 0-based step: `ema_start + epoch / ema_epochs · (ema_end − ema_start)`, then `ema_end`."""
    spe = cfg.steps_per_epoch
    return Linear(start=cfg.ema_start, end=cfg.ema_end, steps=cfg.ema_epochs * spe, every=spe)


HPM_PRESETS: dict[str, HPMConfig] = {
    "hpm_vit_base_patch16": HPMConfig(),
    # CPU size: the tiny MAE (32×32 images, patch 4: Nm = 48 of 64); set epochs / steps_per_epoch to the run's.
    "hpm_vit_tiny_patch4": HPMConfig(base="mae_vit_tiny_patch4", epochs=100, steps_per_epoch=10),
}


def build_hpm(name: str, **overrides: Any) -> MaskedAutoencoder:
    """An HPM preset with overrides (`HPMConfig` fields, or the base preset's options)."""
    cfg, options = split_options(name, HPM_PRESETS[name], overrides, fixed=_FIXED,
                                 why="HPM masks by predicted loss (learning_loss=False: the base's masking)")
    cfg.check(name)
    base = build_base(name, cfg, cfg.base, options)
    config = recipe_config(name, base, cfg, fixed=_FIXED)
    if not cfg.learning_loss:  # plain MAE on the base (the reference without --learning_loss)
        base.config = config
        return base
    if not isinstance(base.mode, DropMode) or not isinstance(getattr(base.decoder, "head", None), nn.Linear):
        raise ValueError(f"model {name!r}: HPM's loss predictor needs a drop-mode base with an MAEDecoder and a "
                         f"Linear head; {cfg.base!r} has mode {base.mode.name!r}")
    term = LossPrediction(base.decoder, base.decoder.head.out_features, relative=cfg.relative, teacher=TEACHER,
                          weight=cfg.predictor_weight)
    masking = HardTopKMasking(
        base.config["mask_ratio"], hard=hard_schedule(cfg.epochs, cfg.steps_per_epoch, cfg.hard_max, cfg.guide),
        source="predicted_loss",
    )
    model = MaskedAutoencoder(
        base.tokenizer, base.encoder, base.decoder, masking, terms=[term], target_norm=base.target_norm,
        loss=base.loss_name, loss_params=base.loss_params, decoder_masking=base.decoder_masking, target=base.target,
        config=config,
    )
    # timm's ModelEma of the whole student: its tokenizer, encoder, decoder and predictor are what the
    # teacher runs (the reconstructor's blocks are copied too, as the reference's EMA holds them).
    decay = ema_schedule(cfg)  # a step schedule, called like `Momentum`: m = decay(step - 1)
    model.add_teacher(TEACHER, EMATeacher(model, decay, parts=term.teacher_parts(model)))  # type: ignore[arg-type]
    return model


for _name, _cfg in HPM_PRESETS.items():
    _patch = 4 if _name.endswith("patch4") else 16
    register_model(
        _name, build_hpm, modality="image",
        summary=f"HPM: {_cfg.base} + loss predictor, EMA teacher, easy->hard predicted-loss masks",
        small={"img_size": 2 * _patch, "depth": 1, "decoder_depth": 1, "mask_ratio": 0.5},
    )
