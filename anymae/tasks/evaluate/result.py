"""The result record shared by the trained probes (linear, attentive)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ProbeResult:
    """What a trained probe reports. Test data never selects anything.

    Attributes:
        top1: top-1 accuracy (%) on test of the head after the final epoch ("final-epoch").
        best_val_top1: highest top-1 (%) on the validation set over epochs ("best-epoch on val");
            None when no validation set was given.
        test_top1_at_best_val: top-1 (%) on test of the head from the best-on-val epoch (the
            earliest such epoch on ties); None without a validation set.
        best_val_epoch: 0-based epoch of ``best_val_top1``; None without a validation set.
        history: one dict per epoch: ``epoch``, ``lr`` (at the epoch's last step),
            ``train_loss`` (mean over the epoch's steps) and, with a validation set, ``val_top1``.
        protocol: a one-line description of the protocol (head, optimizer, schedule, batch,
            which number is which).
    """

    top1: float
    best_val_top1: float | None = None
    test_top1_at_best_val: float | None = None
    best_val_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    protocol: str = ""
