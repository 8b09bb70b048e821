"""Discrete targets from a k-means codebook: each token's id is its raw target's nearest centroid (CCViT).

    codebook = Codebook(K, D)                 K×D centroids, a buffer (checkpoints hold it)
    ids      = codebook.assign(x)             ...×D -> ... int64, nearest centroid (squared L2)
    provider = KMeansIds(K, D, channels=3, channel_first=True, mean=..., std=...)
    provider(tokens, inputs, cache, model)    -> B×N×1 int64 ids in [0, K)

CCViT (Cakeyan/CCViT_Public `train_faiss_kmeans.py`, `engine_for_pretraining.py`) clusters the raw
16×16×3 pixel patches of un-normalized [0, 1] images, flattened channel-first (`c, p, q`), with
faiss k-means (K = 8192, 20 iterations, seed 1, `max_points_per_centroid` large so faiss does not
subsample) and assigns ids with an exact L2 index. `KMeansIds` reads the tokenizer's raw target
(any modality: the token's values, channel-last `(..., c)` for images), un-normalizes it with the
data's mean/std when given, reorders it channel-first when asked (so CCViT's released
`*_centroids.npy` can be loaded as is), and assigns ids by brute-force squared distance in torch
(the same ids as faiss' `IndexFlatL2`; it runs on the model's device).

A provider with `fit` is fitted before training by `tasks.train.fit_targets` on a sample of the
training data, or loaded from a file (`load_centroids_file`: `.npy`, `.pt`, `.safetensors`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from anymae.core.targets import TargetProvider
from anymae.core.tokens import Tokens

_ASSIGN_ROWS = 4096  # rows per distance block in `assign` (bounds the rows×K distance matrix)


class Codebook(nn.Module):
    """K×D centroids (buffer `centroids`, saved with the model) and nearest-centroid assignment.

    `fitted` (a bool buffer, saved too) says whether the centroids came from a fit or a file.
    """

    def __init__(self, num_codes: int, dim: int) -> None:
        super().__init__()
        if num_codes < 1 or dim < 1:
            raise ValueError(f"a codebook needs num_codes >= 1 and dim >= 1, got {num_codes}, {dim}")
        self.num_codes, self.dim = num_codes, dim
        self.register_buffer("centroids", torch.zeros(num_codes, dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def assign(self, x: Tensor) -> Tensor:
        """x: ...×D -> ... int64 ids of the nearest centroid (squared L2 in float32, also under autocast)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"codebook of {self.num_codes}×{self.dim} got vectors of size {x.shape[-1]}")
        flat = x.reshape(-1, self.dim).to(self.centroids.dtype)  # M×D
        c = self.centroids
        c_sq = c.pow(2).sum(-1)  # K
        out = []
        with torch.autocast(device_type=flat.device.type, enabled=False):  # exact float32 distances
            for rows in flat.split(_ASSIGN_ROWS):
                # ||x - c||² = ||x||² - 2 x·c + ||c||²; ||x||² is constant per row
                dist = c_sq.unsqueeze(0) - 2.0 * rows @ c.t()  # rows×K
                out.append(dist.argmin(dim=-1))
        return torch.cat(out).view(x.shape[:-1])

    @torch.no_grad()
    def set_centroids(self, centroids: Tensor | np.ndarray, source: str) -> None:
        """Copy K×D centroids in (shape checked; `source` names them in errors)."""
        c = torch.as_tensor(np.asarray(centroids) if not isinstance(centroids, Tensor) else centroids)
        if tuple(c.shape) != (self.num_codes, self.dim):
            raise ValueError(
                f"{source}: codebook of shape {tuple(c.shape)}, expected {self.num_codes}×{self.dim} "
                f"(num_codes × token target size)"
            )
        if not torch.isfinite(c).all():
            raise ValueError(f"{source}: the codebook holds NaN or Inf values")
        self.centroids.copy_(c.to(self.centroids))
        self.fitted.fill_(True)

    def fit_kmeans(self, samples: Tensor, *, seed: int, iters: int = 20) -> None:
        """Fit the centroids with faiss k-means on M×D `samples` (M >= K), deterministic in `seed`.

        As CCViT: `niter=iters`, no subsampling of the training set (`max_points_per_centroid`
        large), one run; faiss initializes from `seed`.
        """
        from anymae.extras import require

        faiss = require("faiss", "targets", purpose="fitting a k-means codebook (CCViT-style ids)")
        x = np.ascontiguousarray(samples.detach().cpu().float().numpy())
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"k-means samples must be M×{self.dim}, got {x.shape}")
        if x.shape[0] < self.num_codes:
            raise ValueError(
                f"k-means with {self.num_codes} codes needs at least {self.num_codes} sample vectors, got {x.shape[0]}"
            )
        km = faiss.Kmeans(self.dim, self.num_codes, niter=iters, seed=int(seed) % (2**31), verbose=False,
                          max_points_per_centroid=10_000_000)  # fmt: skip
        km.train(x)
        self.set_centroids(torch.from_numpy(km.centroids.reshape(self.num_codes, self.dim)), "k-means fit")

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, dim={self.dim}"


def load_centroids_file(path: str | Path) -> Tensor:
    """Centroids from a file: `.npy` (CCViT's `*_centroids.npy`), `.pt`/`.pth` (weights-only: a
    tensor, or a dict with `centroids` or a `*codebook.centroids` key) or `.safetensors` (key
    `centroids`). A missing or unreadable file is an error naming it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"codebook file {str(p)!r} does not exist")
    if p.suffix == ".npy":
        return torch.from_numpy(np.load(p, allow_pickle=False))
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        data: Any = load_file(str(p))
    elif p.suffix in (".pt", ".pth"):
        data = torch.load(p, map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"codebook file {str(p)!r}: expected .npy, .pt/.pth or .safetensors")
    if isinstance(data, Tensor):
        return data
    if isinstance(data, dict):
        keys = [k for k in data if k == "centroids" or k.endswith("codebook.centroids")]
        if len(keys) == 1 and isinstance(data[keys[0]], Tensor):
            return data[keys[0]]
    raise ValueError(f"codebook file {str(p)!r}: found no 'centroids' tensor (keys: {sorted(data)[:8]})")


class KMeansIds(TargetProvider):
    """Nearest-centroid ids of each token's raw target (module doc): B×N×1 int64 in [0, num_codes).

    Args:
        num_codes: K (the head scores K classes: `dim = K`).
        token_dim: D, the size of the tokenizer's raw target per token.
        channels: C, the channel count of a channel-last target (`(..., c)`, c fastest), for
            un-normalizing and reordering; 1 = a plain vector.
        channel_first: cluster `(c, ...)`-ordered vectors (CCViT's patch layout).
        mean, std: the data's normalization (one value or one per channel): targets are
            un-normalized `x·std + mean` before clustering (CCViT clusters [0, 1] pixels).
        iters: k-means iterations of a fit.
        max_vectors: most token vectors a fit reads (`tasks.train.fit_targets`).
        source_file: a centroids file the user gives (`model.codebook`); loaded instead of fitting.
    """

    discrete = True
    source_option = "model.codebook"
    can_fit = True  # fitted on the data when no file is given
    fitted_file = "codebook"  # tasks.train.fit_targets saves a fit as <name>.codebook.pt

    def __init__(
        self,
        num_codes: int,
        token_dim: int,
        *,
        channels: int = 1,
        channel_first: bool = False,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        iters: int = 20,
        max_vectors: int = 1_000_000,
        source_file: str | None = None,
    ) -> None:
        super().__init__()
        if channels < 1 or token_dim % channels:
            raise ValueError(f"KMeansIds channels={channels} must divide token_dim={token_dim}")
        if (mean is None) != (std is None):
            raise ValueError("KMeansIds needs both mean and std (to un-normalize) or neither")
        self.dim = num_codes
        self.token_dim, self.channels, self.channel_first = token_dim, channels, channel_first
        self.iters, self.max_vectors, self.source_file = iters, max_vectors, source_file
        self.codebook = Codebook(num_codes, token_dim)
        self.register_buffer("mean", self._per_channel(mean, "mean"), persistent=False)
        self.register_buffer("std", self._per_channel(std, "std"), persistent=False)

    def _per_channel(self, values: tuple[float, ...] | None, name: str) -> Tensor | None:
        if values is None:
            return None
        vals = [float(v) for v in values]
        vals = vals * self.channels if len(vals) == 1 else vals
        if len(vals) != self.channels:
            raise ValueError(f"KMeansIds {name} needs one value or one per channel ({self.channels}), got {len(vals)}")
        return torch.tensor(vals)

    @property
    def fitted(self) -> bool:
        return bool(self.codebook.fitted)

    def fitted_state(self) -> dict[str, Tensor]:
        """What a fit produced, as `load` reads it back: {"centroids": K×D}."""
        return {"centroids": self.codebook.centroids}

    def raw(self, tokens: Tokens, inputs: Any = None) -> Tensor:
        """The vectors that are clustered: B×N×D (un-normalized, channel-first when asked)."""
        if tokens.target is None:
            raise ValueError("KMeansIds reads the tokenizer's raw target, and this tokenizer made none")
        t = tokens.target.float()
        if t.shape[-1] != self.token_dim:
            raise ValueError(f"KMeansIds expects token targets of size {self.token_dim}, got {t.shape[-1]}")
        grouped = rearrange(t, "b n (s c) -> b n s c", c=self.channels)  # B×N×(D/C)×C
        if self.mean is not None:
            grouped = grouped * self.std + self.mean
        order = "b n s c -> b n (c s)" if self.channel_first else "b n s c -> b n (s c)"
        return rearrange(grouped, order)

    def centroid_values(self, ids: Tensor) -> Tensor:
        """ids: ... int64 -> ...×D centroids in the tokenizer's target layout and normalization (the
        inverse of `raw`), e.g. to put a centroid patch in place of a token (CCViT's replacement)."""
        c = self.codebook.centroids[ids]  # ...×D in the clustered layout
        order = "... (c s) -> ... s c" if self.channel_first else "... (s c) -> ... s c"
        grouped = rearrange(c, order, c=self.channels)  # ...×(D/C)×C
        if self.mean is not None:
            grouped = (grouped - self.mean) / self.std
        return rearrange(grouped, "... s c -> ... (s c)")

    def fit(self, vectors: Tensor, *, seed: int) -> None:
        """Fit the codebook on M×D vectors from `raw` (k-means, `iters` iterations)."""
        self.codebook.fit_kmeans(vectors, seed=seed, iters=self.iters)

    def load(self, path: str | Path) -> None:
        """Load the centroids from a file (`load_centroids_file`), shape checked."""
        self.codebook.set_centroids(load_centroids_file(path), f"codebook file {str(path)!r}")

    def forward(self, tokens: Tokens, inputs: Any, cache: dict[str, Any], model: nn.Module) -> Tensor:
        if not self.fitted:
            raise RuntimeError(
                "KMeansIds: the codebook is not fitted; pretraining fits it on the data "
                "(tasks.train.fit_targets), or give a centroids file (model.codebook=PATH)"
            )
        return self.codebook.assign(self.raw(tokens)).unsqueeze(-1)  # B×N×1 int64

    def extra_repr(self) -> str:
        return (
            f"num_codes={self.dim}, token_dim={self.token_dim}, channels={self.channels}, "
            f"channel_first={self.channel_first}"
        )


__all__ = ["Codebook", "KMeansIds", "load_centroids_file"]
