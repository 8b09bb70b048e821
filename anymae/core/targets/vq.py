"""Discrete targets from a frozen VQ tokenizer read from a file (BEiT v2's VQ-KD).

    ids = argmax_k cos(task_layer(encoder(tokenizer(x)))[t], codebook[k])      B×N×1 int64

BEiT v2 (microsoft/unilm `beit2/modeling_vqkd.py`, `norm_ema_quantizer.py`): a ViT encoder's
final-normed patch features go through `encode_task_layer` (Linear(D, D) - Tanh - Linear(D, d),
d = 32), are L2-normalized, and take the id of the nearest of K (8192) L2-normalized codes
(squared distance of unit vectors = the largest cosine). The tokenizer is frozen during MIM.

`VQTokenizerIds` holds a frozen tokenizer + `TransformerEncoder` (a `FrozenTeacher`, so any
modality's tokenizer works), the task layer and the K×d codebook, all saved with the model. Its
weights come from a file the user gives (`load(path)`, called by `tasks.train.fit_targets` with
`source_file`): a weights-only `.pt`/`.pth` or `.safetensors` state dict with exactly this
module's keys (`teacher.tokenizer.*`, `teacher.encoder.*`, `task_layer.*`, `codebook`);
`save_vq_tokenizer(provider, path)` writes one. A missing file, missing or unexpected keys and
shape mismatches are errors naming the file and the expected shapes. Loading the official
VQ-KD release (BEiT's own ViT with layer scale and relative positions) is not supported.

Without a file, `fallback="random_encoder"` (for CPU smoke runs only, never BEiT v2's tokenizer)
keeps the encoder's seeded random initialization and fits the codebook by spherical k-means
(faiss, cosine, as VQ-KD's k-means codebook init) on the L2-normalized task-layer outputs of a
sample of the training data (`tasks.train.fit_targets`); `fallback="none"` makes the file required.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from anymae.core.encoder import TransformerEncoder
from anymae.core.skeleton.teacher import FrozenTeacher, freeze_
from anymae.core.targets import TargetProvider
from anymae.core.tokens import Tokens

_RUNTIME_KEYS = ("loaded",)  # state kept by the model, not read from a tokenizer file


class VQTokenizerIds(TargetProvider):
    """Ids of a frozen VQ-KD tokenizer (module doc): B×N×1 int64 in [0, num_codes).

    Args:
        tokenizer: the VQ tokenizer's own tokenizer (fresh module; same token grid as the student's).
        encoder: its `TransformerEncoder` (fresh module).
        code_dim: d, the code width (BEiT v2: 32).
        num_codes: K (BEiT v2: 8192); the head scores K classes.
        source_file: the tokenizer file the user gave (`model.tokenizer_file`).
        fallback: without a file, "none" (an error) or "random_encoder" (module doc).
        iters, max_vectors: the fallback's k-means iterations and most token vectors it reads.
    """

    discrete = True
    source_option = "model.tokenizer_file"
    fitted_file = "tokenizer"  # tasks.train.fit_targets saves a fallback fit as <name>.tokenizer.pt

    def __init__(
        self, tokenizer: nn.Module, encoder: TransformerEncoder, *, code_dim: int = 32, num_codes: int = 8192,
        source_file: str | None = None, fallback: Literal["none", "random_encoder"] = "none", iters: int = 20,
        max_vectors: int = 1_000_000,
    ) -> None:
        super().__init__()
        if fallback not in ("none", "random_encoder"):
            raise ValueError(f"VQTokenizerIds fallback={fallback!r}: expected 'none' or 'random_encoder'")
        self.fallback, self.iters, self.max_vectors = fallback, iters, max_vectors
        self.dim = num_codes
        self.code_dim = code_dim
        self.source_file = source_file
        self.teacher = FrozenTeacher(tokenizer, encoder)
        width = encoder.dim
        self.task_layer = freeze_(nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, code_dim)))
        self.register_buffer("codebook", torch.zeros(num_codes, code_dim))
        self.register_buffer("loaded", torch.zeros((), dtype=torch.bool))

    @property
    def fitted(self) -> bool:
        return bool(self.loaded)

    def fitted_state(self) -> dict[str, Tensor]:
        """A complete tokenizer file (`load` reads it back)."""
        return self.file_state()

    @property
    def can_fit(self) -> bool:
        """Whether `fit` may stand in for a missing file (`fallback="random_encoder"`)."""
        return self.fallback == "random_encoder"

    def raw(self, tokens: Tokens, inputs: Any) -> Tensor:
        """The vectors the fallback clusters: B×N×d L2-normalized task-layer outputs of `inputs`."""
        return self.codes(inputs)

    def fit(self, vectors: Tensor, *, seed: int) -> None:
        """The fallback: spherical k-means (faiss, `iters` iterations) of M×d unit vectors -> codebook."""
        from anymae.extras import require

        if not self.can_fit:
            raise RuntimeError(f"VQTokenizerIds reads its weights from a file ({self.source_option}=PATH)")
        faiss = require("faiss", "targets", purpose="fitting a VQ tokenizer's codebook")
        x = np.ascontiguousarray(vectors.detach().cpu().float().numpy())
        if x.shape[0] < self.dim:
            raise ValueError(f"k-means with {self.dim} codes needs at least {self.dim} vectors, got {x.shape[0]}")
        km = faiss.Kmeans(self.code_dim, self.dim, niter=self.iters, seed=int(seed) % (2**31), spherical=True,
                          verbose=False, max_points_per_centroid=10_000_000)  # fmt: skip
        km.train(x)
        self.codebook.copy_(torch.from_numpy(km.centroids.reshape(self.dim, self.code_dim)))
        self.loaded.fill_(True)

    def train(self, mode: bool = True) -> VQTokenizerIds:
        """Always in eval mode (frozen)."""
        return super().train(False)

    def file_state(self) -> dict[str, Tensor]:
        """The entries a tokenizer file holds: this module's state without runtime flags."""
        return {k: v for k, v in self.state_dict().items() if k not in _RUNTIME_KEYS}

    @torch.no_grad()
    def load(self, path: str | Path) -> None:
        """Fill the tokenizer from `path` (module doc); errors name the file and the expected shapes."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(
                f"VQ tokenizer file {str(p)!r} (option {self.source_option}) does not exist; it must hold a state dict "
                f"with {len(self.file_state())} tensors, e.g. codebook {tuple(self.codebook.shape)}"
            )
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(p))
        elif p.suffix in (".pt", ".pth"):
            state = torch.load(p, map_location="cpu", weights_only=True)
        else:
            raise ValueError(f"VQ tokenizer file {str(p)!r}: expected .pt/.pth or .safetensors")
        if not isinstance(state, dict):
            raise ValueError(f"VQ tokenizer file {str(p)!r}: expected a state dict, got {type(state).__name__}")
        expected = {k: tuple(v.shape) for k, v in self.file_state().items()}
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
        if missing or unexpected or wrong:
            lines = [f"VQ tokenizer file {str(p)!r} does not fit this model's tokenizer (option {self.source_option}):"]
            lines += [f"  missing {k} {expected[k]}" for k in missing[:8]]
            lines += [f"  unexpected {k} {tuple(state[k].shape)}" for k in unexpected[:8]]
            lines += [f"  {k}: file {tuple(state[k].shape)}, expected {expected[k]}" for k in wrong[:8]]
            raise ValueError("\n".join(lines))
        self.load_state_dict({**state, "loaded": torch.ones((), dtype=torch.bool)})

    def use_initial_weights(self) -> None:
        """Smoke tests only: treat the current (random) weights as loaded."""
        self.loaded.fill_(True)

    @torch.no_grad()
    def codes(self, inputs: Any) -> Tensor:
        """B×N×d L2-normalized quantizer inputs of a modality batch."""
        out = self.teacher(inputs)  # final-normed features, prefix first
        feats = out.latent[:, out.num_prefix :]  # B×N×D
        return F.normalize(self.task_layer(feats), dim=-1)

    @torch.no_grad()
    def forward(self, tokens: Tokens, inputs: Any, cache: dict[str, Any], model: nn.Module) -> Tensor:
        if not self.fitted:
            raise RuntimeError(
                f"VQTokenizerIds: no tokenizer weights loaded; give the tokenizer file ({self.source_option}=PATH)"
                " (or fallback='random_encoder' with pretraining's fit)"
            )
        z = self.codes(inputs)  # B×N×d
        if z.shape[1] != tokens.num_tokens:
            raise ValueError(f"the VQ tokenizer made {z.shape[1]} tokens, the model's tokenizer {tokens.num_tokens}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            sim = z.float() @ F.normalize(self.codebook, dim=-1).t()  # B×N×K cosine, float32
        return sim.argmax(dim=-1, keepdim=True)  # B×N×1 int64

    def extra_repr(self) -> str:
        return f"num_codes={self.dim}, code_dim={self.code_dim}, source_file={self.source_file!r}"


def save_vq_tokenizer(provider: VQTokenizerIds, path: str | Path) -> Path:
    """Write `provider`'s tokenizer weights as a tokenizer file (`.pt` weights-only or `.safetensors`)."""
    p = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in provider.file_state().items()}
    if p.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(p))
    else:
        torch.save(state, p)
    return p


__all__ = ["VQTokenizerIds", "save_vq_tokenizer"]
