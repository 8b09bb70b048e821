"""A classifier on a pretrained MAE encoder, for every modality (MAE ``models_vit.py``).

The classifier keeps the MAE's tokenizer and encoder (the decoder is dropped) and adds a head on
one pooled vector per sample; ``pool`` is a name of the one vocabulary of
:mod:`anymae.core.pooling`:

- ``pool="mean"`` (MAE's default "global pool"): encoder on all tokens, mean over the non-prefix
  tokens WITHOUT the encoder's final norm, then ``fc_norm`` (a fresh LayerNorm, eps 1e-6), then
  ``head``. The encoder's final norm is unused in this mode; it is kept (so pretraining checkpoints
  load with an exact key match) but frozen, so that it is neither optimized nor reported as an
  unused parameter by DDP.
- every other parameter-free pool (``cls``, ``max``, ``sum``, ``mean_max``, ``cls_max``): encoder
  with its final norm, :func:`~anymae.core.pooling.pool`, ``head``.
- ``pool="cls_max"`` on an encoder pretrained without prefix tokens (Point-MAE's
  ``PointTransformer``): the classifier adds its own cls token and learned cls position
  (``cls_token``, ``cls_pos``, trunc_normal 0.02), the encoder runs on [cls, tokens] with its final
  norm, and the head reads ``[cls output, max over tokens]`` (2·D). On an encoder with a cls token
  the encoder's own is used.
- learned pools fill the one attention-pool slot ``fusion`` (:func:`~anymae.core.pooling.learned_pool`),
  on the final-normed features: ``cls_attn`` / ``cls_attn_sigmoid`` (ChA-MAEViT's hybrid token
  fusion: the cls output fused with a learned-query attention pool over the non-prefix tokens,
  :class:`~anymae.core.pooling.HybridTokenFusion`), ``attentive`` (the EP pooler over the tokens,
  32 queries).

``head="linear"`` (default) is the Linear below; ``head="mlp"`` is Point-MAE's
``cls_head_finetune``: Linear(in, 256), BN, ReLU, Dropout 0.5, Linear(256, 256), BN, ReLU,
Dropout 0.5, Linear(256, C), with torch's default init.

``head`` is a Linear with weight ~ trunc_normal(std=2e-5) and zero bias (MAE). Parameter names
are ``tokenizer.*``, ``encoder.*``, ``fc_norm.*`` and ``head.*``, so the layer-wise lr decay of
:mod:`anymae.tasks.train.optim` applies unchanged (tokenizer / cls -> layer 0, ``encoder.blocks.k`` ->
k+1, final norm, fc_norm and head -> ``depth + 1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from anymae.core.features import Features
from anymae.core.model import MaskedAutoencoder
from anymae.core.pooling import (
    LEARNED_POOLS,
    POOL_NAMES,
    EfficientProbe,
    HybridTokenFusion,
    PoolName,
    check_pool,
    learned_pool,
    needs_cls,
    pool,
    pool_dim,
)
from anymae.core.registry import create_model
from anymae.tasks.train.checkpoint import CheckpointError, compare_keys, load_checkpoint

Pool = PoolName  # the classifier takes every name of the pooling vocabulary
POOLS: tuple[str, ...] = POOL_NAMES
Head = Literal["linear", "mlp"]
HEADS: tuple[str, ...] = ("linear", "mlp")
BODY_PREFIXES: tuple[str, ...] = ("tokenizer.", "encoder.")


@dataclass
class LoadReport:
    """What :func:`load_encoder_weights` did.

    Attributes:
        loaded: classifier keys filled from the checkpoint (all ``tokenizer.*`` / ``encoder.*``).
        skipped: checkpoint keys outside the tokenizer and encoder (e.g. ``decoder.*``), ignored.
        fresh: classifier keys left at their initialization (``fc_norm.*``, ``head.*``).
    """

    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)


class Classifier(nn.Module):
    """Pretrained MAE encoder + pooling + linear head, mapping a modality batch to B×C logits.

    Build it with :meth:`from_mae`. The constructor takes ``body`` as is: its tokenizer and
    encoder become this module's ``tokenizer`` and ``encoder`` (shared, not copied), and its
    ``features`` method is the forward path; its decoder is never used.

    Args:
        body: the MaskedAutoencoder providing tokenizer, encoder and ``features``.
        num_classes: C, the number of output logits.
        pool: a name of the pooling vocabulary (see the module doc; "mean": MAE's global pool).
        head_init_std: std of the head's trunc_normal weight init (MAE: 2e-5; linear head only).
        head: "linear" or "mlp" (Point-MAE's 3-layer head with BN and dropout).
    """

    def __init__(
        self,
        body: MaskedAutoencoder,
        num_classes: int,
        *,
        pool: Pool = "mean",
        head_init_std: float = 2e-5,
        head: Head = "linear",
        modality: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"Classifier: num_classes={num_classes!r}: expected an int >= 1")
        names = getattr(body.tokenizer, "modalities", None)
        if modality is not None and (names is None or modality not in names):
            raise ValueError(f"Classifier: modality={modality!r}: expected None (joint features) or one of the "
                             f"model's modalities {list(names or ())}")
        check_pool(pool, POOLS, where="Classifier")
        has_cls, num_prefix = body.encoder.cls_token is not None, body.encoder.num_prefix
        own_cls = pool == "cls_max" and num_prefix == 0  # Point-MAE: the classifier brings the cls token
        if needs_cls(pool) and not has_cls and not own_cls:
            raise ValueError(f"Classifier: pool={pool!r} but the encoder has no cls token; use pool='mean' "
                             "(or another pool without cls: max, sum, mean_max, attentive)")
        if head not in HEADS:
            raise ValueError(f"Classifier: head={head!r}: expected one of {HEADS}")
        if head_init_std <= 0:
            raise ValueError(f"Classifier: head_init_std={head_init_std!r}: expected > 0")
        # Not registered as a submodule: its tokenizer/encoder are registered below under their own
        # names, so parameter names stay `tokenizer.*` / `encoder.*` (layer-decay ids, checkpoints).
        object.__setattr__(self, "_body", body)
        self.tokenizer = body.tokenizer
        self.encoder = body.encoder
        self.pool: Pool = pool
        self.modality = modality  # a cross-modal body: one modality's modality-only pass (None: joint)
        self.num_classes = num_classes
        dim = body.encoder.dim
        self.fc_norm: nn.Module = nn.LayerNorm(dim, eps=1e-6) if pool == "mean" else nn.Identity()
        if pool == "mean":
            self.encoder.norm.requires_grad_(False)  # unused without the final norm (see module doc)
        self.fusion: HybridTokenFusion | EfficientProbe | None = None  # the learned-pool slot
        if pool in LEARNED_POOLS:
            self.fusion = learned_pool(pool, dim, num_heads=body.encoder.cfg.num_heads)  # type: ignore[arg-type]
        self.own_cls = own_cls
        if own_cls:
            self.cls_token = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, 1, dim), std=0.02))
            self.cls_pos = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, 1, dim), std=0.02))
        in_dim = self.fusion.out_dim if self.fusion is not None else pool_dim(pool, dim)
        if head == "mlp":
            self.head: nn.Module = nn.Sequential(
                nn.Linear(in_dim, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(0.5),
                nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Dropout(0.5),
                nn.Linear(256, num_classes),
            )
        else:
            self.head = nn.Linear(in_dim, num_classes)
            nn.init.trunc_normal_(self.head.weight, std=head_init_std)
            nn.init.zeros_(self.head.bias)
        self.config: dict[str, Any] = {
            "model": dict(body.config),
            "num_classes": num_classes,
            "pool": pool,
            "head_init_std": head_init_std,
            "head": head,
            "modality": modality,
        }

    @classmethod
    def from_mae(
        cls,
        mae: MaskedAutoencoder,
        num_classes: int,
        *,
        pool: Pool = "mean",
        drop_path: float = 0.1,
        head_init_std: float = 2e-5,
        head: Head = "linear",
        modality: str | None = None,
    ) -> Classifier:
        """A classifier with ``mae``'s tokenizer and encoder weights and stochastic depth ``drop_path``.

        The MAE is rebuilt from ``mae.config`` with ``drop_path`` overridden (the rate rises
        linearly over the blocks up to ``drop_path``), then the tokenizer and encoder tensors are
        copied over with an exact key check. ``mae`` itself is not modified or shared.

        Args:
            mae: a pretrained MaskedAutoencoder built by ``anymae.create_model``.
            num_classes: C.
            pool: a name of the pooling vocabulary (see the module doc).
            drop_path: stochastic-depth rate of the last block (MAE ViT-B: 0.1).
            head_init_std: std of the head's weight init.
            head: "linear" or "mlp".
            modality: a cross-modal ``mae``: classify one modality's modality-only features
                (CAV-MAE's audio-only / visual-only modes); None: the joint features.

        Raises:
            ValueError: ``mae.config`` lacks the preset name.
            CheckpointError: the rebuilt tokenizer / encoder do not match ``mae``'s keys.
        """
        config = dict(mae.config)
        name = config.pop("name", None)
        if not name:
            raise ValueError(
                "Classifier.from_mae: mae.config has no 'name'; build the MAE with anymae.create_model "
                "so that it can be rebuilt with drop_path"
            )
        body = create_model(name, **{**config, "drop_path": drop_path})
        body.decoder = None  # the classifier never decodes; free its memory
        classifier = cls(body, num_classes, pool=pool, head_init_std=head_init_std, head=head, modality=modality)
        classifier.load_body_state(mae.state_dict(), source=f"MaskedAutoencoder {name!r}")
        return classifier

    def forward(self, x: Any) -> Tensor:
        """Logits for a modality batch.

        Args:
            x: the modality batch (e.g. B×C×H×W images), as the MAE takes it.

        Returns:
            B×num_classes logits.
        """
        if self.own_cls:
            feats = self._own_cls_features(x)
        else:
            feats = self._body.features(x, final_norm=self.pool != "mean", modality=self.modality)  # "mean": MAE's global pool
        if self.fusion is not None:
            return self.head(self.fusion.pool_features(feats))  # learned pool B×D', then logits
        return self.head(self.fc_norm(pool(feats, self.pool)))  # B×D' (fc_norm: Identity unless "mean")

    def _own_cls_features(self, x: Any) -> Features:
        """Features of the encoder run on [the classifier's cls token, tokens] with its final norm
        (the encoder itself has no prefix); the cls token's position is ``cls_pos``."""
        tokens = self.tokenizer(x)
        b = tokens.x.shape[0]
        pos = self.tokenizer.pos_embed(tokens.grid, tokens.coords).expand(b, -1, -1)  # B×N×D
        seq = torch.cat([self.cls_token.expand(b, -1, -1), tokens.x], dim=1)  # B×(1+N)×D
        seq_pos = torch.cat([self.cls_pos.expand(b, -1, -1), pos], dim=1)  # B×(1+N)×D
        if self.encoder.cfg.pos_every_block:
            latent, _ = self.encoder(seq, seq_pos)
        else:
            latent, _ = self.encoder(seq + seq_pos)
        return Features(tokens=latent[:, 1:], prefix=latent[:, :1])  # B×N×D, B×1×D

    def no_weight_decay(self) -> set[str]:
        """Names exempt from weight decay in fine-tuning: cls / register tokens, learned positions."""
        params = dict(self.named_parameters())
        names = {"encoder.cls_token", "encoder.reg_token", "cls_token", "cls_pos"}
        names |= {n for n in params if "pos_embed" in n}
        return {n for n in names if n in params}

    def load_body_state(self, state: Mapping[str, Tensor], *, source: str) -> LoadReport:
        """Copy the ``tokenizer.*`` / ``encoder.*`` tensors of ``state`` into this classifier.

        Every tokenizer / encoder key of the classifier must be in ``state`` with the same shape,
        and ``state`` may hold no tokenizer / encoder key that the classifier lacks; other keys
        (``decoder.*``, a previous head) are skipped.

        Args:
            state: a state dict with MaskedAutoencoder / Classifier parameter names.
            source: what ``state`` came from (a file path), for error messages.

        Raises:
            CheckpointError: naming the missing, unexpected and mis-shaped keys.
        """
        def outside_body(key: str) -> bool:
            return not key.startswith(BODY_PREFIXES)

        report = compare_keys(self, state, ignore=outside_body)
        body = {k: v for k, v in state.items() if not outside_body(k)}
        if not body:
            raise CheckpointError(
                f"{source}: holds no 'tokenizer.*' / 'encoder.*' keys (first keys: {sorted(state)[:5]}); "
                "expected anymae MaskedAutoencoder parameter names"
            )
        if not report.ok:
            raise CheckpointError(
                f"{source}: the tokenizer/encoder weights do not match this classifier:\n{report.describe()}"
            )
        self.load_state_dict(body, strict=False)
        own = self.state_dict().keys()
        return LoadReport(
            loaded=sorted(body),
            skipped=sorted(k for k in report.ignored if k in state),
            fresh=sorted(k for k in report.ignored if k in own and k not in state),
        )


def load_encoder_weights(classifier: Classifier, path: str | Path) -> LoadReport:
    """Load the tokenizer and encoder of an anymae pretraining checkpoint into ``classifier``.

    Reads ``path`` with :func:`anymae.tasks.train.checkpoint.load_checkpoint` and uses its ``"model"``
    state dict; only ``tokenizer.*`` / ``encoder.*`` keys are kept (the decoder is skipped) and
    ``fc_norm.*`` / ``head.*`` stay freshly initialized.

    Args:
        classifier: the classifier to fill in place.
        path: the checkpoint file (e.g. ``<run>/last.pt``).

    Returns:
        LoadReport naming the loaded, skipped and fresh keys.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is unreadable or holds no ``"model"`` state dict, or its tokenizer /
            encoder keys do not match the classifier exactly (missing, unexpected and mis-shaped keys
            are named).
    """
    state = load_checkpoint(path)
    model_state = state.get("model") if isinstance(state, Mapping) else None
    if not isinstance(model_state, Mapping):
        found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise CheckpointError(f"{path}: expected an anymae checkpoint with a 'model' state dict, found {found}")
    return classifier.load_body_state(model_state, source=str(path))
