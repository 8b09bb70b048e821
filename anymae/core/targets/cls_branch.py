"""BEiT v2's "cls-pretraining" branch as a loss term: a second prediction of the targets through the cls token.

    x_cls_pt = [cls of the last block, patch states after block `early_layers`]   (both pre-norm)
    x_cls_pt = head_layers more transformer blocks (x_cls_pt)
    pred     = head(norm(x_cls_pt))[:, 1:]                                          B×N×P
    value    = loss(pred, target, branch 0's loss weight)

(microsoft/unilm `beit2/modeling_pretrain.py`: `early_layers` 9, `head_layers` 2; with
`shared_lm_head` the norm and head are the encoder's final norm and the main LM head, and the
loss is the main CE on the same ids. CCViT (Cakeyan/CCViT_Public) uses the branch with its own
norm and a Linear(768, 768) head for MSE on norm_pix patch pixels: its "dual loss".)

It reads the encoder taps `early_layers - 1` and `depth - 1` (before the final norm) of branch 0,
so it works in any mode that encodes every token (replace mode), for any modality. The shared
norm / head are read from the model at call time (`model.encoder.norm`, `model.decoder`), not
registered twice.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import Tensor, nn

from anymae.core.losses import TokenNorm
from anymae.core.skeleton.steps import Pass
from anymae.core.skeleton.terms import LossTerm
from anymae.core.transformer import make_blocks, run_blocks

Target = Literal["main", "norm_pix"]


class ClsPretrainBranch(LossTerm):
    """The cls-pretraining branch (module doc).

    Args:
        loss_fn: `(pred B×N×P, target B×N×P, weight B×N) -> scalar` (`core.losses.get_loss`).
        dim, num_heads, mlp_ratio, qkv_bias, layer_scale, norm_eps: the extra blocks' sizes (the encoder's).
        depth: the encoder's depth (the last block is tapped for the cls token).
        early_layers: which block's patch states start the branch (1-based, BEiT v2: 9 of 12).
        head_layers: extra blocks (BEiT v2: 2).
        out_dim: None = shared norm and head (the encoder's final norm and the main decoder head);
            else an own LayerNorm and Linear(dim, out_dim).
        target: "main" (the model's targets, e.g. ids) or "norm_pix" (the tokenizer's raw targets,
            normalized per token as MAE's norm_pix: CCViT's second loss).
        channels, mean, std: "norm_pix" only: the raw targets are channel-last with `channels`
            channels and are un-normalized `x·std + mean` first (CCViT normalizes [0, 1] pixels).
        name, weight: as `LossTerm`.
    """

    def __init__(
        self,
        loss_fn: Callable[[Tensor, Tensor, Tensor | None], Tensor],
        *,
        dim: int,
        num_heads: int,
        depth: int,
        early_layers: int,
        head_layers: int = 2,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layer_scale: float | None = None,
        norm_eps: float = 1e-6,
        out_dim: int | None = None,
        target: Target = "main",
        channels: int = 1,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        name: str = "cls_pt",
        weight: float = 1.0,
    ) -> None:
        if not 1 <= early_layers <= depth:
            raise ValueError(f"early_layers={early_layers} must be in [1, depth={depth}]")
        if target not in ("main", "norm_pix"):
            raise ValueError(f"target={target!r}: expected 'main' or 'norm_pix'")
        if (mean is None) != (std is None) or (mean is not None and not len(mean) == len(std or ()) == channels):
            raise ValueError(f"mean and std need one value per channel ({channels}) or none, got {mean}, {std}")
        super().__init__(name, weight, taps=tuple(sorted({early_layers - 1, depth - 1})))
        self.loss_fn = loss_fn
        self.early, self.last, self.target = early_layers - 1, depth - 1, target
        self.blocks = make_blocks(dim, head_layers, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                                  layer_scale=layer_scale, norm_eps=norm_eps)  # fmt: skip
        self.shared = out_dim is None
        self.norm: nn.Module | None = None if self.shared else nn.LayerNorm(dim, eps=norm_eps)
        self.head: nn.Module | None = None if out_dim is None else nn.Linear(dim, out_dim)
        self.norm_pix = TokenNorm()
        self.channels = channels
        self.register_buffer("mean", None if mean is None else torch.tensor([float(v) for v in mean]), persistent=False)
        self.register_buffer("std", None if std is None else torch.tensor([float(v) for v in std]), persistent=False)

    def predictions(self, state: Pass) -> Tensor:
        """B×N×P predictions of the branch for every token."""
        enc = state.branches[0].encoded
        if self.early not in enc.taps or self.last not in enc.taps:
            raise ValueError(
                f"loss term {self.name!r} needs encoder taps {self.taps}; the encoder gave {sorted(enc.taps)}"
            )
        p = enc.num_prefix
        cls = enc.taps[self.last][:, :p]  # B×P×D (P = 1 with a cls token)
        early = enc.taps[self.early][:, p:]  # B×N×D
        x, _ = run_blocks(self.blocks, torch.cat([cls, early], dim=1))  # B×(P+N)×D
        if self.shared:
            model = state.model
            return model.decoder(model.encoder.norm(x)[:, p:], state.tokens)  # the main head
        assert self.norm is not None and self.head is not None
        return self.head(self.norm(x)[:, p:])

    def forward(self, state: Pass) -> Tensor:
        if self.target == "main":
            target = state.target
        else:
            raw = state.tokens.target
            if raw is None:
                raise ValueError(f"loss term {self.name!r} reads the tokenizer's raw targets, and there are none")
            raw = raw.float()
            if self.mean is not None:
                grouped = raw.unflatten(-1, (-1, self.channels))  # B×N×(P/C)×C
                raw = (grouped * self.std + self.mean).flatten(-2)  # B×N×P
            target = self.norm_pix.normalize(raw)
        branch = state.branches[0]
        if branch.planned.query is not None:
            raise ValueError(f"loss term {self.name!r} needs a mode that encodes every token (replace mode)")
        return self.loss_fn(self.predictions(state), target, branch.planned.weight)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, early_layers={self.early + 1}, shared={self.shared}, target={self.target!r}"


__all__ = ["ClsPretrainBranch"]
