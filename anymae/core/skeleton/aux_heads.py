"""Auxiliary heads: a second decoder stack fed the first decoder's input, owned by a loss term.

HPM (crossmodal_and_zoo.md B1) adds a *loss predictor* to MAE: a decoder of the decoder's size
(its own blocks, norm and p²·C head) that reads the same decoder input as the reconstructor (the
embedded latent, the mask tokens and the decoder positions, which it shares), and whose outputs
are averaged to one scalar per token: the predicted reconstruction loss.

- `decoder_input(decoder, latent, ...)`: an `MAEDecoder`'s input sequence and positions, exactly
  as `MAEDecoder.forward` builds them (`[prefix?, visible + pos[keep], mask_token + pos[query]]`);
  running the decoder's own blocks / norm / head on it gives the decoder's predictions.
- `AuxDecoder`: blocks + norm + head on that input, optionally averaged over the outputs.
- `LossPrediction` (a `LossTerm`, so the predictor is a module of the model, saved and resumed
  with it, trained with it, its loss logged in `MAEOutput.parts` under the term's name): runs the
  predictor on branch 0's decoder input and learns the per-token reconstruction losses of the
  queried (hidden) tokens, detached, with HPM's relative (pairwise) loss or an MSE to the
  per-sample standardized losses. `predicted_losses(model, inputs, tokens)` runs the EMA
  teacher's copies (tokenizer, encoder, decoder, predictor) on the unmasked batch: the scores of
  the `predicted_loss` score source (`core.masking.scores`) that HPM's `score_topk` masking reads.

Works for any modality whose decoder is a (non-windowed) `MAEDecoder` in drop mode: images, video
tubelets, spectrograms with the global decoder, point patches.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from anymae.core.decoders.mae import MAEDecoder
from anymae.core.masking import gather_tokens
from anymae.core.skeleton.steps import Pass
from anymae.core.skeleton.terms import LossTerm
from anymae.core.tokens import Tokens
from anymae.core.transformer import init_mae_, layer_norm, make_blocks, run_blocks

_LOG_EPS = 1e-6  # HPM's epsilon inside the logs of the relative loss
_VAR_EPS = 1e-6  # HPM's epsilon of the per-sample standardization

# reconstruction loss name -> per-token loss (pred B×M×P, target B×M×P) -> B×M (HPM: MSE's 'matrix')
PER_TOKEN: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": lambda pred, target: (pred - target).pow(2).mean(dim=-1),
    "l1": lambda pred, target: (pred - target).abs().mean(dim=-1),
}


def decoder_input(
    decoder: MAEDecoder, latent: Tensor, *, num_prefix: int, keep: Tensor, query: Tensor, grid: tuple[int, ...],
    coords: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The input sequence of `decoder` and its positions (what `MAEDecoder.forward` feeds its blocks).

    Args:
        decoder: a non-windowed `MAEDecoder`.
        latent: B×(P+Nv)×D_enc encoder output (prefix first).
        num_prefix: P.
        keep: B×Nv indices of the visible tokens (the order of `latent`).
        query: B×Nq indices of the tokens given mask tokens (may be empty: B×0).
        grid, coords: the token layout.

    Returns:
        (B×L×dim sequence, B×L×dim positions), L = [P if the decoder keeps the prefix] + Nv + Nq,
        in the order [prefix, visible, queried]; the blocks see `sequence + positions` (or the
        positions re-added at every block with `cfg.pos_every_block`).
    """
    if decoder.cfg.window is not None:
        raise ValueError("an auxiliary head reads a global-attention MAEDecoder's input; this decoder is windowed "
                         "(e.g. Audio-MAE's local decoder: use decoder='global')")
    return decoder.sequence(latent, num_prefix=num_prefix, keep=keep, query=query, grid=grid, coords=coords)


class AuxDecoder(nn.Module):
    """A decoder stack on another decoder's input: blocks, LayerNorm, Linear head (MAE init).

    Args:
        dim, depth, num_heads, mlp_ratio, qkv_bias, norm_eps: block sizes (HPM: the decoder's).
        out_dim: head outputs per token (HPM: p²·C, averaged to one value).
        reduce: "mean" averages the head's outputs to one value per token (B×L); None keeps them.
    """

    def __init__(
        self, dim: int, depth: int, num_heads: int, out_dim: int, *, mlp_ratio: float = 4.0, qkv_bias: bool = True,
        norm_eps: float = 1e-6, reduce: str | None = "mean",
    ) -> None:
        super().__init__()
        if reduce not in ("mean", None):
            raise ValueError(f"reduce={reduce!r}: expected 'mean' or None")
        self.blocks = make_blocks(dim, depth, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, norm_eps=norm_eps)
        self.norm = layer_norm(dim, norm_eps)
        self.head = nn.Linear(dim, out_dim)
        self.reduce = reduce
        self.apply(init_mae_)

    @classmethod
    def like(cls, decoder: MAEDecoder, out_dim: int, **kwargs: Any) -> AuxDecoder:
        """A stack of the decoder's sizes (width, depth, heads, MLP ratio, qkv bias, norm eps)."""
        c = decoder.cfg
        return cls(c.dim, c.depth, c.num_heads, out_dim, mlp_ratio=c.mlp_ratio, qkv_bias=c.qkv_bias,
                   norm_eps=c.norm_eps, **kwargs)

    def forward(self, seq: Tensor, pos: Tensor, *, pos_every_block: bool = False) -> Tensor:
        """seq, pos: B×L×dim (`decoder_input`) -> B×L (reduce "mean") or B×L×out_dim."""
        x, _ = run_blocks(self.blocks, seq, pos) if pos_every_block else run_blocks(self.blocks, seq + pos)
        out = self.head(self.norm(x))  # B×L×out_dim
        return out.mean(dim=-1) if self.reduce == "mean" else out


def relative_loss(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """HPM's relative loss: binary CE on sigmoid(p_j − p_i) against whether ℓ_j > ℓ_i, over valid pairs.

    For every sample and every ordered pair (i, j) of tokens with ℓ_i ≠ ℓ_j:
    `−[ℓ_j > ℓ_i]·log(σ(p_j − p_i) + 1e-6) − [ℓ_j < ℓ_i]·log(1 − σ(p_j − p_i) + 1e-6)`, summed over
    the batch and divided by the number of such pairs in the batch (the reference's
    `loss.sum() / labels_valid.sum()`).

    Args:
        pred: B×M predicted losses.
        target: B×M actual losses (detached by the caller).
        weight: optional B×M; pairs with a zero-weight token are left out.

    Returns:
        scalar (0, connected to the graph, when no pair is valid).
    """
    positive = target.unsqueeze(1) > target.unsqueeze(2)  # B×M×M, [b, i, j] = ℓ_j > ℓ_i
    negative = target.unsqueeze(1) < target.unsqueeze(2)
    if weight is not None:
        both = (weight.unsqueeze(1) > 0) & (weight.unsqueeze(2) > 0)  # B×M×M
        positive, negative = positive & both, negative & both
    valid = (positive | negative).sum()
    diff = torch.sigmoid(pred.unsqueeze(1) - pred.unsqueeze(2))  # B×M×M, σ(p_j − p_i)
    loss = -positive.to(pred.dtype) * torch.log(diff + _LOG_EPS) - negative.to(pred.dtype) * torch.log(
        1 - diff + _LOG_EPS
    )
    if valid == 0:
        return loss.sum() * 0.0
    return loss.sum() / valid


def standardized_mse(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """HPM's MSE option: MSE between the predictions and each sample's losses standardized over its
    tokens (`(ℓ − mean) / sqrt(var + 1e-6)`, unbiased variance), averaged over tokens.

    pred, target: B×M; weight: optional B×M (zero-weight tokens leave the mean, not the statistics).
    """
    mean = target.mean(dim=1, keepdim=True)  # B×1
    var = target.var(dim=1, keepdim=True)  # B×1, unbiased (torch's default, as the reference)
    per_token = (pred - (target - mean) / (var + _VAR_EPS).sqrt()).pow(2)  # B×M
    if weight is None:
        return per_token.mean()
    total = weight.sum()
    return per_token.sum() * 0.0 if total == 0 else (per_token * weight).sum() / total


class LossPrediction(LossTerm):
    """HPM's loss predictor and its loss (module doc).

    Args:
        decoder: the branch's `MAEDecoder` (the predictor takes its sizes and shares its input).
        out_dim: the predictor head's outputs per token before averaging (HPM: p²·C, the decoder
            head's width).
        relative: HPM's relative (pairwise) loss (True, the reference's default) or the MSE to the
            per-sample standardized losses (False).
        teacher: the name of the model's EMA teacher that holds copies of the predictor, encoder
            and decoder (`predicted_losses`).
        branch: the branch whose decoder input and reconstruction the predictor learns.
        name, weight: as `LossTerm` (HPM: weight 1).
    """

    def __init__(
        self, decoder: MAEDecoder, out_dim: int, *, relative: bool = True, teacher: str = "ema", branch: int = 0,
        name: str = "loss_pred", weight: float = 1.0,
    ) -> None:
        super().__init__(name, weight)
        if not isinstance(decoder, MAEDecoder) or decoder.cfg.window is not None:
            raise TypeError(f"loss prediction needs a global-attention MAEDecoder (drop mode), got "
                            f"{type(decoder).__name__}" + (" with windows" if isinstance(decoder, MAEDecoder) else ""))
        self.predictor = AuxDecoder.like(decoder, out_dim)
        self.relative, self.teacher, self.branch = bool(relative), teacher, branch

    def predict(
        self, predictor: AuxDecoder, decoder: MAEDecoder, latent: Tensor, num_prefix: int, keep: Tensor,
        query: Tensor, tokens: Tokens,
    ) -> Tensor:
        """B×(Nv+Nq) predicted losses at [visible, queried] tokens (prefix left out)."""
        seq, pos = decoder_input(
            decoder, latent, num_prefix=num_prefix, keep=keep, query=query, grid=tokens.grid, coords=tokens.coords
        )
        out = predictor(seq, pos, pos_every_block=decoder.cfg.pos_every_block)  # B×L
        return out[:, out.shape[1] - keep.shape[1] - query.shape[1] :]

    def path(self, model: nn.Module) -> str:
        """The dotted path of this term's predictor inside `model` (e.g. "terms.1.predictor")."""
        for name, module in model.named_modules():
            if module is self.predictor:
                return name
        raise ValueError("this loss-prediction term is not a part of the given model")

    def teacher_parts(self, model: nn.Module) -> tuple[str, ...]:
        """The student parts an EMA teacher must copy for `predicted_losses`."""
        decoder = "decoder" if self.branch == 0 else f"decoder{self.branch + 1}"
        return ("tokenizer", "encoder", decoder, self.path(model))

    @torch.no_grad()
    def predicted_losses(self, model: Any, inputs: Any, tokens: Tokens | None = None) -> Tensor:
        """B×N per-token predicted losses, in token order, of the teacher's copies on the unmasked batch.

        The teacher (`model.teachers[self.teacher]`, an `EMATeacher` holding `teacher_parts`)
        encodes every token; its decoder copy builds the decoder input without mask tokens; its
        predictor copy predicts (HPM's `model_ema.ema(samples, mask=visible_mask)['loss_pred']`).
        `tokens` gives the layout (grid / coords); the teacher's own tokenization when None.
        """
        if self.teacher not in model.teachers:
            raise ValueError(f"loss prediction reads teacher {self.teacher!r}; the model has {sorted(model.teachers)}")
        teacher = model.teachers[self.teacher]
        paths = self.teacher_parts(model)
        enc = teacher(inputs)  # B×(P+N)×D, every token
        layout = tokens if tokens is not None else teacher.tokenizer(inputs)
        n = enc.latent.shape[1] - enc.num_prefix
        keep = torch.arange(n, device=enc.latent.device).expand(enc.latent.shape[0], n)  # B×N, token order
        return self.predict(teacher.part(paths[3]), teacher.part(paths[2]), enc.latent, enc.num_prefix, keep,
                            keep[:, :0], layout)

    def forward(self, state: Pass) -> Tensor:
        branch = state.branches[self.branch]
        query = branch.planned.query
        if query is None:
            raise ValueError(f"loss term {self.name!r} learns the losses of queried tokens: it needs drop mode")
        model = state.model
        per_token = PER_TOKEN.get(model.loss_name)
        if per_token is None:
            raise ValueError(f"loss term {self.name!r} predicts per-token losses of {sorted(PER_TOKEN)}, the model's "
                             f"loss is {model.loss_name!r}")
        keep, latent = branch.plan.keep, branch.encoded.latent
        pred = self.predict(self.predictor, model.decoders[self.branch], latent, branch.encoded.num_prefix, keep,
                            query, state.tokens)[:, keep.shape[1] :]  # B×Nq, the queried tokens
        target = per_token(branch.decoded.pred, gather_tokens(state.target, query)).detach()  # B×Nq
        weight = branch.planned.weight
        weight = None if bool((weight == 1).all()) else weight
        return relative_loss(pred, target, weight) if self.relative else standardized_mse(pred, target, weight)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, relative={self.relative}, teacher={self.teacher!r}"
