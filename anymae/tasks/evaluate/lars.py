"""LARS: layer-wise adaptive rate scaling, with the semantics of MAE's linear-probe optimizer.

For every parameter ``p`` with gradient ``g`` (one step, learning rate ``lr``):

- if ``p.ndim > 1`` (weight matrices, conv kernels):
  ``g <- g + weight_decay * p``, then the trust ratio
  ``r = trust_coefficient * ||p|| / ||g||`` (``r = 1`` when either norm is 0), and ``g <- r * g``;
- if ``p.ndim <= 1`` (biases, norm scales, 0-d scalars): ``g`` is used as is, with neither weight
  decay nor trust-ratio scaling;
- then heavy-ball momentum: ``mu <- momentum * mu + g`` (``mu`` starts at 0, so the first step
  has ``mu = g``) and ``p <- p - lr * mu``.

Norms are Frobenius norms over the whole tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class LARS(torch.optim.Optimizer):
    """LARS optimizer (momentum SGD with a per-tensor trust ratio).

    Args:
        params: parameters or parameter groups, as for any ``torch.optim.Optimizer``.
        lr: learning rate.
        weight_decay: L2 coefficient added to the gradient of tensors with ``ndim > 1`` only.
        momentum: heavy-ball momentum coefficient.
        trust_coefficient: ``eta`` in ``eta * ||p|| / ||g||``.

    Raises:
        ValueError: if a hyper-parameter is negative.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.0,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        trust_coefficient: float = 0.001,
    ) -> None:
        for name, value in (
            ("lr", lr),
            ("weight_decay", weight_decay),
            ("momentum", momentum),
            ("trust_coefficient", trust_coefficient),
        ):
            if value < 0:
                raise ValueError(f"LARS: {name} must be >= 0, got {value!r}")
        defaults = dict(
            lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Apply one update to every parameter that has a gradient.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None without a closure.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim > 1:
                    update = update.add(p, alpha=group["weight_decay"])
                    param_norm = torch.linalg.vector_norm(p)
                    update_norm = torch.linalg.vector_norm(update)
                    one = torch.ones_like(param_norm)
                    trust = torch.where(
                        (param_norm > 0) & (update_norm > 0),
                        group["trust_coefficient"] * param_norm / update_norm,
                        one,
                    )
                    update = update.mul(trust)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(group["momentum"]).add_(update)
                p.add_(mu, alpha=-group["lr"])
        return loss
