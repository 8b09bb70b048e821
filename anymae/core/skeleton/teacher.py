"""Teachers: a frozen encoder loaded from a file, or an EMA copy of parts of the student.

A teacher is an `nn.Module` owned by the model (`MaskedAutoencoder.add_teacher(name, teacher)`:
state-dict keys `teachers.<name>.*`), so checkpoints save it and a resumed run restores it
bitwise. Its parameters never require gradients, so the optimizer's parameter groups
(`tasks.train.optim.param_groups` skips `requires_grad=False`) never see them: no gradient, no
weight decay. It stays in eval mode whatever `model.train()` says (no dropout / drop-path).

The engine calls `model.after_step(step)` once after every optimizer step (not per micro-batch);
the model hands that to every teacher's `after_step(model, step)`:

- `EMATeacher(model, momentum, parts=("tokenizer", "encoder"))`: deep copies of the named
  submodules of the student; after optimizer step `step` (1-based) every parameter becomes
  `θt ← m·θt + (1 − m)·θs` with `m = momentum(step − 1)` (DINO's `momentum_schedule[it]`), buffers
  are copied. The student's parts are looked up by name in the bare model at every update, so
  under DDP the update reads the unwrapped student (the engine passes `distributed.unwrap`'s
  model) and under FSDP2 teacher and student shards have the same layout and update locally.
- `FrozenTeacher(tokenizer, encoder)`: a tokenizer + `TransformerEncoder` whose weights come from
  a file the user gives (`tasks.interop.teacher_files.load_teacher`); `after_step` does nothing.

`Momentum(start, end, steps)` is the decay schedule, a pure function of the step (resume stays
exact): constant `start` (`end=None`), or BYOL / DINO / HPM's cosine from `start` up to `end`
(1.0) over `steps` optimizer steps, `end` after that.

Both run `teacher(x, index=..., taps=..., attention_block=...)` -> `TeacherOutput` without
gradients: the teacher tokenizes the modality batch `x` with its own tokenizer, encodes all
tokens or only those at `index` (the student's `plan.keep`, as DMAE shares `ids_keep`), keeps the
outputs of the blocks in `taps`, and can return one block's attention maps (from its q / k; heads
averaged or kept) for cls -> patch attention.

Which recipes use what (reference notes, `crossmodal_and_zoo.md` B / C): HPM and LUT use an EMA
teacher (HPM's targets and LUT's BYOL-style term); MaskAlign, DMAE, MR-MAE (mimic) and AttMask
(cls -> patch attention of the last block) use a frozen teacher from a file. The recipes
themselves live in their presets / loss terms / masking strategies, not here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from anymae.core.encoder import TransformerEncoder
from anymae.core.masking import gather_tokens
from anymae.core.skeleton.positions import encode_with_positions
from anymae.core.skeleton.steps import Encoded

Heads = Literal["mean", "all"]


@dataclass
class TeacherOutput(Encoded):
    """What a teacher gives (the `Encoded` fields plus attention).

    Attributes:
        latent: B×(P+M)×D final features, prefix tokens first (M = N, or the tokens at `index`).
        num_prefix: P.
        taps: the requested blocks' outputs by block index, B×(P+M)×D each (before the final norm).
        attention: the chosen block's attention, B×heads×(P+M)×(P+M) (`heads="all"`) or
            B×(P+M)×(P+M) (`heads="mean"`), rows summing to 1; None when none was asked for.
    """

    attention: Tensor | None = None

    @property
    def tokens(self) -> Tensor:
        """B×M×D final features of the tokens (prefix left out)."""
        return self.latent[:, self.num_prefix :]

    def cls_attention(self) -> Tensor:
        """The cls token's attention over the tokens: B×heads×M or B×M (query row 0, prefix keys left out).

        Not renormalized: these are the row's weights on the tokens (DINO's `attn[:, :, 0, 1:]`).
        """
        if self.attention is None:
            raise ValueError("this teacher output has no attention: pass attention_block=<block index>")
        if self.num_prefix < 1:
            raise ValueError("the teacher's encoder has no cls token (num_prefix 0): no cls -> patch attention")
        return self.attention[..., 0, self.num_prefix :]


def block_attention(block: nn.Module, x: Tensor) -> Tensor:
    """The attention weights of a timm ViT `Block` on its input: softmax(q·kᵀ·scale) per head.

    Args:
        block: a timm `Block` (`norm1`, `attn.qkv`, `attn.q_norm`, `attn.k_norm`, `attn.scale`).
        x: B×L×D the block's input (what the block's forward receives).

    Returns:
        B×heads×L×L, each row summing to 1.
    """
    attn = block.attn
    b, n, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(b, n, 3, attn.num_heads, attn.head_dim)  # B×L×3×h×d
    q, k, _v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each B×h×L×d
    q, k = attn.q_norm(q), attn.k_norm(k)
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # B×h×L×L


def freeze_(module: nn.Module) -> nn.Module:
    """No gradients (`requires_grad=False` on every parameter, grads dropped) and eval mode, in place."""
    for p in module.parameters():
        p.requires_grad_(False)
        p.grad = None
    return module.eval()


class Teacher(nn.Module):
    """What every teacher shares: a tokenizer + `TransformerEncoder` run without gradients.

    Subclasses provide the `tokenizer` and `encoder` modules and `after_step`.
    """

    tokenizer: nn.Module
    encoder: nn.Module

    def train(self, mode: bool = True) -> Teacher:
        """A teacher stays in eval mode (no dropout / drop-path), whatever the owning model's mode."""
        return super().train(False)

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called by `MaskedAutoencoder.after_step` after every optimizer step; nothing by default."""

    @torch.no_grad()
    def forward(
        self,
        x: Any,
        *,
        index: Tensor | None = None,
        taps: Sequence[int] = (),
        attention_block: int | None = None,
        heads: Heads = "mean",
        final_norm: bool = True,
    ) -> TeacherOutput:
        """Teacher features of a modality batch.

        Args:
            x: the modality batch (e.g. B×C×H×W images), tokenized by the teacher's own tokenizer.
            index: B×M token indices to encode (the student's `plan.keep`), or None for all N.
            taps: block indices whose outputs to return (`TeacherOutput.taps`).
            attention_block: a block index whose attention maps to return, or None.
            heads: "mean" averages the heads' maps; "all" keeps them.
            final_norm: apply the encoder's final norm to `latent`.
        """
        encoder = self.encoder
        if not isinstance(encoder, TransformerEncoder):
            raise TypeError(f"a teacher's encoder must be a TransformerEncoder, got {type(encoder).__name__}")
        if heads not in ("mean", "all"):
            raise ValueError(f"heads={heads!r}: expected 'mean' or 'all'")
        if attention_block is not None and not 0 <= attention_block < encoder.depth:
            raise ValueError(f"attention_block={attention_block}: the teacher has blocks 0..{encoder.depth - 1}")
        tokens = self.tokenizer(x)
        inputs = tokens.x if index is None else gather_tokens(tokens.x, index)  # B×M×D
        seen: list[Tensor] = []
        hook = None
        if attention_block is not None:  # the block's input, exactly as the block receives it
            block = encoder.blocks[attention_block]
            hook = block.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
        try:
            enc = encode_with_positions(
                self.tokenizer, encoder, inputs, tokens, index, taps=taps, final_norm=final_norm
            )
        finally:
            if hook is not None:
                hook.remove()
        attention = None
        if attention_block is not None:
            attention = block_attention(encoder.blocks[attention_block], seen[0])  # B×h×L×L
            if heads == "mean":
                attention = attention.mean(dim=1)  # B×L×L
        return TeacherOutput(enc.latent, enc.num_prefix, enc.taps, attention)


class FrozenTeacher(Teacher):
    """A frozen tokenizer + `TransformerEncoder` (weights from a file: `tasks.interop.teacher_files`).

    Args:
        tokenizer: the teacher's tokenizer (its sizes are the expected teacher's: patch size, ...).
        encoder: the teacher's `TransformerEncoder` (expected depth and width).

    Both are frozen in place: give fresh modules (e.g. of a second `create_model`), not the student's.
    """

    def __init__(self, tokenizer: nn.Module, encoder: TransformerEncoder) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.encoder = encoder
        freeze_(self)


@dataclass(frozen=True)
class Momentum:
    """The EMA decay m as a pure function of the 0-based optimizer step `it`.

    Attributes:
        start: m at step 0 (e.g. 0.996).
        end: None: constant `start`; else the cosine's end value (1.0 in BYOL / DINO / HPM).
        steps: length of the cosine in optimizer steps (needed with `end`); `end` from then on.
    """

    start: float = 0.996
    end: float | None = None
    steps: int = 0

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"momentum {name}={value}: expected a value in [0, 1]")
        if self.end is not None and self.steps < 1:
            raise ValueError(f"momentum steps={self.steps}: a cosine from {self.start} to {self.end} needs steps >= 1")

    def __call__(self, it: int) -> float:
        """m = end − (end − start)·(1 + cos(π·it/steps))/2 for it < steps, else end (constant: start)."""
        if self.end is None:
            return self.start
        if it >= self.steps:
            return self.end
        return self.end - (self.end - self.start) * (1.0 + math.cos(math.pi * it / self.steps)) / 2.0


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, m: float) -> None:
    """In place: every teacher parameter `t ← t·m + (1 − m)·s`, every buffer copied from the student.

    Parameters and buffers are matched by name; the two modules must have the same ones.
    """
    params, buffers = dict(student.named_parameters()), dict(student.named_buffers())
    own = dict(teacher.named_parameters())
    if own.keys() != params.keys():
        diff = sorted(set(own) ^ set(params))
        raise ValueError(f"EMA teacher and student parameters differ: {diff[:8]}")
    for name, t in own.items():
        t.mul_(m).add_((1.0 - m) * params[name].detach())
    for name, buf in teacher.named_buffers():
        buf.copy_(buffers[name])


def _slot(path: str) -> str:
    """A ModuleDict key for a dotted submodule path ("terms.1.head" -> "terms__1__head")."""
    return path.replace(".", "__")


class EMATeacher(Teacher):
    """An exponential moving average of named parts of the student (module doc).

    Args:
        model: the student model that will own this teacher; `parts` are its submodule paths.
        momentum: the decay schedule.
        parts: dotted paths of the submodules to copy (e.g. "tokenizer", "encoder", a term's
            projector "terms.1.head"); "tokenizer" and "encoder" make the teacher callable.

    State-dict keys: `parts.<path with "." -> "__">.*` (under the model: `teachers.<name>.parts.*`).
    """

    def __init__(self, model: nn.Module, momentum: Momentum, parts: Sequence[str] = ("tokenizer", "encoder")) -> None:
        super().__init__()
        if not parts:
            raise ValueError("an EMA teacher needs at least one part of the student to copy")
        self.momentum = momentum
        self.sources = tuple(parts)
        self.parts = nn.ModuleDict({_slot(p): freeze_(copy.deepcopy(model.get_submodule(p))) for p in parts})

    def part(self, path: str) -> nn.Module:
        """The teacher's copy of the student's submodule `path`."""
        if _slot(path) not in self.parts:
            raise KeyError(f"the EMA teacher holds no copy of {path!r}; it holds {list(self.sources)}")
        return self.parts[_slot(path)]

    @property
    def tokenizer(self) -> nn.Module:  # type: ignore[override]
        return self.part("tokenizer")

    @property
    def encoder(self) -> nn.Module:  # type: ignore[override]
        return self.part("encoder")

    def after_step(self, model: nn.Module, step: int) -> None:
        """EMA update after optimizer step `step` (1-based) with m = momentum(step − 1)."""
        m = self.momentum(step - 1)
        for path in self.sources:
            ema_update_(self.parts[_slot(path)], model.get_submodule(path), m)
