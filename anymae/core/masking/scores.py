"""Score-driven masks: strategies that read per-token scores and feed the argsort primitive.

Scores (B×N, larger = more salient / harder / more attended) come from the `MaskContext`: the
caller's or a teacher's `context.scores` when given, else the strategy's `source`, a name in
`SCORE_SOURCES` computed from the context (e.g. "target_std", the per-token spread of the raw
target, a content score any modality has). Three rules (crossmodal_and_zoo.md §B, §C):

- `score_topk` (HPM): the `int(hard(step) · Nm)` top-scored tokens must be hidden, the rest of
  the Nm hidden tokens are uniformly random (`hard` is a schedule: HPM's easy -> hard ramp);
- `score_sample` (SelectiveMAE): multinomial sampling without replacement from
  `softmax(scores / temperature)` by Gumbel top-k (the k largest `scores / τ + Gumbel` are a
  draw without replacement), drawn from the per-sample generators; the sampled tokens are the
  kept (`select="keep"`) or the hidden ones (`select="hide"`);
- `score_reveal` (AttMask high / low / hint): hide the `int(r·N)` highest (or lowest) scored,
  then reveal `int(reveal·r·N)` of them drawn uniformly from the `int(top·N)` most extreme; `r`
  may be drawn once per batch from U(ratio − ratio_var, ratio + ratio_var) (AttMask's
  `pred_ratio 0.3 ± 0.2`), from the batch's seeds (`batch_generator`).

Every rule gives exact counts per sample. `LossSubset` wraps any strategy with a loss set: the
`int(loss_ratio·N)` hidden tokens the reconstruction scores, drawn uniformly or from the scores
(`make_masking(..., loss_ratio=0.25, loss_rule="sample")`). `SampleGate` wraps any strategy with a
per-sample masking probability (AttMask / iBOT: a sample is masked with probability 0.5, else not
at all): the plan keeps its exact counts and the gate, B bools in `context.cache[SAMPLE_GATE]`,
tells `core.skeleton.gated_terms.GatedReconstruction` which samples' hidden tokens count.

Teacher-backed score sources (run once per pass on the unmasked batch, cached in `context.cache`):
`predicted_loss` here (HPM: the per-token losses the model's loss-prediction term predicts with its
EMA teacher's copies, `core.skeleton.aux_heads.LossPrediction`), and `teacher_cls_attention`
(AttMask, MaskAlign: `core.targets.teacher_features`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

import torch
from torch import Tensor

from anymae.core.masking.plan import MASKINGS, MaskContext, MaskDraw, MaskingStrategy, SampleRNG, check_ratio
from anymae.core.schedules import Schedule, parse_schedule
from anymae.core.seeds import fold_seeds

# `context.cache` key of a `SampleGate`'s B bools (True = the sample is masked).
SAMPLE_GATE = "masking.sample_gate"

# name -> fn(context) -> B×N scores (larger = more salient).
SCORE_SOURCES: dict[str, Callable[[MaskContext], Tensor]] = {}


def _target_std(context: MaskContext) -> Tensor:
    """B×N: the spread of each token's raw target values (flat regions score low)."""
    tokens = context.tokens
    if tokens is None or tokens.target is None:
        raise ValueError("score source 'target_std' needs the tokenized batch with a target in the mask context")
    return tokens.target.float().std(dim=-1)  # B×N×P -> B×N


SCORE_SOURCES["target_std"] = _target_std


def _predicted_loss(context: MaskContext) -> Tensor:
    """B×N: the per-token losses predicted by the model's one loss-prediction term (a term with
    `predicted_losses(model, inputs, tokens)` and `teacher`, `core.skeleton.aux_heads.LossPrediction`)
    with its teacher's copies on the unmasked batch (HPM); cached under "<teacher>.predicted_loss"."""
    terms = [t for t in getattr(context.model, "terms", ()) if callable(getattr(t, "predicted_losses", None))]
    if len(terms) != 1:
        raise ValueError(f"score source 'predicted_loss' needs a model with exactly one loss-prediction term, it has "
                         f"{len(terms)}")
    if context.inputs is None:
        raise ValueError("score source 'predicted_loss' runs a teacher on the batch: the mask context has no inputs")
    key = f"{terms[0].teacher}.predicted_loss"
    if key not in context.cache:
        context.cache[key] = terms[0].predicted_losses(context.model, context.inputs, context.tokens)  # B×N
    return context.cache[key]


SCORE_SOURCES["predicted_loss"] = _predicted_loss


def batch_generator(rng: SampleRNG) -> torch.Generator:
    """One CPU generator for a draw shared by the whole batch (AttMask's ratio per batch).

    Every sample's generator gives one 62-bit integer; the B integers are hashed into one seed
    (`core.seeds.fold_seeds`), so with per-sample seeds the batch's draw depends only on its seeds
    (resume and DDP stay exact; each rank draws for its own batch, as the reference does).
    """
    words = [int(torch.randint(0, 2**62, (1,), generator=rng.sample_generator(i))) for i in range(rng.batch_size)]
    seed = int(fold_seeds(torch.tensor(words, dtype=torch.long), 1)[0])
    return torch.Generator().manual_seed(seed)


def context_scores(context: MaskContext, source: str | None, n: int, who: str) -> Tensor:
    """B×N float scores: `context.scores` when given, else `SCORE_SOURCES[source](context)`.

    Raises:
        ValueError naming `who` when there are no scores or their shape is not B×N.
    """
    if context.scores is not None:
        scores = context.scores
    elif source is not None:
        if source not in SCORE_SOURCES:
            raise ValueError(f"{who}: score source {source!r} is not one of {sorted(SCORE_SOURCES)}")
        scores = SCORE_SOURCES[source](context)
    else:
        raise ValueError(
            f"{who} reads per-token scores: pass scores=B×N to the model, or name a source ({sorted(SCORE_SOURCES)})"
        )
    if scores.ndim != 2 or scores.shape[1] != n:
        raise ValueError(f"{who}: per-token scores have shape {tuple(scores.shape)}, expected B×{n}")
    return scores.float()


def gumbel_keys(scores: Tensor, u: Tensor, temperature: float = 1.0) -> Tensor:
    """B×N keys `scores / τ + Gumbel(u)`: the k largest are a multinomial draw of k without
    replacement from `softmax(scores / τ)`. `u`: B×N uniforms in [0, 1)."""
    g = -torch.log(-torch.log(u.clamp(min=1e-20, max=1 - 1e-7)))  # B×N standard Gumbel
    return scores / temperature + g


def _hidden_count(ratio: float, n: int) -> int:
    return n - int(n * (1 - ratio))  # MAE's rounding: int(N(1 - r)) kept


@MASKINGS.register("score_topk")
class HardTopKMasking:
    """HPM's rule: the top `int(hard(step) · Nm)` tokens by score are hidden, the rest random.

    Nm = N - int(N(1 - ratio)) (MAE's count: 147 of 196 at 0.75). Noise: forced tokens score in
    [1, 2), the others uniform in [0, 1), so the argsort primitive hides the forced ones and fills
    the hidden set at random. `hard` is a schedule of the step (HPM: `(epoch + 1) / E · 0.5`).
    """

    reads_context = True

    def __init__(
        self, ratio: float = 0.75, *, hard: float | dict[str, Any] | Schedule = 0.5, source: str | None = None
    ) -> None:
        self.ratio = check_ratio(ratio)
        self.hard = parse_schedule(hard, "score_topk hard")
        self.source = source
        self.uses_step = self.hard.kind != "constant"

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return int(num_tokens * (1 - self.ratio))

    def forced(self, num_tokens: int, step: int) -> int:
        """How many top-scored tokens must be hidden at `step`: `int(Nm · hard(step))`."""
        share = self.hard(step)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"score_topk: hard({step}) = {share}, expected a share in [0, 1]")
        return int((num_tokens - self.num_keep(num_tokens)) * share)

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None, context: MaskContext) -> Tensor:
        n = math.prod(grid)
        scores = context_scores(context, self.source, n, "score_topk masking").to(rng.device)
        k = self.forced(n, context.step)
        u = rng.rand(n)  # B×N
        top = torch.argsort(scores, dim=1, descending=True)[:, :k]  # B×k hardest
        return u.scatter(1, top, 1.0 + torch.gather(u, 1, top))  # forced tokens in [1, 2)


@MASKINGS.register("score_sample")
class SampledScoreMasking:
    """Multinomial sampling without replacement from `softmax(scores / temperature)` (module doc).

    `select="keep"` keeps the `int(N(1 - ratio))` sampled tokens (SelectiveMAE's visible set);
    `select="hide"` hides the `N - int(N(1 - ratio))` sampled ones.
    """

    reads_context = True

    def __init__(
        self, ratio: float = 0.75, *, temperature: float = 1.0, select: Literal["keep", "hide"] = "keep",
        source: str | None = None,
    ) -> None:
        self.ratio = check_ratio(ratio)
        if select not in ("keep", "hide") or not temperature > 0:
            raise ValueError(f"score_sample: expected select 'keep' or 'hide' and temperature > 0, got "
                             f"select={select!r}, temperature={temperature}")
        self.temperature, self.select, self.source = float(temperature), select, source

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return int(num_tokens * (1 - self.ratio))

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None, context: MaskContext) -> Tensor:
        n = math.prod(grid)
        scores = context_scores(context, self.source, n, "score_sample masking").to(rng.device)
        keys = gumbel_keys(scores, rng.rand(n), self.temperature)  # B×N, largest = sampled first
        return -keys if self.select == "keep" else keys


@MASKINGS.register("score_reveal")
class RevealTopMasking:
    """AttMask: hide the top `int(N·r)` by score (`order="high"`) or the bottom (`"low"`), then reveal
    `int(reveal · r' · N)` drawn uniformly from the `int(N · top)` most extreme (AttMask hint:
    reveal 0.1, top 0.1; `reveal=0` is attmask_high / low). Visible count:
    `N - int(N·r) + int(reveal·r'·N)`, exact per sample.

    `r = ratio`, or with `ratio_var > 0` drawn once per batch from U(ratio − ratio_var,
    ratio + ratio_var) (`batch_generator`). `r' = r` (`reveal_draw="same"`), or a second,
    independent draw (`"independent"`: the AttMask code calls `get_pred_ratio()` twice, once for
    the masking ratio and once for `show_ratio = show_max · pred_ratio`). Counts are computed in the
    reference's float order: `int(N * r)`, `int((reveal * r') * N)`, `int(N * top)`.
    """

    reads_context = True

    def __init__(
        self, ratio: float = 0.3, *, reveal: float = 0.1, top: float = 0.1, order: Literal["high", "low"] = "high",
        source: str | None = None, ratio_var: float = 0.0, reveal_draw: Literal["same", "independent"] = "same",
    ) -> None:
        self.ratio = check_ratio(ratio)
        if order not in ("high", "low") or not 0.0 <= reveal < 1.0 or not 0.0 < top <= 1.0:
            raise ValueError(f"score_reveal: expected order 'high' or 'low', reveal in [0, 1), top in (0, 1], got "
                             f"order={order!r}, reveal={reveal}, top={top}")
        if not 0.0 <= ratio_var or not 0.0 < ratio - ratio_var or not ratio + ratio_var < 1.0:
            raise ValueError(f"score_reveal: ratio_var={ratio_var} must keep ratio ± ratio_var inside (0, 1) "
                             f"(ratio={ratio})")
        if reveal_draw not in ("same", "independent"):
            raise ValueError(f"score_reveal: reveal_draw={reveal_draw!r}, expected 'same' or 'independent'")
        self.reveal, self.top, self.order, self.source = float(reveal), float(top), order, source
        self.ratio_var, self.reveal_draw = float(ratio_var), reveal_draw

    def counts(self, n: int, ratio: float | None = None, reveal_ratio: float | None = None) -> tuple[int, int, int]:
        """(hidden before revealing `int(N·r)`, revealed `int((reveal·r')·N)`, candidates `int(N·top)`)
        for `r = ratio` and `r' = reveal_ratio` (both default to the configured ratio)."""
        r = self.ratio if ratio is None else ratio
        r2 = r if reveal_ratio is None else reveal_ratio
        hide, shown, pool = int(n * r), int(self.reveal * r2 * n), int(n * self.top)
        if shown and not shown <= pool <= hide:
            raise ValueError(
                f"score_reveal on {n} tokens: revealing {shown} of the top {pool} needs {shown} <= {pool} <= the "
                f"{hide} hidden (ratio={r}, reveal={self.reveal}, top={self.top})"
            )
        return hide, shown, pool

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        hide, shown, _ = self.counts(num_tokens)
        return num_tokens - hide + shown

    def draw_ratios(self, rng: SampleRNG) -> tuple[float, float]:
        """(r, r') for this batch: the configured ratio, or draws from U(ratio ± ratio_var)."""
        if self.ratio_var == 0:
            return self.ratio, self.ratio
        gen = batch_generator(rng)
        lo, hi = self.ratio - self.ratio_var, self.ratio + self.ratio_var
        u = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
        r = lo + (hi - lo) * u[0]  # Python's random.uniform(lo, hi)
        return r, (r if self.reveal_draw == "same" else lo + (hi - lo) * u[1])

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None, context: MaskContext) -> MaskDraw:
        n = math.prod(grid)
        scores = context_scores(context, self.source, n, "score_reveal masking").to(rng.device)
        r, r2 = self.draw_ratios(rng)
        hide, shown, pool = self.counts(n, r, r2)
        ranked = torch.argsort(scores, dim=1, descending=self.order == "high")  # B×N, most extreme first
        u = rng.rand(n + pool)  # B×(N + pool): tie-breakers, then the reveal draw
        level = torch.zeros_like(scores).scatter(1, ranked[:, :hide], 1.0)  # B×N, 1 = hidden
        if shown:
            pick = torch.argsort(u[:, n:], dim=1)[:, :shown]  # B×shown uniform positions in the pool
            level = level.scatter(1, torch.gather(ranked, 1, pick), 0.0)
        return MaskDraw(level + 0.5 * u[:, :n], n - hide + shown)


class SampleGate:
    """Any strategy applied to a sample with probability `prob`, else "no mask at all" (iBOT /
    AttMask `masking_prob`).

    The inner strategy draws first (exact counts for every sample, as the plan needs), then each
    sample draws u from its own generator and is masked when `u <= prob` (the reference unmasks
    where `rand > masking_prob`). The B bools go to `context.cache[SAMPLE_GATE]`; a
    `GatedReconstruction` term counts only the gated samples' hidden tokens, so an ungated sample
    contributes nothing to the masked-modelling loss, as in iBOT. Its hidden set is still drawn;
    the model marks the sample inactive (`BranchPlan.active`): no loss weight, nothing shown as
    hidden, and a replace-mode encoder sees its own tokens.
    """

    reads_context = True

    def __init__(self, inner: MaskingStrategy, prob: float) -> None:
        if isinstance(prob, bool) or not 0.0 < float(prob) <= 1.0:
            raise ValueError(f"masking_prob={prob!r}: expected a probability in (0, 1]")
        self.inner, self.prob = inner, float(prob)
        self.ratio = inner.ratio
        self.uses_step = getattr(inner, "uses_step", False)

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return self.inner.num_keep(num_tokens, grid)

    def noise(
        self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None, context: MaskContext | None = None
    ) -> Tensor | tuple[Tensor, int] | MaskDraw:
        ctx = context if context is not None else MaskContext()
        if getattr(self.inner, "reads_context", False):
            drawn = self.inner.noise(grid, rng, coords, ctx)  # type: ignore[call-arg]
        else:
            drawn = self.inner.noise(grid, rng, coords)
        ctx.cache[SAMPLE_GATE] = rng.rand(1)[:, 0] <= self.prob  # B bools, one draw per sample
        return drawn


class LossSubset:
    """Any strategy plus a loss set: the reconstruction scores `int(loss_ratio · N)` hidden tokens.

    `rule="random"`: a uniform choice among the hidden tokens; `rule="sample"`: a multinomial draw
    without replacement from `softmax(scores / temperature)` over the hidden tokens (SelectiveMAE's
    reconstruct-subset). The inner strategy draws first, then the loss set.
    """

    def __init__(
        self, inner: MaskingStrategy, loss_ratio: float, *, rule: Literal["random", "sample"] = "random",
        temperature: float = 1.0, source: str | None = None,
    ) -> None:
        self.inner = inner
        self.ratio = inner.ratio
        self.loss_ratio = check_ratio(loss_ratio, "loss_ratio")
        if rule not in ("random", "sample") or not temperature > 0:
            raise ValueError(f"loss set: expected loss_rule 'random' or 'sample' and temperature > 0, got "
                             f"loss_rule={rule!r}, temperature={temperature}")
        self.rule, self.temperature, self.source = rule, float(temperature), source
        self.reads_context = rule == "sample" or getattr(inner, "reads_context", False)
        self.uses_step = getattr(inner, "uses_step", False)

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return self.inner.num_keep(num_tokens, grid)

    def noise(
        self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None, context: MaskContext | None = None
    ) -> MaskDraw:
        n = math.prod(grid)
        ctx = context if context is not None else MaskContext()
        if getattr(self.inner, "reads_context", False):
            drawn = self.inner.noise(grid, rng, coords, ctx)  # type: ignore[call-arg]
        else:
            drawn = self.inner.noise(grid, rng, coords)
        if isinstance(drawn, tuple):
            drawn = MaskDraw(*drawn)
        elif not isinstance(drawn, MaskDraw):
            drawn = MaskDraw(drawn)
        u = rng.rand(n)  # B×N
        if self.rule == "random":
            loss_scores = u
        else:
            loss_scores = -gumbel_keys(context_scores(ctx, self.source, n, "loss set").to(rng.device), u,
                                       self.temperature)
        return MaskDraw(drawn.scores, drawn.num_keep, loss_scores, int(n * self.loss_ratio))
