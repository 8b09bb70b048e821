"""Masking over the spans of a multi-modal sequence, through the one argsort primitive.

Every strategy here reads the spans (`reads_context = True`: `context.tokens.spans`) and returns
a `MaskDraw`: B×N scores and the visible count, which `make_plan` hands to `plan_from_noise`
(the argsort primitive), so counts are exact per sample and restore is one permutation.

- `SpanMasking`: each modality masked by its own strategy and ratio (CAV-MAE: audio random or
  stripes, video random; OmniMAE: image 0.75, video 0.9). A modality's kept tokens are the
  `k_m` smallest of its own strategy's scores; the combined scores put the kept tokens first,
  grouped by modality in span order and ranked as the modality's strategy ranked them (with
  one modality the plan is exactly that strategy's plan). Optional whole-modality masking.
- `DirichletBudget`: MultiMAE's shared token budget (`generate_random_masks`): per sample,
  modality shares from Dirichlet(α), counts `round(share · K)`, a random keep set per modality,
  then `argsort(mask + U)` keeps exactly K (ties and rounding resolved at random), optionally
  over a uniformly drawn non-empty subset of the modalities (α · choice + 1e-5).
- Whole-modality masking (`drop={modality: p}` on both): per sample, each modality is hidden
  entirely with probability p (at least one stays: the one with the largest draw). The
  primitive keeps one visible count per batch, so the hidden modality's visible budget goes to
  the others' hidden tokens, chosen at random (the total stays exact).
- `StripeMasking` ("stripes"): CAV-MAE's structured audio masks on a 2-D (time, frequency)
  grid (`random_masking_structured`): `time` hides int(T·r) whole time rows, `freq` int(F·r)
  frequency columns, `tf` int(T·r·0.7) rows and int(F·r·0.7) columns; the visible count is
  int(N(1 - r)) as in the reference (in `tf` a few striped tokens stay visible, chosen at random
  where the reference breaks a tie of equal scores).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import math

import numpy as np
import torch
from torch import Tensor

from anymae.core.masking.plan import MASKINGS, MaskContext, MaskDraw, MaskingStrategy, SampleRNG, check_ratio
from anymae.core.tokens import Span

StripeMode = Literal["unstructured", "time", "freq", "tf"]


def _spans(context: MaskContext, who: str) -> tuple[Span, ...]:
    spans = tuple(context.tokens.spans or ()) if context.tokens is not None else ()
    if not spans:
        raise ValueError(f"{who} masks the spans of a multi-modal batch; these tokens have no spans "
                         "(use a MultiTokenizer)")
    return spans


def _check_probs(drop: Mapping[str, float] | None, known: tuple[str, ...] | None, who: str) -> dict[str, float]:
    out = {str(k): float(v) for k, v in (drop or {}).items()}
    for k, p in out.items():
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{who}: drop[{k!r}]={p} must be a probability in [0, 1)")
        if known is not None and k not in known:
            raise ValueError(f"{who}: drop names unknown modality {k!r}; modalities: {list(known)}")
    return out


def _dropped(spans: tuple[Span, ...], drop: dict[str, float], rng: SampleRNG) -> Tensor:
    """B×M bool: the modalities hidden whole in each sample (never all of them)."""
    u = rng.rand(len(spans))  # B×M
    p = torch.tensor([drop.get(s.modality, 0.0) for s in spans], device=u.device)
    hidden = u < p
    keep_one = torch.nn.functional.one_hot(u.argmax(dim=1), len(spans)).bool()  # B×M
    return torch.where(hidden.all(dim=1, keepdim=True), hidden & ~keep_one, hidden)


def _ranks(scores: Tensor) -> Tensor:
    """B×n ranks 0..n-1 of each token's score within its row (0 = smallest)."""
    return torch.argsort(torch.argsort(scores, dim=1), dim=1)


def _budget_scores(marks: Tensor, rng: SampleRNG, num_keep: int, n_total: int, who: str) -> MaskDraw:
    """MultiMAE's exact-total rule: keep the `num_keep` smallest of `marks + U` (marks 0 keep, 1 hide,
    2 = a modality hidden whole, never kept)."""
    allowed = (marks < 2).sum(dim=1)
    if bool((allowed < num_keep).any()):
        raise ValueError(f"{who}: a sample hides modalities whole and keeps {int(allowed.min())} candidate tokens, "
                         f"fewer than the {num_keep} visible ones (lower the drop probabilities or the budget)")
    return MaskDraw(marks.to(torch.float32) + rng.rand(n_total), num_keep=num_keep)


class SpanMasking:
    """Per-modality strategies over the spans, optional whole-modality masking (module doc).

    Args:
        strategies: modality -> its `MaskingStrategy` (every modality of a batch needs one).
        drop: modality -> probability of hiding it whole in a sample (missing: never).
    """

    reads_context = True

    def __init__(self, strategies: Mapping[str, MaskingStrategy], *, drop: Mapping[str, float] | None = None) -> None:
        if not strategies:
            raise ValueError("SpanMasking needs one masking strategy per modality")
        self.strategies = dict(strategies)
        self.drop = _check_probs(drop, tuple(self.strategies), "SpanMasking")
        self.ratio = float(np.mean([getattr(s, "ratio", 0.0) for s in self.strategies.values()]))

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        raise ValueError("SpanMasking plans per modality span: injected noise cannot be used with it "
                         "(inject each modality's noise through its own strategy, or pass seeds)")

    def _strategy(self, span: Span) -> MaskingStrategy:
        if span.modality not in self.strategies:
            raise ValueError(f"no masking strategy for modality {span.modality!r}; strategies for "
                             f"{sorted(self.strategies)}")
        return self.strategies[span.modality]

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None, context: MaskContext) -> MaskDraw:
        spans = _spans(context, "SpanMasking")
        n_total = math.prod(grid)
        b = rng.batch_size
        order = torch.empty(b, n_total, device=rng.device)  # combined scores (kept first)
        kept = torch.empty(b, n_total, dtype=torch.bool, device=rng.device)
        total_keep = 0
        for m, span in enumerate(spans):
            strategy = self._strategy(span)
            if getattr(strategy, "reads_context", False):
                raise ValueError(f"modality {span.modality!r}: a context-reading strategy cannot run inside "
                                 "SpanMasking")
            drawn = strategy.noise(span.grid, rng, None)
            k = strategy.num_keep(span.num_tokens, span.grid)
            if isinstance(drawn, tuple):
                drawn, k = drawn
            elif isinstance(drawn, MaskDraw):
                if drawn.loss_count is not None:
                    raise ValueError(f"modality {span.modality!r}: loss sets are not supported inside SpanMasking")
                drawn, k = drawn.scores, (drawn.num_keep if drawn.num_keep is not None else k)
            if not 0 < k < span.num_tokens:
                raise ValueError(f"modality {span.modality!r}: {k} visible of {span.num_tokens} tokens; a span needs "
                                 "at least one visible and one hidden token")
            rank = _ranks(drawn.to(rng.device))  # B×n_m
            sl = slice(span.start, span.end)
            kept[:, sl] = rank < k
            order[:, sl] = m + rank.to(torch.float32) / span.num_tokens  # in [m, m + 1)
            total_keep += k
        num_spans = len(spans)
        scores = torch.where(kept, order, order + num_spans)  # kept first, grouped by modality; then hidden
        if not self.drop:
            return MaskDraw(scores, num_keep=total_keep)
        whole = _dropped(spans, self.drop, rng)  # B×M
        hidden_whole = torch.zeros(b, n_total, dtype=torch.bool, device=rng.device)
        for m, span in enumerate(spans):
            hidden_whole[:, span.start : span.end] = whole[:, m : m + 1]
        marks = torch.where(hidden_whole, 2, torch.where(kept, 0, 1))
        draw = _budget_scores(marks, rng, total_keep, n_total, "SpanMasking")
        # kept tokens keep their grouped order; the freed budget goes to random hidden tokens
        return MaskDraw(torch.where(marks == 0, scores / (2 * num_spans), draw.scores), num_keep=total_keep)


class DirichletBudget:
    """MultiMAE's shared budget of `num_keep` visible tokens over the spans (module doc).

    Args:
        num_keep: visible tokens per sample (MultiMAE: `num_encoded_tokens` = 98).
        alphas: Dirichlet concentration, one value for every modality or one per modality (1.0).
        sample_subsets: first draw a non-empty subset of the present modalities uniformly
            (`sample_tasks_uniformly`), then the Dirichlet over it.
        drop: whole-modality masking probabilities.
    """

    reads_context = True

    def __init__(
        self, num_keep: int, *, alphas: float | Mapping[str, float] = 1.0, sample_subsets: bool = False,
        drop: Mapping[str, float] | None = None,
    ) -> None:
        if isinstance(num_keep, bool) or not isinstance(num_keep, int) or num_keep < 1:
            raise ValueError(f"DirichletBudget num_keep={num_keep!r}: expected a positive number of visible tokens")
        self.budget = num_keep
        self.alphas = alphas if isinstance(alphas, Mapping) else float(alphas)
        bad = [a for a in (self.alphas.values() if isinstance(self.alphas, Mapping) else [self.alphas]) if a <= 0]
        if bad:
            raise ValueError(f"DirichletBudget alphas must be > 0, got {alphas!r}")
        self.sample_subsets = bool(sample_subsets)
        self.drop = _check_probs(drop, None, "DirichletBudget")
        self.ratio = 0.0  # the visible count is absolute (`budget`); no ratio

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        if not 0 < self.budget < num_tokens:
            raise ValueError(f"DirichletBudget keeps {self.budget} tokens of {num_tokens}; needs 0 < budget < N")
        return self.budget

    def _alpha(self, span: Span) -> float:
        if isinstance(self.alphas, Mapping):
            if span.modality not in self.alphas:
                raise ValueError(f"DirichletBudget: no alpha for modality {span.modality!r}; "
                                 f"alphas {dict(self.alphas)}")
            return float(self.alphas[span.modality])
        return float(self.alphas)

    def shares(self, spans: tuple[Span, ...], rng: SampleRNG, choice: Tensor) -> Tensor:
        """B×M Dirichlet shares; `choice` B×M in {0, 1} (α·choice + 1e-5, as MultiMAE)."""
        alpha = torch.tensor([self._alpha(s) for s in spans], dtype=torch.float64)
        rows = []
        for i in range(rng.batch_size):
            seed = int(torch.randint(0, 2**62, (1,), generator=rng.sample_generator(i)).item())
            a = (alpha * choice[i].double().cpu() + 1e-5).numpy()
            rows.append(torch.from_numpy(np.random.default_rng(seed).dirichlet(a)))
        return torch.stack(rows).to(rng.device, torch.float32)

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None, context: MaskContext) -> MaskDraw:
        spans = _spans(context, "DirichletBudget")
        n_total = math.prod(grid)
        b, num_spans = rng.batch_size, len(spans)
        keep = self.num_keep(n_total)
        choice = torch.ones(b, num_spans, device=rng.device)
        if self.sample_subsets:  # a uniform non-empty subset: one of the 2^M - 1 non-zero {0, 1} vectors
            code = (rng.rand(1)[:, 0] * (2**num_spans - 1)).long() + 1  # B in [1, 2^M - 1]
            bits = (code[:, None] >> torch.arange(num_spans, device=rng.device)) & 1  # B×M
            choice = bits.to(torch.float32)
        whole = _dropped(spans, self.drop, rng) if self.drop else torch.zeros(b, num_spans, dtype=torch.bool,
                                                                              device=rng.device)
        choice = choice * (~whole).to(choice.dtype)
        counts = (self.shares(spans, rng, choice) * keep).round().long()  # B×M
        marks = torch.ones(b, n_total, dtype=torch.long, device=rng.device)
        for m, span in enumerate(spans):
            rank = _ranks(rng.rand(span.num_tokens))  # B×n_m: a random keep set of counts[:, m] tokens
            sub = torch.where(rank < counts[:, m : m + 1], 0, 1)
            marks[:, span.start : span.end] = torch.where(whole[:, m : m + 1], 2, sub)
        return _budget_scores(marks, rng, keep, n_total, "DirichletBudget")


@MASKINGS.register("stripes")
class StripeMasking:
    """CAV-MAE's audio `mask_mode` on a 2-D (time, frequency) grid (module doc).

    Args:
        ratio: the mask ratio r.
        mode: "unstructured" (uniform random), "time", "freq" or "tf".
        time_axis: which grid axis is time (0 for the audio tokenizer's (T/p, F/p) grid).
    """

    def __init__(self, ratio: float = 0.75, *, mode: StripeMode = "time", time_axis: int = 0) -> None:
        self.ratio = check_ratio(ratio)
        if mode not in ("unstructured", "time", "freq", "tf"):
            raise ValueError(f"StripeMasking mode={mode!r}: expected 'unstructured', 'time', 'freq' or 'tf'")
        if time_axis not in (0, 1):
            raise ValueError(f"StripeMasking time_axis={time_axis!r}: expected 0 or 1")
        self.mode, self.time_axis = mode, time_axis

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        return int(num_tokens * (1 - self.ratio))

    def stripe_counts(self, t: int, f: int) -> tuple[int, int]:
        """(time rows, frequency columns) hidden whole."""
        r = self.ratio
        return {"unstructured": (0, 0), "time": (int(t * r), 0), "freq": (0, int(f * r)),
                "tf": (int(t * r * 0.7), int(f * r * 0.7))}[self.mode]

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None = None) -> Tensor:
        if len(grid) != 2:
            raise ValueError(f"StripeMasking needs a 2-D (time, frequency) token grid, got {grid}")
        t, f = grid if self.time_axis == 0 else grid[::-1]
        n_t, n_f = self.stripe_counts(t, f)
        u = rng.rand(t * f).view(-1, t, f)  # B×T×F
        rows = _ranks(rng.rand(t)) < n_t  # B×T: hidden time rows
        cols = _ranks(rng.rand(f)) < n_f  # B×F: hidden frequency columns
        striped = rows[:, :, None] | cols[:, None, :]  # B×T×F
        scores = torch.where(striped, 1.0 + u, u)  # stripes sort after every other token
        if self.time_axis == 1:
            scores = scores.transpose(1, 2)  # B×F×T, the grid's own order
        return scores.reshape(scores.shape[0], -1)  # B×N
