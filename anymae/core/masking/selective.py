"""SelectiveMAE's masking: a HOG score, a sampled seed set grown by token expansion, a loss subset.

Facts from Fengxiang23/SelectiveMAE (`models_selectivemae.py`, `token_selected_smooth.py`,
`main_pretrain.py`):

1. Score: a HOG layer (MaskFeat's HOGLayerC: 9 bins, Sobel-like gradients, a tiled 16-px gaussian
   window, cells of 8 px summed, L2 over the bins) -> per patch the C·bins·cells values are
   standardized (unbiased variance, eps 1e-6) and averaged -> `p = softmax(score)`. (The mean of a
   standardized vector is 0 up to rounding, so this score is ~0 and `p` ~uniform: the reference's
   sampling is close to uniform. Source "hog" is that code; "hog_mean" skips the standardization.)
2. Visible set: `int(len_keep / 2)` tokens drawn from `p` without replacement (len_keep =
   `int(N(1 - r))`), then **token expansion** adds `int(N·keep_rate) - int(N·init_rate)` tokens in
   `substeps` (2) rounds; each round ranks the unselected tokens by their highest cosine similarity
   (patch embedding + position) to the selected set and adds, by the epoch's stage:
   1 most similar · 2 most similar -> least similar (`int((1 - c/S)·m)` most, the rest least) ·
   3 least similar · 4 least similar -> random (`int((1 - c/S)·m)` least, the rest random) ·
   5 random; c = epochs into the transition, S = `smooth_epochs`.
   The training script sets keep_rate = 1 - r, init_rate = (1 - r)/2 and stages at epochs
   [0, 300 - S, 300, 600 - S, 600]: the visible count is exactly len_keep (14 + 15 = 29 at
   r = 0.85, N = 196). The class defaults (keep 0.25, init 0.15, [0, 200, 220, 1180, 1200]) give
   14 + 20 = 34; both are options.
3. Loss set: `int(N·kept_mask_ratio)` tokens (49) drawn from `p` over the tokens left unselected.

Stages are a step schedule (`core.schedules.Stages` over `steps_per_epoch` optimizer steps per epoch),
so a resumed run plans the same masks. Random draws come from the per-sample `SampleRNG`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from einops import rearrange
from torch import Tensor

from anymae.core.masking.plan import MASKINGS, MaskContext, MaskDraw, SampleRNG, check_ratio
from anymae.core.masking.scores import SCORE_SOURCES, context_scores, gumbel_keys
from anymae.core.schedules import Stages
from anymae.core.targets.hog import hog_cells


def hog_patch_scores(
    images: Tensor, grid: tuple[int, int], *, bins: int = 9, cell: int | None = None, window: int | None = None,
    standardize: bool = True,
) -> Tensor:
    """SelectiveMAE's per-patch HOG score (module doc, 1): B×C×H×W images -> B×N.

    Args:
        images: B×C×H×W as the model sees them (the reference: the normalized input).
        grid: the patch grid (gh, gw); the patch side is H / gh.
        bins: orientation bins.
        cell: HOG cell side in px (default patch / 2: 2×2 cells per patch, the reference's 8 at 16).
        window: gaussian window length in px (default the patch side: the reference's 16 at 16).
        standardize: standardize each patch's values before the mean (the reference; ~0 scores).
    """
    if images.ndim != 4:
        raise ValueError(f"the HOG score reads images B×C×H×W, got shape {tuple(images.shape)}")
    gh, gw = grid
    h, w = images.shape[-2:]
    if h % gh or w % gw or h // gh != w // gw:
        raise ValueError(f"the HOG score needs square patches: images {h}×{w} on a {gh}×{gw} grid")
    patch = h // gh
    cell = cell if cell is not None else patch // 2
    window = window if window is not None else patch
    if cell < 1 or patch % cell:
        raise ValueError(f"the HOG score's cell ({cell} px) must divide the patch ({patch} px)")
    hist = hog_cells(images, bins=bins, cell=cell, norm="l2", style="maskfeat", gaussian_window=window)
    per_patch = rearrange(hist, "b c k (gh dh) (gw dw) -> b (gh gw) (c k dh dw)", gh=gh, gw=gw)  # B×N×(C·k·cells)
    if standardize:
        mean, var = per_patch.mean(-1, keepdim=True), per_patch.var(-1, keepdim=True)  # unbiased, as torch.var
        per_patch = (per_patch - mean) / (var + 1e-6).sqrt()
    return torch.nan_to_num(per_patch.mean(-1))  # B×N


def _hog_source(standardize: bool):  # noqa: ANN202 - a SCORE_SOURCES entry
    def source(context: MaskContext) -> Tensor:
        images, tokens = context.inputs, context.tokens
        if not isinstance(images, Tensor) or tokens is None or len(tokens.grid or ()) != 2:
            raise ValueError("score source 'hog' needs image inputs B×C×H×W and their 2-D patch grid in the mask "
                             "context")
        return hog_patch_scores(images, tokens.grid, standardize=standardize)  # type: ignore[arg-type]

    return source


SCORE_SOURCES["hog"] = _hog_source(standardize=True)
SCORE_SOURCES["hog_mean"] = _hog_source(standardize=False)


@dataclass(frozen=True)
class ExpansionStages:
    """The expansion rule of each epoch as a step schedule (module doc, 2).

    Args:
        epochs: the reference's `expansion_step`, 5 increasing epochs [e0, e1, e2, e3, e4].
        smooth_epochs: S, the length of the two transitions' ramps.
        steps_per_epoch: optimizer steps per epoch (epoch = step // steps_per_epoch).
    """

    epochs: tuple[int, ...] = (0, 280, 300, 580, 600)
    smooth_epochs: int = 20
    steps_per_epoch: int = 1

    def __post_init__(self) -> None:
        e = tuple(int(x) for x in self.epochs)
        object.__setattr__(self, "epochs", e)
        if self.steps_per_epoch < 1 or self.smooth_epochs < 1:
            raise ValueError(f"expansion stages: steps_per_epoch and smooth_epochs must be >= 1, got "
                             f"{self.steps_per_epoch}, {self.smooth_epochs}")
        # The reference keeps stage 1 at epoch e1 and stage 3 at e3 (its special cases), i.e. the
        # stages start at e0, e1 + 1, e2, e3 + 1, e4.
        starts = (e[0], e[1] + 1, e[2], e[3] + 1, e[4]) if len(e) == 5 else ()
        if not starts or any(a >= b for a, b in zip(starts, starts[1:])) or e[0] < 0:
            raise ValueError(f"expansion_epochs: expected 5 epochs e0 < e1 < e1 + 1 < e2 < e3 < e3 + 1 < e4, e0 >= 0, "
                             f"got {list(e)}")
        object.__setattr__(self, "_stages", Stages(tuple(s * self.steps_per_epoch for s in starts), (0, 1, 2, 3, 4, 5)))

    def stage(self, step: int) -> int:
        """1..5 at `step` (0 before e0: random, as the reference's fallback)."""
        return int(self._stages(step))  # type: ignore[attr-defined]

    def split(self, step: int, count: int) -> tuple[int, int, int]:
        """(most similar, least similar, random) counts of one round adding `count` tokens."""
        stage, epoch = self.stage(step), step // self.steps_per_epoch
        if stage == 1:
            return count, 0, 0
        if stage == 2:
            near = int((1 - (epoch - self.epochs[1]) / self.smooth_epochs) * count)
            return near, count - near, 0
        if stage == 3:
            return 0, count, 0
        if stage == 4:
            far = int((1 - (epoch - self.epochs[3]) / self.smooth_epochs) * count)
            return 0, far, count - far
        return 0, 0, count


def round_sizes(total: int, rounds: int) -> list[int]:
    """Tokens added per expansion round: `total // rounds`, the last round the rest (the reference)."""
    return [total // rounds] * (rounds - 1) + [total - (rounds - 1) * (total // rounds)]


def _rank(values: Tensor) -> Tensor:
    """B×U -> B×U int64 ascending rank of each entry (stable)."""
    order = torch.argsort(values, dim=1, stable=True)
    return torch.argsort(order, dim=1, stable=True)


def expand(
    emb: Tensor, selected: Tensor, rest: Tensor, sizes: Sequence[int], splits: Sequence[tuple[int, int, int]],
    uniforms: Sequence[Tensor],
) -> tuple[Tensor, Tensor]:
    """Token expansion: grow `selected` by `sizes[k]` tokens of `rest` per round (module doc, 2).

    Args:
        emb: B×N×D token embeddings (cosine similarity space).
        selected: B×K token indices already selected.
        rest: B×U the other token indices.
        sizes: tokens added per round.
        splits: per round (most similar, least similar, random) counts, summing to the size.
        uniforms: per round B×U' uniforms (U' >= the round's rest count) for the random picks.

    Returns:
        (B×(K + Σ sizes) selected, B×(U - Σ sizes) rest), each in selection / original order.
    """
    unit = F.normalize(emb.float(), dim=-1)  # B×N×D
    d = unit.shape[-1]
    for size, (near, far, _), u in zip(sizes, splits, uniforms):
        sel = torch.gather(unit, 1, selected.unsqueeze(-1).expand(-1, -1, d))  # B×K×D
        oth = torch.gather(unit, 1, rest.unsqueeze(-1).expand(-1, -1, d))  # B×U×D
        best = torch.einsum("bud,bkd->buk", oth, sel).amax(-1)  # B×U highest similarity to the selection
        rank, n_rest = _rank(best), rest.shape[1]  # rank 0 = least similar
        forced = (rank >= n_rest - near) | (rank < far)  # B×U
        key = torch.where(forced, torch.full_like(best, 2.0), u[:, :n_rest].to(best))  # forced first, then random
        order = torch.argsort(key, dim=1, descending=True, stable=True)  # B×U
        picked, left = order[:, :size], torch.sort(order[:, size:], dim=1).values  # positions in `rest`
        selected = torch.cat([selected, torch.gather(rest, 1, picked)], dim=1)
        rest = torch.gather(rest, 1, left)
    return selected, rest


@MASKINGS.register("selective")
class SelectiveMasking:
    """SelectiveMAE's visible set and loss set (module doc); reads the step for the stages.

    Args:
        ratio: r, the mask ratio (0.85).
        kept_mask_ratio: the loss set's share of N (0.25).
        keep_rate: expansion target share of N (None = 1 - r, the training script).
        init_rate: expansion start share of N (None = (1 - r) / 2, the training script).
        substeps: expansion rounds (2).
        epochs, smooth_epochs, steps_per_epoch: the stage schedule (`ExpansionStages`).
        source: a `SCORE_SOURCES` name for the score when the caller gives none ("hog").
        positions: compare tokens with their positions added (the reference compares patch
            embedding + position); needs `context.model.tokenizer.pos_embed`.
    """

    reads_context = True
    uses_step = True

    def __init__(
        self, ratio: float = 0.85, *, kept_mask_ratio: float = 0.25, keep_rate: float | None = None,
        init_rate: float | None = None, substeps: int = 2, epochs: Sequence[int] = (0, 280, 300, 580, 600),
        smooth_epochs: int = 20, steps_per_epoch: int = 1, source: str | None = "hog", positions: bool = True,
    ) -> None:
        self.ratio = check_ratio(ratio)
        self.kept_mask_ratio = check_ratio(kept_mask_ratio, "kept_mask_ratio")
        self.keep_rate = 1 - self.ratio if keep_rate is None else float(keep_rate)
        self.init_rate = (1 - self.ratio) / 2 if init_rate is None else float(init_rate)
        if substeps < 1:
            raise ValueError(f"expansion substeps must be >= 1, got {substeps}")
        self.substeps, self.source, self.positions = int(substeps), source, bool(positions)
        self.stages = ExpansionStages(tuple(epochs), int(smooth_epochs), int(steps_per_epoch))

    def counts(self, n: int) -> tuple[int, int, int]:
        """(sampled seeds `int(len_keep / 2)`, expanded `int(N·keep) - int(N·init)`, loss set `int(N·kept)`)."""
        len_keep = int(n * (1 - self.ratio))
        seeds, extra = int(len_keep / 2), int(n * self.keep_rate) - int(n * self.init_rate)
        loss = int(n * self.kept_mask_ratio)
        if seeds < 1 or extra < 0 or seeds + extra + loss > n or loss < 1:
            raise ValueError(
                f"selective masking on {n} tokens: {seeds} sampled + {extra} expanded visible and {loss} reconstructed "
                f"do not fit (mask_ratio={self.ratio}, keep_rate={self.keep_rate}, init_rate={self.init_rate}, "
                f"kept_mask_ratio={self.kept_mask_ratio})"
            )
        return seeds, extra, loss

    def num_keep(self, num_tokens: int, grid: tuple[int, ...] | None = None) -> int:
        seeds, extra, _ = self.counts(num_tokens)
        return seeds + extra

    def _embeddings(self, context: MaskContext) -> Tensor:
        tokens = context.tokens
        if tokens is None:
            raise ValueError("selective masking compares token embeddings: the mask context has no tokens")
        emb = tokens.x.detach()  # B×N×D
        pos_embed = getattr(getattr(context.model, "tokenizer", None), "pos_embed", None)
        if self.positions and pos_embed is not None:
            emb = emb + pos_embed(tokens.grid, tokens.coords).detach().to(emb)  # (1|B)×N×D broadcast
        return emb

    def noise(self, grid: tuple[int, ...], rng: SampleRNG, coords: Tensor | None, context: MaskContext) -> MaskDraw:
        n = math.prod(grid)
        n_seed, n_extra, n_loss = self.counts(n)
        scores = context_scores(context, self.source, n, "selective masking").to(rng.device)  # B×N
        first = torch.argsort(gumbel_keys(scores, rng.rand(n)), dim=1, descending=True)  # B×N, a draw from softmax
        selected, rest = first[:, :n_seed], torch.sort(first[:, n_seed:], dim=1).values
        sizes = round_sizes(n_extra, self.substeps)
        splits = [self.stages.split(context.step, m) for m in sizes]
        uniforms = [rng.rand(n) for _ in sizes]  # B×N per round (its first U used)
        if n_extra:
            selected, rest = expand(self._embeddings(context).to(rng.device), selected, rest, sizes, splits, uniforms)
        k = selected.shape[1]
        order = torch.cat([selected, rest], dim=1)  # B×N: visible first
        ranks = torch.arange(n, device=scores.device, dtype=scores.dtype).expand_as(scores).contiguous()  # B×N
        plan_scores = torch.empty_like(scores).scatter_(1, order, ranks)  # the argsort primitive keeps `selected`
        loss_scores = -gumbel_keys(scores, rng.rand(n))  # smallest = drawn first from softmax(score)
        return MaskDraw(plan_scores, k, loss_scores, n_loss)
