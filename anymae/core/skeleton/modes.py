"""Masking modes: how hidden tokens are kept from the encoder and how queries are decoded.

- `DropMode` (MAE): the encoder sees only the visible tokens; the decoder (`MAEDecoder`) puts
  mask tokens at the queried positions (the hidden tokens, or a decoder-side keep set) and
  predicts them.
- `ReplaceMode` (SimMIM / BERT / GraphMAE): the encoder sees every token, hidden ones' inputs
  replaced with a learned [MASK] vector (zero init), a `replace_rate` share of them with other
  random tokens' inputs (BERT's 80/10/10 idea, GraphMAE's `encoding_mask_noise`). Then

      h    = encoder(x_replaced)                 B×N×H  the TransformerEncoder, or any backbone
      rep  = encoder_to_decoder(h)               B×N×H' Linear, no bias
      rep[hidden] = 0                            re-masking (GraphMAE: a plain zero), optional
      pred = decoder(rep, tokens)                B×N×P  a backbone again (one GNN layer, ...)

  and the loss counts the hidden tokens.
- `SoftMode` (ROPIM): nothing is hidden; every token is encoded after a per-sample linear mix
  over the tokens, `x -> P·x` with `P = ρ·S·Sᵀ` a count-sketch projector (`core.masking.sketch`),
  and the loss measures the residual in the complement `I - P` only:

      pred_out = (I - P)·pred + P·target     so that   pred_out - target = (I - P)(pred - target)

  i.e. the component of the answer the encoder was shown (P) is taken from the target, the
  complement from the prediction, as MAE pastes the visible patches back.

A backbone is any module `backbone(x: B×N×D_in, tokens: Tokens) -> B×N×D_out` with `in_dim` and
`out_dim` attributes; it reads the token layout it needs from `tokens` (a GNN reads its edges
from `tokens.extra`, which the core never looks at).

A mode holds no parameters itself: `parts()` names the modules the model registers at its top
level (so that state-dict keys are `mask_token`, `encoder_to_decoder.*`), and `encode` /
`decode` read them from the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import torch
from torch import Tensor, nn

from anymae.core.decoders.mae import MAEDecoder
from anymae.core.encoder import TransformerEncoder
from anymae.core.masking import MaskPlan, SampleRNG, gather_tokens
from anymae.core.masking.sketch import draw_projectors, sketch_size
from anymae.core.seeds import SECOND_STREAM_OFFSET, offset_seeds
from anymae.core.skeleton.steps import BranchPlan, Decoded, Encoded
from anymae.core.tokens import Tokens

if TYPE_CHECKING:
    from anymae.core.model import MaskedAutoencoder


Parts = dict[str, nn.Module | nn.Parameter]  # name -> a module / parameter the model registers


class MaskingMode(Protocol):
    """What the skeleton asks of a masking mode (`DropMode`, `ReplaceMode`, `SoftMode`).

    `name` names it; `check(encoder, decoder)` refuses a composition it cannot run; `parts(...)`
    names the modules the model registers at its top level; `plan_queries(plan, decoder_plan)`
    gives (B×Nq queried tokens or None = all in order, loss weight); `encode` and `decode` are
    the skeleton's "encode visible" and "decode queries" steps for one branch.
    """

    name: str

    def check(self, encoder: nn.Module, decoder: nn.Module) -> None: ...

    def parts(self, tokenizer: nn.Module, encoder: nn.Module, decoder: nn.Module) -> Parts: ...

    def plan_queries(self, plan: MaskPlan, decoder_plan: MaskPlan | None) -> tuple[Tensor | None, Tensor]: ...

    def encode(
        self, model: MaskedAutoencoder, tokens: Tokens, planned: BranchPlan, *, generator: torch.Generator | None,
        taps: tuple[int, ...],
    ) -> Encoded: ...

    def decode(
        self, model: MaskedAutoencoder, decoder: nn.Module, tokens: Tokens, planned: BranchPlan, encoded: Encoded
    ) -> Decoded: ...


def _decodes_queries(decoder: nn.Module) -> bool:
    """Whether `decoder` takes `MAEDecoder`'s call `decoder(latent, num_prefix=, keep=, query=, grid=,
    coords=, return_hidden=True) -> (B×Nv×P or None, B×Nq×P, hidden or None)`: an `MAEDecoder`, or
    a decoder declaring `decodes_queries = True` (`core.decoders.queries.QueryDecoder`, CAE's regressor)."""
    return isinstance(decoder, MAEDecoder) or bool(getattr(decoder, "decodes_queries", False))


def _query(plan: MaskPlan, decoder_plan: MaskPlan | None) -> tuple[Tensor, Tensor]:
    """(B×Nq queried tokens, B×Nq float loss weight): the plan's loss set (default: the hidden
    tokens), or the decoder's keep set (weight 1 where the queried token was hidden)."""
    if plan.loss is not None:
        if decoder_plan is not None:
            raise ValueError("the mask plan has a loss set and a decoder-side masking picks queries too; use one")
        return plan.loss, torch.ones_like(plan.loss, dtype=torch.float32)  # the decoder predicts the loss set only
    query = plan.hide if decoder_plan is None else decoder_plan.keep
    return query, torch.gather(plan.mask, 1, query)


@dataclass(frozen=True)
class DropMode:
    """MAE: the encoder sees the visible tokens only (see module doc)."""

    name: ClassVar[str] = "drop"

    def check(self, encoder: nn.Module, decoder: nn.Module) -> None:
        if not isinstance(encoder, TransformerEncoder):
            raise TypeError(
                f"mode 'drop' encodes the visible subset with positions and needs a TransformerEncoder, got "
                f"{type(encoder).__name__}; a backbone (x, tokens) that sees every token needs ReplaceMode()"
            )
        if not _decodes_queries(decoder):
            raise TypeError(
                f"mode 'drop' decodes queries with an MAEDecoder or a decoder that declares `decodes_queries = True` "
                f"and takes MAEDecoder's call (e.g. core.decoders.queries.QueryDecoder), got {type(decoder).__name__}"
            )

    def parts(self, tokenizer: nn.Module, encoder: nn.Module, decoder: nn.Module) -> Parts:
        return {}

    def plan_queries(self, plan: MaskPlan, decoder_plan: MaskPlan | None) -> tuple[Tensor | None, Tensor]:
        return _query(plan, decoder_plan)

    def encode(
        self, model: MaskedAutoencoder, tokens: Tokens, planned: BranchPlan, *, generator: torch.Generator | None,
        taps: tuple[int, ...],
    ) -> Encoded:
        """Visible tokens (B×Nv×D) through the encoder -> B×(P+Nv)×D."""
        keep = planned.plan.keep
        return model.run_encoder(gather_tokens(tokens.x, keep), tokens, keep, taps=taps)

    def decode(
        self, model: MaskedAutoencoder, decoder: nn.Module, tokens: Tokens, planned: BranchPlan, encoded: Encoded
    ) -> Decoded:
        """Latent + mask tokens at the queries -> B×Nq×P (and B×Nv×P at the visible tokens; a
        `QueryDecoder` makes none and materializes the queried tokens only)."""
        assert planned.query is not None  # drop mode always queries a subset
        pred_vis, pred, hidden = decoder(
            encoded.latent, num_prefix=encoded.num_prefix, keep=planned.plan.keep, query=planned.query,
            grid=tokens.grid, coords=tokens.coords, return_hidden=True,
            **({"valid": tokens.valid} if tokens.valid is not None else {}),  # padded sequences
        )
        return Decoded(pred=pred, pred_visible=pred_vis, hidden=hidden)


@dataclass(frozen=True)
class ReplaceMode:
    """The encoder sees every token, hidden ones replaced (see module doc).

    Args:
        replace_rate: share of hidden tokens whose input becomes another random token's input
            (GraphMAE: `int(replace_rate * Nm)` of them; `int((1 - replace_rate) * Nm)` get the
            [MASK] vector; a leftover from the two floors keeps its own input, as the reference).
        remask: zero the hidden rows of the decoder input (GraphMAE, for GNN decoders).
        project: put `encoder_to_decoder` (Linear, no bias) between encoder and decoder (GraphMAE);
            False passes the encoder output on as is (SimMIM's linear head reads it directly;
            the widths must then match).
        mask_token_std: the [MASK] vector's init: zeros (0, GraphMAE) or timm's `trunc_normal_`
            with this std (bounds ±2; SimMIM: 0.02).
    """

    replace_rate: float = 0.0
    remask: bool = True
    project: bool = True
    mask_token_std: float = 0.0
    name: ClassVar[str] = "replace"

    def __post_init__(self) -> None:
        if not 0.0 <= self.replace_rate < 1.0:
            raise ValueError(f"replace_rate must be in [0, 1), got {self.replace_rate}")
        if self.mask_token_std < 0:
            raise ValueError(f"mask_token_std must be >= 0, got {self.mask_token_std}")

    def check(self, encoder: nn.Module, decoder: nn.Module) -> None:
        if isinstance(decoder, MAEDecoder) or not hasattr(decoder, "in_dim"):
            raise TypeError(
                f"mode 'replace' decodes every token with a backbone (x, tokens) -> B×N×P that has `in_dim` "
                f"(e.g. TransformerBackbone or a GNN), got {type(decoder).__name__}"
            )
        if not isinstance(encoder, TransformerEncoder) and not hasattr(encoder, "out_dim"):
            raise TypeError(f"mode 'replace' needs a TransformerEncoder or a backbone with `out_dim`, got "
                            f"{type(encoder).__name__}")

    def parts(self, tokenizer: nn.Module, encoder: nn.Module, decoder: nn.Module) -> Parts:
        """The [MASK] vector (tokenizer width) and `encoder_to_decoder` (Linear, no bias; or Identity
        without `project`)."""
        width = encoder.dim if isinstance(encoder, TransformerEncoder) else encoder.out_dim
        token = torch.zeros(1, 1, tokenizer.dim)  # GraphMAE: zero init
        if self.mask_token_std > 0:
            nn.init.trunc_normal_(token, std=self.mask_token_std)  # timm's bounds ±2
        if not self.project and width != decoder.in_dim:
            raise ValueError(f"mode 'replace' with project=False needs the decoder's in_dim ({decoder.in_dim}) to "
                             f"equal the encoder's width ({width})")
        link: nn.Module = nn.Linear(width, decoder.in_dim, bias=False) if self.project else nn.Identity()
        return {"mask_token": nn.Parameter(token), "encoder_to_decoder": link}

    def plan_queries(self, plan: MaskPlan, decoder_plan: MaskPlan | None) -> tuple[Tensor | None, Tensor]:
        if decoder_plan is not None:
            raise ValueError("mode 'replace' decodes every token; a decoder-side masking does not apply")
        return None, plan.loss_mask  # every token in order; the loss counts the loss set (default: hidden)

    def replace_hidden(
        self, x: Tensor, plan: MaskPlan, mask_token: Tensor, *, seeds: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The encoder input: hidden tokens' inputs replaced.

        Args:
            x: B×N×D token inputs.
            plan: the mask plan; `plan.hide` is in random order, so its first
                `int((1 - r) * Nm)` tokens get the [MASK] vector and its last `int(r * Nm)`
                tokens get the inputs of distinct random tokens (any of the N, as the
                reference's `randperm(N)[:k]`).
            mask_token: 1×1×D the [MASK] vector.
            seeds: the branch's per-row seeds (the sources draw from `seeds + SECOND_STREAM_OFFSET`).
            generator: generator for the batched draw when no seeds are given.

        Returns:
            B×N×D.
        """
        b, n, d = x.shape
        nm = plan.hide.shape[1]
        n_noise = int(self.replace_rate * nm) if self.replace_rate > 0 else 0
        n_token = int((1 - self.replace_rate) * nm) if self.replace_rate > 0 else nm
        out = x
        if n_noise:
            rng = SampleRNG(b, seeds=offset_seeds(seeds, SECOND_STREAM_OFFSET), generator=generator, device=x.device)
            sources = torch.argsort(rng.rand(n), dim=1)[:, :n_noise]  # B×k distinct tokens
            noise_nodes = plan.hide[:, nm - n_noise :]  # B×k
            out = out.scatter(1, noise_nodes.unsqueeze(-1).expand(-1, -1, d), gather_tokens(x, sources))
        token_nodes = plan.hide[:, :n_token]  # B×Nt
        fill = mask_token.to(x.dtype).expand(b, n_token, d)  # zeroed input + [MASK]
        return out.scatter(1, token_nodes.unsqueeze(-1).expand(-1, -1, d), fill)

    def encode(
        self, model: MaskedAutoencoder, tokens: Tokens, planned: BranchPlan, *, generator: torch.Generator | None,
        taps: tuple[int, ...],
    ) -> Encoded:
        """Every token, hidden ones replaced, through the encoder -> B×(P+N)×D (backbone: B×N×H)."""
        x = self.replace_hidden(tokens.x, planned.plan, model.mask_token, seeds=planned.seeds, generator=generator)
        if planned.active is not None:  # samples a per-sample gate left unmasked are encoded whole
            x = torch.where(planned.active.view(-1, 1, 1), x, tokens.x)  # B×N×D
        return model.run_encoder(x, tokens, None, taps=taps)

    def decode(
        self, model: MaskedAutoencoder, decoder: nn.Module, tokens: Tokens, planned: BranchPlan, encoded: Encoded
    ) -> Decoded:
        """Project, re-mask and decode every token -> B×N×P."""
        rep = model.encoder_to_decoder(encoded.latent[:, encoded.num_prefix :])  # B×N×H'
        if self.remask:
            hidden = planned.plan.mask.bool()  # B×N
            if planned.active is not None:
                hidden = hidden & planned.active.unsqueeze(1)
            rep = rep.masked_fill(hidden.unsqueeze(-1), 0.0)
        return Decoded(pred=decoder(rep, tokens))



@dataclass
class SoftEncoded(Encoded):
    """`Encoded` of the soft mode, with the B×N×N token mix the encoder's input went through."""

    mix: Tensor | None = None


@dataclass(frozen=True)
class SoftMode:
    """ROPIM: every token encoded after a count-sketch mix, the loss in the complement (module doc).

    Nothing is hidden: the model's branches see their whole view (`BranchSpec(whole=True)`, every
    token kept; the masking strategy is never drawn) and the loss counts every token.
    The projector of sample i is drawn from its branch seed + `SECOND_STREAM_OFFSET` (or from
    per-sample generators seeded from `generator`), so resume and DDP stay exact. The decoder is a
    backbone `(x, tokens) -> B×N×P` reading the encoder output directly (ROPIM's linear head; its
    `in_dim` must equal the encoder's width). The target must be the tokenizer's own (pixels,
    optionally norm_pix): the mode puts its sketched part into the prediction.

    Args:
        ratio: ρ, the sketch ratio: d' = ceil(N·ρ) buckets and `P = ρ·S·Sᵀ` (ROPIM: 0.14).
    """

    ratio: float = 0.14
    name: ClassVar[str] = "soft"

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"sketch_ratio must be in (0, 1), got {self.ratio}")

    def check(self, encoder: nn.Module, decoder: nn.Module) -> None:
        if _decodes_queries(decoder) or not hasattr(decoder, "in_dim"):
            raise TypeError(
                f"mode 'soft' decodes every token with a backbone (x, tokens) -> B×N×P that has `in_dim` "
                f"(e.g. LinearHead), got {type(decoder).__name__}"
            )
        width = encoder.dim if isinstance(encoder, TransformerEncoder) else getattr(encoder, "out_dim", None)
        if width is None:
            raise TypeError(f"mode 'soft' needs a TransformerEncoder or a backbone with `out_dim`, got "
                            f"{type(encoder).__name__}")
        if width != decoder.in_dim:
            raise ValueError(f"mode 'soft' passes the encoder output to the decoder as is: the decoder's in_dim "
                             f"({decoder.in_dim}) must equal the encoder's width ({width})")

    def parts(self, tokenizer: nn.Module, encoder: nn.Module, decoder: nn.Module) -> Parts:
        return {}

    def plan_queries(self, plan: MaskPlan, decoder_plan: MaskPlan | None) -> tuple[Tensor | None, Tensor]:
        if decoder_plan is not None:
            raise ValueError("mode 'soft' decodes every token; a decoder-side masking does not apply")
        if plan.hide.shape[1]:
            raise ValueError(
                "mode 'soft' hides no token: its branches see their whole view (MaskedAutoencoder(branches="
                "[BranchSpec(whole=True)])), so that the plan (MAEOutput.mask, pictures) says nothing was hidden"
            )
        return None, torch.ones_like(plan.mask)  # every token in order, every token scored

    def projectors(
        self, batch_size: int, num_tokens: int, *, seeds: Tensor | None, generator: torch.Generator | None,
        device: torch.device,
    ) -> Tensor:
        """B×N×N count-sketch projectors of one branch (`core.masking.sketch.draw_projectors`)."""
        if sketch_size(num_tokens, self.ratio) >= num_tokens:
            raise ValueError(f"mode 'soft': sketch_ratio={self.ratio} on {num_tokens} tokens gives "
                             f"{sketch_size(num_tokens, self.ratio)} buckets, expected fewer than the tokens")
        return draw_projectors(batch_size, num_tokens, self.ratio, seeds=offset_seeds(seeds, SECOND_STREAM_OFFSET),
                               generator=generator, device=device)

    def encode(
        self, model: MaskedAutoencoder, tokens: Tokens, planned: BranchPlan, *, generator: torch.Generator | None,
        taps: tuple[int, ...],
    ) -> Encoded:
        """Every token, mixed by its sample's projector, through the encoder -> B×(P+N)×D."""
        if tokens.valid is not None:
            raise ValueError("mode 'soft' mixes every token with every token of its bucket; padded sequences "
                             "(Tokens.valid) are not supported")
        b, n, _ = tokens.x.shape
        mix = self.projectors(b, n, seeds=planned.seeds, generator=generator, device=tokens.x.device)  # B×N×N
        x = torch.einsum("bij,bjd->bid", mix.to(tokens.x.dtype), tokens.x)  # B×N×D, token i = Σ_j P_ij x_j
        encoded = model.run_encoder(x, tokens, None, taps=taps)
        return SoftEncoded(encoded.latent, encoded.num_prefix, encoded.taps, mix=mix)

    def decode(
        self, model: MaskedAutoencoder, decoder: nn.Module, tokens: Tokens, planned: BranchPlan, encoded: Encoded
    ) -> Decoded:
        """Decode every token, then `(I - P)·pred + P·target` -> B×N×P (module doc)."""
        if not isinstance(encoded, SoftEncoded) or encoded.mix is None:
            raise TypeError("mode 'soft' decodes what its own encode step returned (SoftEncoded with the mix)")
        if model.target is not None:
            raise ValueError(
                f"mode 'soft' scores the residual against the tokenizer's own targets; a "
                f"{type(model.target).__name__} target provider is not supported"
            )
        raw = decoder(encoded.latent[:, encoded.num_prefix :], tokens)  # B×N×P
        target = model.targets(tokens).detach().to(raw.dtype)  # B×N×P as the loss sees it
        mix = encoded.mix.to(raw.dtype)
        return Decoded(pred=raw - torch.einsum("bij,bjp->bip", mix, raw - target))  # (I - P)·raw + P·target
