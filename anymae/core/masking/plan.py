"""The masking primitive: scores -> keep / hide / restore, the per-sample RNG, and the strategy registry.

Every strategy answers two questions: how many tokens stay visible (`num_keep`), and which ones
(`noise`: per-sample scores, the smallest are kept). `plan_from_noise` turns scores into index
sets exactly as the reference MAE does (`ids_shuffle = argsort(noise)`, keep the first
`num_keep`, `ids_restore = argsort(ids_shuffle)`), so every strategy gets keep / hide / restore
indices, works batched on any device, and can be driven by injected noise in tests.

Randomness comes from a `SampleRNG`: with per-sample seeds a sample's mask depends only on its
seed (the same mask whatever batch or rank it lands in, which makes resume and DDP exact);
without seeds the global torch generator (or a given one) draws for the whole batch.

Strategies register in `MASKINGS` where they are defined (`@MASKINGS.register("tube")`), so
configs can name them (`masking: tube`).

A strategy that reads state (per-token scores from the batch or a teacher, the step for a
schedule) sets `reads_context = True`; `make_plan` then calls `noise(grid, rng, coords, context)`
with a `MaskContext`. A strategy may return a `MaskDraw` to say its visible count or a *loss set*:
the hidden tokens the reconstruction loss scores (`MaskPlan.loss`; default: every hidden token).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import torch
from torch import Tensor

from anymae.core.config import FieldError
from anymae.core.registry import Registry
from anymae.core.tokens import Tokens


@dataclass
class MaskPlan:
    """Which tokens the encoder sees.

    Attributes:
        keep: B×Nv long, indices of visible tokens (in shuffled order).
        hide: B×Nm long, indices of hidden tokens (in shuffled order).
        restore: B×N long, `argsort` of the shuffle: `cat([keep, hide], 1)` gathered with
            `restore` gives `arange(N)` per sample.
        loss: B×Nl long, the hidden tokens the reconstruction loss scores (a subset of `hide`,
            e.g. SelectiveMAE's reconstruct-subset); None = every hidden token.
        valid: B×N bool in token order, False at padding (`Tokens.valid`; `core.masking.padding`
            places padding in `keep` / `hide` only as filler slots); None = no padding.
    """

    keep: Tensor
    hide: Tensor
    restore: Tensor
    loss: Tensor | None = None
    valid: Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return self.restore.shape[1]

    @property
    def mask(self) -> Tensor:
        """B×N float, 1 where the token is hidden from the encoder, in original token order
        (0 at padding)."""
        mask = torch.ones_like(self.restore, dtype=torch.float32).scatter(1, self.keep, 0.0)
        return mask if self.valid is None else mask * self.valid

    @property
    def loss_mask(self) -> Tensor:
        """B×N float, 1 where the reconstruction loss scores the token (default: the hidden ones)."""
        if self.loss is None:
            return self.mask
        scored = torch.zeros_like(self.restore, dtype=torch.float32).scatter(1, self.loss, 1.0)
        return scored if self.valid is None else scored * self.valid


@dataclass
class MaskContext:
    """What a context-reading strategy (`reads_context = True`) may look at.

    Attributes:
        tokens: the tokenized batch (inputs, raw targets, layout).
        step: optimizer steps done before this batch (schedules read it).
        scores: optional B×N per-token scores supplied by the caller, the batch or a teacher.
        model: the model planning the masks (a strategy may ask its teachers), or None.
        inputs: the modality batch the tokens came from (a teacher tokenizes it itself), or None.
        cache: values computed once per forward pass and shared with the loss terms (`Pass.cache`),
            e.g. a teacher's output under the teacher's name.
        branch: the index of the branch being planned (0 = the first mask draw).
        plans: the mask plans of branches 0 .. branch − 1 of this pass, in order (dependent masks:
            DMJD's complementary view, LUT's consecutive keep sets; `core.masking.views`).
    """

    tokens: Tokens | None = None
    step: int = 0
    scores: Tensor | None = None
    model: Any = None
    inputs: Any = None
    cache: dict[str, Any] = field(default_factory=dict)
    branch: int = 0
    plans: list[MaskPlan] = field(default_factory=list)


@dataclass
class MaskDraw:
    """A strategy's draw: B×N `scores` (small = kept), and optionally this draw's visible count and
    a loss set: the `loss_count` hidden tokens with the smallest `loss_scores` (B×N)."""

    scores: Tensor
    num_keep: int | None = None
    loss_scores: Tensor | None = None
    loss_count: int | None = None


def with_loss_set(plan: MaskPlan, loss_scores: Tensor, count: int) -> MaskPlan:
    """`plan` whose loss set is the `count` hidden tokens with the smallest `loss_scores` (B×N).

    Raises:
        ValueError when `count` is not in [1, hidden count].
    """
    nm = plan.hide.shape[1]
    if not 0 < count <= nm:
        raise ValueError(f"a loss set of {count} tokens needs 1 <= count <= the {nm} hidden tokens")
    order = torch.argsort(torch.gather(loss_scores, 1, plan.hide), dim=1)[:, :count]  # B×count positions in hide
    return MaskPlan(plan.keep, plan.hide, plan.restore, torch.gather(plan.hide, 1, order), plan.valid)


def plan_from_noise(noise: Tensor, num_keep: int) -> MaskPlan:
    """The masking primitive: keep the `num_keep` tokens with the smallest noise per sample.

    Args:
        noise: B×N scores (any float dtype, any device).
        num_keep: visible tokens per sample, 1 <= num_keep < N.
    """
    n = noise.shape[1]
    if not 0 < num_keep < n:
        raise ValueError(
            f"num_keep={num_keep} leaves no visible or no hidden token out of {n}; "
            f"expected 1 <= num_keep <= {n - 1} (check the mask ratio)"
        )
    shuffle = torch.argsort(noise, dim=1)  # B×N, ascending: small noise is kept
    restore = torch.argsort(shuffle, dim=1)  # B×N
    return MaskPlan(keep=shuffle[:, :num_keep], hide=shuffle[:, num_keep:], restore=restore)


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """Select tokens per sample. x: B×N×D (or B×1×D... broadcast over B), index: B×M -> B×M×D."""
    if x.shape[0] != index.shape[0]:
        x = x.expand(index.shape[0], *x.shape[1:])
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class SampleRNG:
    """Uniform random numbers for a batch, per-sample reproducible when seeds are given.

    Args:
        batch_size: B.
        seeds: optional B int64 seeds; sample i draws from `torch.Generator().manual_seed(seeds[i])`.
        generator: optional generator for the batched path (ignored when seeds are given).
        device: where the results live.
    """

    def __init__(
        self,
        batch_size: int,
        *,
        seeds: Tensor | Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.generator = generator
        self._gens: list[torch.Generator] | None = None
        if seeds is not None:
            seeds = [int(s) for s in (seeds.tolist() if isinstance(seeds, Tensor) else seeds)]
            if len(seeds) != batch_size:
                raise ValueError(f"got {len(seeds)} seeds for a batch of {batch_size}")
            self._gens = [torch.Generator().manual_seed(s & 0x7FFF_FFFF_FFFF_FFFF) for s in seeds]

    def rand(self, *shape: int) -> Tensor:
        """B×shape uniform [0, 1) floats on `self.device`."""
        if self._gens is None:
            gen = self.generator
            dev = gen.device if gen is not None else self.device
            return torch.rand(self.batch_size, *shape, generator=gen, device=dev).to(self.device)
        rows = [torch.rand(*shape, generator=g) for g in self._gens]
        return torch.stack(rows).to(self.device)

    def sample_generator(self, i: int) -> torch.Generator:
        """A CPU generator for sample i, for strategies that draw in Python loops."""
        if self._gens is not None:
            return self._gens[i]
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator).item())
        return torch.Generator().manual_seed(seed)


class MaskingStrategy(Protocol):
    """A way to choose hidden tokens: a visible count and per-sample scores (small = kept)."""

    ratio: float

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        """Visible tokens per sample out of `num_tokens` (laid out on `grid` when given)."""
        ...

    def noise(
        self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None
    ) -> Tensor | tuple[Tensor, int] | MaskDraw:
        """B×N scores for N = prod(grid) tokens laid out on `grid` (with optional B×N×k coords).

        A strategy whose visible count depends on its draw (DCP's per-step mode) returns
        `(scores, num_keep)`; `num_keep()` then only serves injected noise. A `MaskDraw` may also
        carry a loss set. With `reads_context = True` the call gets a fourth argument, the
        `MaskContext`.
        """
        ...


def check_ratio(ratio: float, name: str | None = None) -> float:
    """`ratio` as a float; a `FieldError` (a ValueError) unless 0 < ratio < 1.

    `name` is the parameter's name where the caller knows it; the model builder that passed the
    value names its own config key (`model.mask_ratio`)."""
    try:
        ok = not isinstance(ratio, bool) and 0.0 < float(ratio) < 1.0
    except (TypeError, ValueError):  # not a number
        ok = False
    if not ok:
        raise FieldError(name, ratio, "a mask ratio in (0, 1) (the share of tokens hidden)")
    return float(ratio)


def make_plan(
    strategy: MaskingStrategy,
    grid: tuple[int, ...],
    batch_size: int,
    *,
    device: torch.device | str,
    seeds: Tensor | None = None,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    coords: Tensor | None = None,
    context: MaskContext | None = None,
) -> MaskPlan:
    """Draw (or take the injected) noise for `grid` and turn it into a plan.

    A strategy with `reads_context = True` also gets `context` (an empty one when None). Padded
    tokens (`context.tokens.valid`) are planned by `core.masking.padding.padded_plan`: each
    sample keeps `strategy.num_keep(L_i)` of its L_i real tokens, by the same scores."""
    n = math.prod(grid)
    valid = context.tokens.valid if context is not None and context.tokens is not None else None
    if valid is not None:
        from anymae.core.masking.padding import padded_plan  # padding builds on this module

        return padded_plan(strategy, grid, batch_size, valid, device=device, seeds=seeds, generator=generator,
                           noise=noise, coords=coords, context=context)
    if noise is None:
        rng = SampleRNG(batch_size, seeds=seeds, generator=generator, device=device)
        if getattr(strategy, "reads_context", False):
            ctx = context if context is not None else MaskContext()
            drawn = strategy.noise(grid, rng, coords, ctx)  # type: ignore[call-arg]
        else:
            drawn = strategy.noise(grid, rng, coords)
        if isinstance(drawn, tuple):  # (scores, visible count of this draw)
            drawn = MaskDraw(*drawn)
        if isinstance(drawn, MaskDraw):
            keep = drawn.num_keep if drawn.num_keep is not None else strategy.num_keep(n, grid)
            plan = plan_from_noise(drawn.scores, keep)
            if drawn.loss_count is not None and drawn.loss_scores is not None:
                plan = with_loss_set(plan, drawn.loss_scores, drawn.loss_count)
            return plan
        noise = drawn
    elif noise.shape != (batch_size, n):
        raise ValueError(f"injected noise has shape {tuple(noise.shape)}, expected {(batch_size, n)}")
    return plan_from_noise(noise, strategy.num_keep(n, grid))


# name -> strategy class (or factory): it takes the ratio first and its own options as keywords.
MASKINGS: Registry[Callable[..., MaskingStrategy]] = Registry("masking")
# strategies defined outside this package's eagerly imported modules, registered on the first read
MASKINGS.defer("anymae.core.masking.selective", "anymae.core.multimodal.masking")


def make_masking(name: str, ratio: float, **params: Any) -> MaskingStrategy:
    """A masking strategy by name (`MASKINGS`), e.g. `make_masking("random", 0.75)`.

    Any strategy takes a loss set (`scores.LossSubset`) with `loss_ratio` (share of N the loss
    scores) and optionally `loss_rule` ("random" / "sample"), `loss_temperature`, `loss_source`.
    """
    loss = {k: params.pop(k) for k in ("loss_ratio", "loss_rule", "loss_temperature", "loss_source") if k in params}
    strategy = MASKINGS.get(name)(ratio, **params)
    if not loss:
        return strategy
    if "loss_ratio" not in loss:
        raise ValueError(f"masking {name!r}: {sorted(loss)} configure a loss set and need loss_ratio as well")
    from anymae.core.masking.scores import LossSubset  # scores builds on this module

    return LossSubset(
        strategy, loss["loss_ratio"], rule=loss.get("loss_rule", "random"),
        temperature=loss.get("loss_temperature", 1.0), source=loss.get("loss_source"),
    )
