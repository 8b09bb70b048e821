"""One pooling vocabulary for everything downstream: encoder tokens -> one vector per sample.

timm's pattern: one function for the parameter-free pools, one slot for a learned pooler.

- :func:`pool` ``(features, kind) -> B×D'`` for the kinds of :data:`POOLS`:

  ======== ============================================================ ======
  kind     what                                                         width
  ======== ============================================================ ======
  cls      the cls token's output ``prefix[:, 0]``                      D
  mean     mean over the tokens (prefix excluded)                       D
  max      max over the tokens                                          D
  sum      sum over the tokens                                          D
  cls_max  ``[cls, max over tokens]`` (Point-MAE's classifier input)    2·D
  mean_max ``[mean, max]`` over tokens (the point-cloud SVM features)   2·D
  ======== ============================================================ ======

  Packed rows (several samples in one row, e.g. a batch of graphs: ``features.segments`` names
  each token's sample) pool per sample: G×D' for G samples; they have no cls token.
- Learned poolers (:data:`LEARNED_POOLS`), built by :func:`learned_pool` and read through
  ``module.pool_features(features)``: ``cls_attn`` / ``cls_attn_sigmoid`` (ChA-MAEViT's hybrid
  token fusion, :class:`HybridTokenFusion`) and ``attentive`` (the efficient-probing pooler,
  :class:`EfficientProbe`).
- :func:`default_pool` picks the pool a model should be read with when nobody names one: the
  model's configured readout (``config["pooling"]``), else ``cls`` when its encoder has a cls
  token, else ``mean`` (VideoMAE, Point-MAE, graph encoders have no cls token).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, Protocol, get_args

import torch
from einops import rearrange
from torch import Tensor, nn

Pool = Literal["cls", "mean", "max", "sum", "cls_max", "mean_max"]
POOLS: tuple[str, ...] = get_args(Pool)
LearnedPool = Literal["cls_attn", "cls_attn_sigmoid", "attentive"]
LEARNED_POOLS: tuple[str, ...] = get_args(LearnedPool)
PoolName = Literal[Pool, LearnedPool]
POOL_NAMES: tuple[str, ...] = POOLS + LEARNED_POOLS
_NEED_CLS = ("cls", "cls_max", "cls_attn", "cls_attn_sigmoid")


class FeatureLike(Protocol):
    """What pooling reads: ``tokens`` B×N×D (prefix removed), ``prefix`` B×P×D (cls first; P may
    be 0); packed rows also carry ``segments`` (N long) and ``num_segments`` (G)."""

    tokens: Tensor
    prefix: Tensor


def needs_cls(kind: str) -> bool:
    """Whether pool ``kind`` reads a cls token."""
    return kind in _NEED_CLS


def pool_dim(kind: str, dim: int) -> int:
    """Width of pool ``kind`` on D-wide tokens: 2·D for ``cls_max`` / ``mean_max``, else D."""
    check_pool(kind, where="pool_dim")
    return 2 * dim if kind in ("cls_max", "mean_max") else dim


def check_pool(kind: Any, allowed: tuple[str, ...] = POOLS, *, where: str = "pool") -> None:
    """Raise a ValueError naming ``kind`` and the allowed names unless ``kind`` is one of them."""
    if kind not in allowed:
        raise ValueError(f"{where}: pool={kind!r} is not a known pooling; expected one of {', '.join(allowed)}")


def pool(features: FeatureLike | Tensor, kind: Pool) -> Tensor:
    """Pool encoder features: B×D' (or G×D' for a packed row of G samples); see the module table.

    Args:
        features: a ``Features`` / ``PackedFeatures`` (or anything with ``tokens`` B×N×D and
            ``prefix`` B×P×D), or a bare B×N×D tensor of tokens (no prefix).
        kind: one of :data:`POOLS`.

    Raises:
        ValueError: an unknown kind, or a cls kind on features without a cls token.
    """
    if kind in LEARNED_POOLS:
        raise ValueError(f"pooling {kind!r} is learned: build it with learned_pool({kind!r}, dim) and call "
                         "its pool_features(features)")
    check_pool(kind)
    if isinstance(features, Tensor):
        tokens, prefix, segments = features, features[:, :0], None  # B×N×D, B×0×D
    else:
        tokens, prefix, segments = features.tokens, features.prefix, getattr(features, "segments", None)
    if needs_cls(kind) and (segments is not None or prefix.shape[1] == 0):
        what = "a packed row of several samples" if segments is not None else "no prefix tokens (P=0)"
        raise ValueError(f"pooling {kind!r} needs a cls token, but the features have {what}; use 'mean' "
                         "(or default_pool(model), which follows the model)")
    valid = None if isinstance(features, Tensor) else getattr(features, "valid", None)
    if valid is not None and segments is None and not bool(valid.all()):
        return _pool_valid(tokens, prefix, valid, kind)
    if segments is not None:
        num = int(getattr(features, "num_segments"))
        if kind == "mean_max":
            return torch.cat([segment_pool(tokens[0], segments, num, k) for k in ("mean", "max")], dim=-1)  # G×2D
        return segment_pool(tokens[0], segments, num, kind)  # G×D
    if kind == "cls":
        return prefix[:, 0]  # B×D
    if kind == "mean":
        return tokens.mean(dim=1)
    if kind == "max":
        return tokens.amax(dim=1)
    if kind == "sum":
        return tokens.sum(dim=1)
    if kind == "cls_max":
        return torch.cat([prefix[:, 0], tokens.amax(dim=1)], dim=-1)  # B×2D
    return torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=-1)  # mean_max: B×2D


def _pool_valid(tokens: Tensor, prefix: Tensor, valid: Tensor, kind: str) -> Tensor:
    """`pool` over the real tokens only: tokens B×N×D, valid B×N bool (padding False) -> B×D'."""
    w = valid.unsqueeze(-1).to(tokens.dtype)  # B×N×1
    mean = (tokens * w).sum(1) / w.sum(1).clamp_min(1.0)  # B×D
    most = tokens.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(dim=1)  # B×D
    pooled = {"mean": mean, "max": most, "sum": (tokens * w).sum(1)}
    if kind in pooled:
        return pooled[kind]
    if kind == "cls":
        return prefix[:, 0]
    if kind == "cls_max":
        return torch.cat([prefix[:, 0], most], dim=-1)  # B×2D
    return torch.cat([mean, most], dim=-1)  # mean_max: B×2D


def segment_pool(x: Tensor, segments: Tensor, num: int, kind: str) -> Tensor:
    """N×D rows grouped by `segments` (N long in [0, num)) -> num×D mean / sum / max."""
    if kind not in ("mean", "sum", "max"):
        raise ValueError(f"segment_pool: kind={kind!r}: expected 'mean', 'sum' or 'max'")
    index = segments.unsqueeze(-1).expand_as(x)  # N×D
    if kind == "max":
        out = x.new_full((num, x.shape[1]), float("-inf"))
        out = out.scatter_reduce(0, index, x, reduce="amax", include_self=True)
        return out.nan_to_num(neginf=0.0)  # an empty segment pools to 0
    total = x.new_zeros(num, x.shape[1]).index_add(0, segments, x)  # num×D
    if kind == "sum":
        return total
    count = torch.bincount(segments, minlength=num).clamp(min=1).to(x.dtype)  # num
    return total / count.unsqueeze(-1)


def has_cls_token(model: nn.Module) -> bool:
    """Whether ``model.encoder`` holds a cls token (False for models without an encoder)."""
    return getattr(getattr(model, "encoder", None), "cls_token", None) is not None


def _default_pool(model: nn.Module) -> tuple[Pool, str]:
    """(the pool, why): the configured readout, else cls when the encoder has a cls token, else mean."""
    config = getattr(model, "config", None)
    named = config.get("pooling") if isinstance(config, Mapping) else None
    if named is not None:
        check_pool(named, where=f"{type(model).__name__}.config['pooling']")
        return named, "the model's configured readout (config 'pooling')"
    if has_cls_token(model):
        return "cls", "the encoder has a cls token"
    return "mean", "the encoder has no cls token"


def default_pool(model: nn.Module) -> Pool:
    """The pool to read ``model`` with when none is named.

    ``model.config["pooling"]`` when the model names its readout (GraphMAE's ``pooler``), else
    ``"cls"`` when the encoder has a cls token, else ``"mean"``.
    """
    return _default_pool(model)[0]


def default_pool_reason(model: nn.Module) -> str:
    """Why :func:`default_pool` chose what it chose, for a log line."""
    return _default_pool(model)[1]


class HybridTokenFusion(nn.Module):
    """ChA-MAEViT's "hybrid token fusion" pooling: the cls token fused with an attention pool.

    One learned query attends over the patch tokens through a Set-Transformer MAB exactly as the
    reference's `MAB(ln=False)`: Q = fc_q(query), K = fc_k(X), V = fc_v(X); heads are split
    along the width and stacked along the token axis, so each head's query attends over the
    keys of all heads, scaled by 1/sqrt(D) (not the head width); O = Q + A·V, then
    O + relu(fc_o(O)). Output: `cls + O` ("cls_attn_pooling") or `cls * sigmoid(O)`
    (`gate=True`, "cls_attn_pooling_sigmoid"). Linear layers trunc-normal(0.02), zero bias.

    Args:
        dim: D.
        num_heads: heads of the MAB (the encoder's).
        gate: the sigmoid variant.
    """

    def __init__(self, dim: int, num_heads: int, *, gate: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"HybridTokenFusion: width {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.gate, self.out_dim = num_heads, gate, dim
        self.query = nn.Parameter(torch.zeros(1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.fc_q, self.fc_k, self.fc_v, self.fc_o = (nn.Linear(dim, dim) for _ in range(4))
        for fc in (self.fc_q, self.fc_k, self.fc_v, self.fc_o):
            nn.init.trunc_normal_(fc.weight, std=0.02)
            nn.init.zeros_(fc.bias)

    def forward(self, cls: Tensor, tokens: Tensor) -> Tensor:
        """cls: B×D, tokens: B×N×D (patch tokens, memory tokens excluded) -> B×D."""
        h, d = self.num_heads, cls.shape[-1]
        q = self.fc_q(self.query).expand(cls.shape[0], -1, -1)  # B×1×D
        q_ = rearrange(q, "b t (h e) -> b (h t) e", h=h)  # B×h×e
        k_ = rearrange(self.fc_k(tokens), "b n (h e) -> b (h n) e", h=h)  # B×hN×e
        v_ = rearrange(self.fc_v(tokens), "b n (h e) -> b (h n) e", h=h)
        attn = torch.softmax(q_ @ k_.transpose(1, 2) / d**0.5, dim=2)  # B×h×hN
        o = rearrange(q_ + attn @ v_, "b (h t) e -> b t (h e)", h=h)[:, 0]  # B×D
        o = o + torch.relu(self.fc_o(o))
        return cls * torch.sigmoid(o) if self.gate else cls + o

    def pool_features(self, features: FeatureLike) -> Tensor:
        """The learned-pool slot: Features -> B×D (the cls output fused with the tokens' pool)."""
        return self(pool(features, "cls"), features.tokens)


class EfficientProbe(nn.Module):
    """Efficient-probing (EP) pooling: Q queries over raw tokens, each aggregating its own slice of
    one value map (see :mod:`anymae.tasks.evaluate.attentive` for the maths).

    Args:
        dim: token width D.
        num_queries: Q (default 32).
        d_out: width divisor; the output width is ``D_out = D / d_out`` (default 1, i.e. D).

    Raises:
        ValueError: unless ``d_out`` divides D and Q divides ``D_out``.
    """

    def __init__(self, dim: int, num_queries: int = 32, d_out: int = 1) -> None:
        super().__init__()
        if num_queries < 1 or d_out < 1:
            raise ValueError(
                f"EfficientProbe: num_queries and d_out must be >= 1, got {num_queries}, {d_out}"
            )
        if dim % d_out != 0:
            raise ValueError(f"EfficientProbe: d_out={d_out} must divide the token width D={dim}")
        out_dim = dim // d_out
        if out_dim % num_queries != 0:
            raise ValueError(
                f"EfficientProbe: num_queries={num_queries} must divide D_out = D / d_out = {out_dim}"
            )
        self.dim = dim
        self.out_dim = out_dim
        self.num_queries = num_queries
        self.scale = 1.0 / math.sqrt(dim)
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)  # Q×D
        self.value = nn.Linear(dim, out_dim, bias=False)  # D -> D_out

    def attention(self, x: Tensor) -> Tensor:
        """B×T×D tokens -> B×Q×T per-query softmax weights over tokens (each row sums to 1)."""
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(
                f"EfficientProbe: expected tokens B×T×{self.dim}, got shape {tuple(x.shape)}"
            )
        logits = torch.einsum("qd,btd->bqt", self.queries, x) * self.scale  # B×Q×T
        return logits.softmax(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """B×T×D tokens -> B×D_out pooled features."""
        attn = self.attention(x)  # B×Q×T
        values = rearrange(self.value(x), "b t (q c) -> b q t c", q=self.num_queries)  # B×Q×T×c
        pooled = torch.einsum("bqt,bqtc->bqc", attn, values)  # B×Q×c
        return rearrange(pooled, "b q c -> b (q c)")  # B×D_out

    def pool_features(self, features: FeatureLike) -> Tensor:
        """The learned-pool slot: Features -> B×D_out over the tokens (prefix excluded)."""
        return self(features.tokens)


def learned_pool(
    kind: LearnedPool, dim: int, *, num_heads: int = 1, num_queries: int = 32, d_out: int = 1
) -> HybridTokenFusion | EfficientProbe:
    """The learned pooler named ``kind`` for D-wide tokens; read it with ``.pool_features(features)``
    and size what follows with its ``out_dim``.

    Args:
        kind: "cls_attn" / "cls_attn_sigmoid" (HybridTokenFusion with ``num_heads`` heads) or
            "attentive" (EfficientProbe with ``num_queries`` queries and width divisor ``d_out``).
        dim: D.
    """
    check_pool(kind, LEARNED_POOLS, where="learned_pool")
    if kind == "attentive":
        return EfficientProbe(dim, num_queries=num_queries, d_out=d_out)
    return HybridTokenFusion(dim, num_heads, gate=kind == "cls_attn_sigmoid")
