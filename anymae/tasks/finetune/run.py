"""End-to-end fine-tuning of a pretrained MAE encoder, written once for every modality.

The recipe is MAE's ``main_finetune.py`` (ViT-B defaults): AdamW (0.9, 0.999), blr 5e-4
(``lr = blr * eff_batch / 256``), weight decay 0.05 with the cls token and position tables exempt,
layer-wise lr decay 0.65, 5 warmup epochs then half-cycle cosine to 1e-6 over 100 epochs,
stochastic depth 0.1, mixup 0.8 + cutmix 1.0 (timm ``Mixup``, soft-target cross-entropy) with label
smoothing 0.1. Training runs through the shared engine (:func:`anymae.tasks.train.engine.train`), so
checkpoints, resume, DDP / FSDP, AMP and metrics are those of pretraining.

Randomness: every sample's augmentation draws from its own seed (``SeededSamples``), and the mixup
parameters of a batch are drawn from the batch's sample seeds, so a resumed run continues exactly.

Reporting: ``FinetuneResult.top1`` is the top-1 accuracy on ``val_set`` after the final epoch.
With ``data.on_error=skip`` the items scored are the readable ones (``num_val``; skipped items are
dropped, never scored through a substitute) and the run ends with each dataset's skip report.
(The MAE script also prints the maximum over epochs on the same set, which selects an epoch on the
evaluation data; nothing here does that.)

Generic across modalities: the objective only needs a batch tensor ``x``; mixup mixes any
tensor, cutmix cuts boxes on the last two axes and so needs B×C×H×W input (images, 1×T×F
spectrograms). Image augmentation lives in :func:`anymae.datasets.image.transforms.finetune_transform`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch import Tensor, nn
from torch.utils.data import Dataset

from anymae.core.config import load_config, to_dict
from anymae.core.model import MaskedAutoencoder
from anymae.datasets.contract import as_samples
from anymae.datasets.seeding import SeededSamples
from anymae.datasets.sources import build_dataset
from anymae.tasks.finetune.classifier import POOLS, Classifier, Head, Pool
from anymae.tasks.finetune.scoring import evaluate_classifier, evaluate_multilabel, scored_items
from anymae.tasks.train.engine import TrainResult, train
from anymae.tasks.train.loader.sampler import mix_seed
from anymae.tasks.train.config import OptimConfig, RunConfig
from anymae.tasks.train.loader.workers import workers_for

MixupMode = Literal["batch", "pair", "elem"]
_MASK32 = 0xFFFFFFFF


def mae_finetune_optim() -> OptimConfig:
    """MAE ViT-B fine-tuning optimizer recipe (FINETUNE.md).

    blr 5e-4, AdamW betas (0.9, 0.999), weight decay 0.05 without decay on the cls token and
    position tables (``decay_tokens=False``), layer decay 0.65, 100 epochs, 5 warmup epochs,
    min_lr 1e-6, batch 32 per process (the reference runs 32 × 32 GPUs = 1024 per step). For ViT-L /
    ViT-H the reference uses blr 1e-3, layer decay 0.75, 50 epochs.
    """
    return OptimConfig(
        blr=5e-4, min_lr=1e-6, weight_decay=0.05, betas=(0.9, 0.999), epochs=100, warmup_epochs=5,
        batch_size=32, decay_tokens=False, layer_decay=0.65,
    )  # fmt: skip


@dataclass
class FinetuneConfig:
    """What fine-tuning adds to the engine's configs (MAE ViT-B defaults).

    Attributes:
        num_classes: C, the number of classes.
        optim: optimizer / schedule / batch recipe (see :func:`mae_finetune_optim`).
        pool: "mean" (mean of tokens, fc_norm; MAE's default) or "cls".
        modality: a cross-modal checkpoint: "joint" (every modality through the joint blocks) or
            one modality's modality-only features (CAV-MAE's audio-only / visual-only modes).
        drop_path: stochastic-depth rate of the last encoder block.
        head_init_std: std of the head's trunc_normal init (MAE 2e-5).
        mixup: mixup Beta(α, α) parameter; 0 = off.
        cutmix: cutmix Beta(α, α) parameter; 0 = off. Needs B×C×H×W input.
        mixup_prob: probability of mixing a batch (or element / pair, see ``mixup_mode``).
        mixup_switch_prob: probability of cutmix instead of mixup when both are on.
        mixup_mode: "batch" (one draw per batch, MAE), "pair" or "elem".
        label_smoothing: smoothing of the (mixed) targets.
        eval_batch_size: samples per forward in the final evaluation.
        task: "single_label" (cross-entropy; top-1) or "multi_label" (AudioSet style: labels are
            C-vectors, BCE-with-logits loss, macro mAP over the classes with a positive; batch
            mixup / cutmix off: mixing is the dataset's, e.g. Audio-MAE's waveform mixup).
            Single-label datasets may also give C-vector (mixed) labels: soft-target CE.
    """

    num_classes: int
    optim: OptimConfig = field(default_factory=mae_finetune_optim)
    pool: Pool = "mean"
    drop_path: float = 0.1
    head_init_std: float = 2e-5
    head: Head = "linear"  # "mlp": Point-MAE's 256-256 head with BN and dropout 0.5
    modality: str = "joint"  # cross-modal checkpoints: "joint", or one modality's modality-only pass ("audio", ...)
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: MixupMode = "batch"
    label_smoothing: float = 0.1
    eval_batch_size: int = 256
    task: Literal["single_label", "multi_label"] = "single_label"

    def __post_init__(self) -> None:
        def check(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(f"FinetuneConfig.{name}={getattr(self, name)!r}: expected {expected}")

        check(not isinstance(self.num_classes, bool) and isinstance(self.num_classes, int) and self.num_classes >= 1,
              "num_classes", "an int >= 1")  # fmt: skip
        check(self.pool in POOLS, "pool", f"one of {POOLS}")
        check(0 <= self.drop_path < 1, "drop_path", "in [0, 1)")
        check(self.head_init_std > 0, "head_init_std", "> 0")
        check(self.mixup >= 0, "mixup", ">= 0")
        check(self.cutmix >= 0, "cutmix", ">= 0")
        check(0 <= self.mixup_prob <= 1, "mixup_prob", "in [0, 1]")
        check(0 <= self.mixup_switch_prob <= 1, "mixup_switch_prob", "in [0, 1]")
        check(self.mixup_mode in ("batch", "pair", "elem"), "mixup_mode", "'batch', 'pair' or 'elem'")
        check(0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)")
        check(self.eval_batch_size >= 1, "eval_batch_size", ">= 1")
        check(self.task in ("single_label", "multi_label"), "task", "'single_label' or 'multi_label'")
        check(self.task == "single_label" or not self.uses_mixup, "task",
              "single_label when batch mixup/cutmix is on (multi_label: set mixup=0 and cutmix=0)")
        if self.uses_mixup and self.optim.batch_size % 2:
            raise ValueError(
                f"FinetuneConfig: mixup/cutmix pair each sample with the batch flipped, so optim.batch_size "
                f"must be even, got {self.optim.batch_size} (or set mixup=0 and cutmix=0)"
            )

    @property
    def uses_mixup(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0


class ClassificationObjective:
    """The engine objective of fine-tuning: ``(model, (x, label, seeds)) -> (loss, {})``.

    With mixup or cutmix on: timm ``Mixup`` (mixed inputs, label-smoothed soft targets) and
    ``SoftTargetCrossEntropy``; otherwise cross-entropy with label smoothing. The loss is
    computed in float32 from the logits.

    Args:
        cfg: the fine-tuning config (num_classes, mixup / cutmix / smoothing settings).
    """

    def __init__(self, cfg: FinetuneConfig) -> None:
        self.num_classes = cfg.num_classes
        self.label_smoothing = cfg.label_smoothing
        self.cutmix = cfg.cutmix
        self.mixer: Mixup | None = None
        if cfg.uses_mixup:
            self.mixer = Mixup(
                mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                switch_prob=cfg.mixup_switch_prob, mode=cfg.mixup_mode,
                label_smoothing=cfg.label_smoothing, num_classes=cfg.num_classes,
            )  # fmt: skip
        self.soft_loss = SoftTargetCrossEntropy()
        self.task = cfg.task

    def _check_labels(self, label: Tensor) -> None:
        lo, hi = torch.aminmax(label)
        lo_v, hi_v = int(lo), int(hi)
        if lo_v < 0 or hi_v >= self.num_classes:
            raise ValueError(
                f"fine-tuning: labels must be in [0, num_classes={self.num_classes}), got values in [{lo_v}, {hi_v}]"
            )

    def mix(self, x: Tensor, label: Tensor, seeds: Tensor) -> tuple[Tensor, Tensor]:
        """Mixup / cutmix a batch with parameters drawn from the batch's sample seeds.

        Args:
            x: B×... input batch; mixed IN PLACE (timm) and returned.
            label: B int64 class indices.
            seeds: B int64 per-sample seeds; the same seeds give the same mixing.

        Returns:
            (mixed x, B×C soft targets summing to 1 per row).
        """
        assert self.mixer is not None, "mix() needs mixup or cutmix > 0"
        if self.cutmix > 0 and x.ndim != 4:
            raise ValueError(
                f"cutmix={self.cutmix} cuts boxes in B×C×H×W inputs, got a batch of shape {tuple(x.shape)}; "
                "set cutmix=0 for this modality (mixup alone works on any tensor)"
            )
        s = mix_seed(*seeds.tolist())
        state = np.random.get_state()  # timm draws λ and boxes from numpy's global RNG
        try:
            np.random.seed([s & _MASK32, s >> 32])
            return self.mixer(x, label)
        finally:
            np.random.set_state(state)

    def __call__(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
        """Loss of ``model`` on one batch ``(x, label, seeds)`` (the engine's objective contract)."""
        x, label, seeds = batch
        if label.ndim == 2 or self.task == "multi_label":  # C-vector labels (multi-hot / mixed in the dataset)
            if label.ndim != 2 or label.shape[1] != self.num_classes:
                raise ValueError(f"fine-tuning ({self.task}): expected B×{self.num_classes} label vectors, "
                                 f"got labels of shape {tuple(label.shape)}")
            logits = model(x).float()  # B×C
            if self.task == "multi_label":
                return F.binary_cross_entropy_with_logits(logits, label.float()), {}
            return self.soft_loss(logits, label.float()), {}
        self._check_labels(label)
        if self.mixer is None:
            logits = model(x)  # B×C
            return F.cross_entropy(logits.float(), label, label_smoothing=self.label_smoothing), {}
        x, target = self.mix(x, label, seeds)  # target: B×C soft
        return self.soft_loss(model(x).float(), target), {}


@dataclass
class FinetuneResult:
    """What :func:`finetune` reports.

    Attributes:
        top1: top-1 accuracy (%) on the validation set after the final epoch ("final-epoch").
        num_val: number of validation samples scored (skipped unreadable ones are not).
        skipped_val: validation samples skipped as unreadable (``data.on_error=skip``).
        train: the engine's result (steps, last loss, checkpoint path, run directory).
        protocol: one line describing the recipe and which number is which.
    """

    top1: float
    num_val: int
    train: TrainResult
    protocol: str = ""
    mAP: float | None = None  # multi_label: macro mAP (%) on val; top1 is then NaN
    skipped_val: int = 0


def classifier_from_config(mae: MaskedAutoencoder, cfg: FinetuneConfig) -> Classifier:
    """``Classifier.from_mae`` with the config's num_classes, pool, drop_path and head init."""
    return Classifier.from_mae(
        mae, cfg.num_classes, pool=cfg.pool, drop_path=cfg.drop_path, head_init_std=cfg.head_init_std,
        head=cfg.head, modality=None if cfg.modality == "joint" else cfg.modality,
    )


def _check_matches(classifier: Classifier, cfg: FinetuneConfig) -> None:
    """Refuse a classifier built with other settings than ``cfg`` (they would be recorded wrongly)."""
    built = {"num_classes": classifier.num_classes, "pool": classifier.pool,
             "drop_path": classifier.config["model"].get("drop_path")}  # fmt: skip
    wanted = {"num_classes": cfg.num_classes, "pool": cfg.pool, "drop_path": cfg.drop_path}
    diff = {k: (built[k], wanted[k]) for k in built if built[k] != wanted[k]}
    if diff:
        detail = ", ".join(f"{k}: classifier {a!r} vs config {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"finetune: the classifier does not match the FinetuneConfig ({detail}); "
                         "build it with classifier_from_config(mae, cfg)")  # fmt: skip


def finetune(
    classifier: Classifier, train_set: Dataset, val_set: Dataset, cfg: FinetuneConfig, run_cfg: RunConfig
) -> FinetuneResult:
    """Fine-tune ``classifier`` end to end on ``train_set``, then score it on ``val_set``.

    Args:
        classifier: built by :func:`classifier_from_config` (or ``Classifier.from_mae`` with the
            same num_classes / pool / drop_path), pretrained weights loaded.
        train_set: items ``(x, label)`` (with the training augmentation inside); wrapped in
            ``SeededSamples(train_set, run_cfg.seed)`` unless it already is one.
        val_set: items ``(x, label)`` with the deterministic evaluation transform.
        cfg: the fine-tuning recipe.
        run_cfg: where and how to run (out_dir, seed, device, precision, resume, ...).

    Returns:
        FinetuneResult; ``top1`` is the final-epoch top-1 (%) on ``val_set``. The run directory
        holds ``config.yaml``, ``metrics.csv`` and ``last.pt`` (the classifier's state dict).
    """
    _check_matches(classifier, cfg)
    data = train_set if isinstance(train_set, SeededSamples) else SeededSamples(train_set, run_cfg.seed)
    full_config: Mapping[str, Any] = {
        "task": "finetune",
        "model": classifier.config,
        "finetune": to_dict(cfg),
        "run": to_dict(dataclasses.asdict(run_cfg)),
    }
    trained = train(classifier, data, ClassificationObjective(cfg), cfg.optim, run_cfg, full_config=full_config)
    mAP = None
    if cfg.task == "multi_label":
        top1, mAP = float("nan"), evaluate_multilabel(
            classifier, val_set, batch_size=cfg.eval_batch_size, num_workers=workers_for(run_cfg.num_workers),
            precision=run_cfg.precision,
        )  # fmt: skip
    else:
        top1 = evaluate_classifier(
            classifier, val_set, batch_size=cfg.eval_batch_size, num_workers=workers_for(run_cfg.num_workers),
            precision=run_cfg.precision,
        )  # fmt: skip
    num_val, skipped_val = scored_items(val_set)
    o = cfg.optim
    mixing = (
        f"mixup {cfg.mixup:g} cutmix {cfg.cutmix:g} (p {cfg.mixup_prob:g}, switch {cfg.mixup_switch_prob:g}, "
        f"{cfg.mixup_mode}) soft-target CE" if cfg.uses_mixup else "no mixup, CE"
    )
    protocol = (
        f"fine-tune ({cfg.pool} pool): AdamW {tuple(o.betas)} blr={o.blr:g} wd={o.weight_decay:g} "
        f"layer_decay={o.layer_decay} epochs={o.epochs} warmup={o.warmup_epochs} min_lr={o.min_lr:g} "
        f"batch={o.batch_size}x{o.accum_iter} drop_path={cfg.drop_path:g}; {mixing}, label smoothing "
        f"{cfg.label_smoothing:g}; top1 = final-epoch top-1 on val ({num_val} samples"
        f"{f', {skipped_val} unreadable skipped' if skipped_val else ''}), no epoch selection"
    )
    if mAP is not None:
        protocol = protocol.replace(f"{mixing}, label smoothing {cfg.label_smoothing:g}; top1 = final-epoch top-1",
                                    "multi-label BCE; mAP = final-epoch macro mAP")
    return FinetuneResult(top1=top1, num_val=num_val, train=trained, protocol=protocol, mAP=mAP,
                          skipped_val=skipped_val)  # fmt: skip


@dataclass
class FinetuneRunConfig:
    """`anymae finetune`: a pretraining checkpoint, labelled data, the recipe and the run."""

    checkpoint: str
    data: dict[str, Any]
    finetune: FinetuneConfig
    val_data: dict[str, Any] | None = None  # default: `data` with its test split
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/finetune"))


def load_finetune_config(path: str | None, overrides: list[str]) -> FinetuneRunConfig:
    return load_config(FinetuneRunConfig, path, overrides)


def run_finetune(cfg: FinetuneRunConfig) -> dict[str, Any]:
    """Load the pretrained encoder, build the splits (training augmentation on), fine-tune, score."""
    from anymae.tasks.train.pretrain import load_pretrained

    mae = load_pretrained(cfg.checkpoint)
    classifier = classifier_from_config(mae, cfg.finetune)
    train_set = build_dataset(cfg.data, split="train", augment="finetune", model_config=mae.config)
    val_set = build_dataset(cfg.val_data or cfg.data, split="test", augment=False, model_config=mae.config)
    result = finetune(classifier, train_set, val_set, cfg.finetune, cfg.run)
    for split, data in (("train", train_set), ("val", val_set)):  # counted skips (data.on_error=skip), never silent
        if as_samples(data).skipped():  # on stderr: stdout is the JSON answer
            print(f"{split}: {as_samples(data).skip_report()}", file=sys.stderr)
    scores = {"mAP": result.mAP} if result.mAP is not None else {"top1": result.top1}
    return {**scores, "num_val": result.num_val, "skipped_val": result.skipped_val, "protocol": result.protocol,
            "checkpoint": str(result.train.checkpoint)}
