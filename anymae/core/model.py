"""`MaskedAutoencoder`: the one autoencoder skeleton every recipe composes.

    tokenize -> plan masks -> encode visible -> decode queries -> targets -> loss terms

Each step is a method with typed inputs and outputs (`core.skeleton.steps`); `forward` runs them.
A recipe chooses parts instead of subclassing:

- `mode`: `DropMode()` (MAE: the encoder sees the visible tokens) or `ReplaceMode(...)` (SimMIM,
  GraphMAE: the encoder sees every token, hidden ones replaced; the encoder may then be any
  backbone `(x, tokens) -> B×N×H`, e.g. a GNN);
- `extra_decoders`: each adds a *branch*, i.e. one more mask draw (branch k draws from
  `seeds + k · SECOND_STREAM_OFFSET`) through the shared encoder into its own decoder, with its
  own reconstruction term (Point-CMAE: one extra decoder, `decoder2`);
- `terms`: extra loss terms (`core.skeleton.terms`; Point-CMAE's `DecoderConsistency`);
- `decoder_masking`: a decoder-side strategy whose kept tokens are the ones the decoder predicts
  (VideoMAE V2's dual masking);
- `target_norm`, `loss` / `loss_params`: the target and the reconstruction loss;
- `target`: a target provider (`core.targets`: HOG, teacher features, ids, input features)
  instead of the tokenizer's pixels.

- `branches`: `BranchSpec`s (`core.skeleton.views`): which view of a multi-view batch (`Views`)
  each branch reads, which decoder it shares (DMJD: two masks, one decoder) or none (LUT's second
  view), whether it reconstructs, sees its whole view, or hands its encoding to another branch's
  decoder as `memory=` (CroCo). Masks may depend on earlier branches' plans (`MaskContext.plans`).

The loss is the weighted sum of the terms; `MAEOutput.parts` holds every term's value by name
("rec" for one branch, "rec1", "rec2", ... for several, then the extra terms' names).

Positions meet the encoder in one place, `encode_with_positions` (through `run_encoder`): the
tokenizer's positions are handed to the `TransformerEncoder`, which adds them once or at every
block (`pos_every_block`), for every branch, mode, `features()` and teacher.

Teachers (`core.skeleton.teacher`: a frozen encoder from a file, or an EMA copy of student parts) are
submodules under `teachers.<name>` (`add_teacher`), so checkpoints hold them; the engine calls
`after_step(step)` once after every optimizer step, which updates the EMA teachers and sets the
step the next mask plan reads (`MaskContext.step`: schedules such as HPM's easy -> hard ramp).
A model whose masking reads the step (`uses_step`) keeps it in the buffer `schedule_step`, so a
checkpoint holds it and a resumed run plans the same masks. Context-reading strategies also get
the tokens and per-token `scores` (`forward(scores=...)`, or a teacher's through `model`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn

from anymae.core.encoder import TransformerEncoder
from anymae.core.features import Features, PackedFeatures
from anymae.core.losses import TokenNorm, get_loss
from anymae.core.masking import MaskContext, MaskingStrategy, make_plan
from anymae.core.masking.scores import SAMPLE_GATE
from anymae.core.seeds import DECODER_MASK_OFFSET, branch_seeds, fold_seeds, offset_seeds
from anymae.core.skeleton.modes import DropMode, MaskingMode
from anymae.core.skeleton.positions import encode_with_positions
from anymae.core.skeleton.steps import Branch, BranchPlan, BranchSpec, Decoded, Encoded, MAEOutput, Pass
from anymae.core.skeleton.views import (
    Noise, nth_noise, reconstructed_views, resolve_branches, tokenize_views, whole_plan,
)
from anymae.core.skeleton.terms import LossTerm, reconstruction_terms, total_loss
from anymae.core.targets import TargetProvider
from anymae.core.tokens import Tokens

class MaskedAutoencoder(nn.Module):
    """The shared masked autoencoder, composed from a modality's parts and the core's (module doc).

    Args:
        tokenizer: the modality's tokenizer (see `core.tokens.Tokenizer`).
        encoder: the shared `TransformerEncoder`, or (replace mode) a backbone `(x, tokens) -> B×N×H`
            with `in_dim` / `out_dim`.
        decoder: the first branch's decoder: an `MAEDecoder` (drop mode) or a backbone
            `(x, tokens) -> B×N×P` with `in_dim` (replace mode).
        masking: the encoder-side masking strategy.
        mode: `DropMode()` (default) or `ReplaceMode(replace_rate, remask)`.
        extra_decoders: decoders of branches 2, 3, ... (registered as `decoder2`, `decoder3`, ...).
        terms: extra loss terms, after the reconstruction terms.
        reconstruction_weight: weight of every branch's reconstruction term (Point-CMAE: 1000).
        target_norm: per-token target normalization (norm_pix), or None for raw targets.
        loss: name of the reconstruction loss (`core.losses.LOSSES`).
        loss_params: keyword parameters of that loss (e.g. an exponent), plain values.
        decoder_masking: optional decoder-side strategy (VideoMAE V2, drop mode): its kept tokens
            are the ones the decoder predicts; the loss covers tokens hidden from the encoder
            among them.
        target: a target provider (`core.targets.TargetProvider`) replacing the tokenizer's
            targets (then `target_norm` must be None); the decoder head must output `target.dim`.
        config: plain values describing how this model was built (saved with checkpoints).
        branches: one `BranchSpec` per branch (view, decoder index, reconstruction, whole view,
            memory); None = one branch per decoder on view 0 (`core.skeleton.views`).
        lr_scale: factor on the engine's lr from `optim.blr` (DMJD: pred_ratio / mask_ratio).
    """

    def __init__(
        self,
        tokenizer: nn.Module,
        encoder: nn.Module,
        decoder: nn.Module,
        masking: MaskingStrategy,
        *,
        mode: MaskingMode | None = None,
        extra_decoders: Sequence[nn.Module] = (),
        terms: Sequence[LossTerm] = (),
        reconstruction_weight: float = 1.0,
        target_norm: TokenNorm | None = None,
        loss: str = "mse",
        loss_params: dict[str, Any] | None = None,
        decoder_masking: MaskingStrategy | None = None,
        target: TargetProvider | None = None,
        config: dict[str, Any] | None = None,
        branches: Sequence[BranchSpec] | None = None,
        lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.mode: MaskingMode = mode if mode is not None else DropMode()
        for dec in (decoder, *extra_decoders):
            self.mode.check(encoder, dec)
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.decoder = decoder
        for i, extra in enumerate(extra_decoders):
            self.add_module(f"decoder{i + 2}", extra)  # state-dict keys decoder2.*, decoder3.*, ...
        self.num_decoders = 1 + len(extra_decoders)
        self.branches = resolve_branches(branches, self.num_decoders)
        self.num_branches = len(self.branches)
        self.lr_scale = float(lr_scale)
        for name, part in self.mode.parts(tokenizer, encoder, decoder).items():
            setattr(self, name, part)  # top-level keys: mask_token, encoder_to_decoder.*, ...
        self.masking = masking
        self.decoder_masking = decoder_masking
        if target is not None and target_norm is not None:
            raise ValueError("a target provider replaces the pixel targets: target_norm must be None with it")
        self.target_norm = target_norm
        self.target = target
        self.loss_name = loss
        self.loss_params: dict[str, Any] = dict(loss_params or {})
        self.loss_fn: Callable[[Tensor, Tensor, Tensor | None], Tensor] = get_loss(loss, **self.loss_params)
        rec = [k for k, spec in enumerate(self.branches) if spec.reconstruct]
        all_terms = [*reconstruction_terms(self.loss_fn, rec, reconstruction_weight), *terms]
        names = [t.name for t in all_terms]
        if len(set(names)) != len(names):
            raise ValueError(f"loss term names must be unique, got {names}")
        self.terms = nn.ModuleList(all_terms)
        self.config: dict[str, Any] = dict(config or {})
        self.teachers = nn.ModuleDict()  # `core.skeleton.teacher` modules by name (state-dict keys teachers.<name>.*)
        self._step = 0  # optimizer steps done (after_step); a buffer when the masking reads it
        if any(getattr(m, "uses_step", False) for m in (masking, decoder_masking) if m is not None):
            self.register_buffer("schedule_step", torch.zeros((), dtype=torch.long))

    def add_teacher(self, name: str, teacher: nn.Module) -> None:
        """Own `teacher` (a `core.skeleton.teacher.Teacher`) as `teachers.<name>`: saved and resumed with the model."""
        if name in self.teachers:
            raise ValueError(f"the model already has a teacher named {name!r}; names: {sorted(self.teachers)}")
        self.teachers[name] = teacher

    def after_step(self, step: int) -> None:
        """The engine's one call after every optimizer step (`step` = optimizer steps done, from 1):
        every teacher updates itself from this model (an EMA teacher; a frozen one does nothing),
        and the next mask plan reads `step` (`MaskContext.step`)."""
        for teacher in self.teachers.values():
            teacher.after_step(self, step)
        self._step = int(step)
        if hasattr(self, "schedule_step"):
            self.schedule_step.fill_(int(step))

    @property
    def step(self) -> int:
        """Optimizer steps done, as the last `after_step` said (restored from a checkpoint when the
        masking reads it)."""
        return int(self.schedule_step) if hasattr(self, "schedule_step") else self._step

    @property
    def decoders(self) -> list[nn.Module]:
        """Every branch's decoder, in branch order (`decoder`, `decoder2`, ...)."""
        return [self.decoder, *(getattr(self, f"decoder{k + 1}") for k in range(1, self.num_decoders))]

    # ---- the one place positions meet the encoder -------------------------------------------

    def run_encoder(
        self, x: Tensor, tokens: Tokens, index: Tensor | None, *, taps: Sequence[int] = (), final_norm: bool = True
    ) -> Encoded:
        """Encode token inputs with their positions.

        Args:
            x: B×M×D token inputs without positions: the tokens at `index` (B×M), or all N in
                token order when `index` is None.
            tokens: the tokenized batch (layout for positions; a backbone reads what it needs).
            index: B×M token indices of `x`, or None.
            taps: encoder block indices whose outputs to keep (`Encoded.taps`).
            final_norm: apply the encoder's final norm.

        Returns:
            `Encoded` with B×(P+M)×D latent (a backbone: B×N×H, P = 0).
        """
        if not isinstance(self.encoder, TransformerEncoder):  # a backbone sees every token, no positions
            if index is not None or taps:
                raise ValueError(
                    f"a {type(self.encoder).__name__} backbone encodes every token (index must be None) and has "
                    f"no blocks to tap (return_layers / taps must be empty, got {tuple(taps)})"
                )
            return Encoded(self.encoder(x, tokens), 0)
        return encode_with_positions(self.tokenizer, self.encoder, x, tokens, index, taps=taps, final_norm=final_norm)

    # ---- the skeleton's steps ---------------------------------------------------------------

    def tokenize(self, x: Any) -> Tokens:
        """The modality batch -> Tokens with a reconstruction target."""
        tokens = self.tokenizer(x)
        if tokens.target is None:
            raise ValueError("the tokenizer produced no reconstruction target")
        return tokens

    def _packs(self) -> bool:
        """Whether the tokenizer packs several samples into one row (it has `segments`)."""
        return callable(getattr(self.tokenizer, "segments", None))

    def plan_masks(
        self,
        tokens: Tokens,
        *,
        seeds: Tensor | None = None,
        noise: Noise = None,
        generator: torch.Generator | None = None,
        decoder_noise: Noise = None,
        scores: Tensor | None = None,
        inputs: Any = None,
        cache: dict[str, Any] | None = None,
        views: Sequence[Tokens | None] | None = None,
        view_inputs: Sequence[Any] | None = None,
    ) -> list[BranchPlan]:
        """One `BranchPlan` per branch: the encoder's mask, the decoder's queries and loss weights.

        Branch k draws from `branch_seeds(seeds, k)`; its decoder-side mask from those seeds plus
        `DECODER_MASK_OFFSET`. Without seeds every draw comes from `generator` (or torch's global
        generator), branch by branch, encoder mask before decoder mask. Context-reading strategies
        see `MaskContext(tokens, self.step, scores, self, inputs, cache, branch=k, plans=[plans of
        branches 0..k-1])` (`cache`: the pass's shared dict, `Pass.cache`), with the tokens and
        inputs of the view branch k reads (`views` / `view_inputs`: every view's; default: `tokens`
        and `inputs` for every branch). A `BranchSpec(whole=True)` branch keeps every token.
        """
        b = tokens.x.shape[0]
        row_seeds = fold_seeds(seeds, b) if seeds is not None and self._packs() else seeds
        shared = {} if cache is None else cache
        out: list[BranchPlan] = []
        for k, spec in enumerate(self.branches):
            t = views[spec.view] if views is not None else tokens
            assert t is not None  # tokenize_views tokenizes every view a branch reads
            context = MaskContext(
                tokens=t, step=self.step, scores=scores, model=self, cache=shared, branch=k,
                inputs=view_inputs[spec.view] if view_inputs is not None else inputs, plans=[p.plan for p in out],
            )
            s = branch_seeds(row_seeds, k)
            gate_before = shared.get(SAMPLE_GATE)
            if spec.whole:
                plan = whole_plan(b, t.x.shape[1], t.x.device)
            else:
                plan = make_plan(
                    self.masking, t.grid, b, device=t.x.device, seeds=s, generator=generator,
                    noise=nth_noise(noise, k), coords=t.coords, context=context,
                )
            dec_plan = None
            if self.decoder_masking is not None and not spec.whole:
                dec_plan = make_plan(
                    self.decoder_masking, t.grid, b, device=t.x.device,
                    seeds=offset_seeds(s, DECODER_MASK_OFFSET), generator=generator, noise=nth_noise(decoder_noise, k),
                    coords=t.coords, context=context,
                )
            query, weight = self.mode.plan_queries(plan, dec_plan)
            active = shared.get(SAMPLE_GATE)
            active = None if active is gate_before else active  # this branch's per-sample gate, if any
            if active is not None:
                weight = weight * active.to(weight.dtype).unsqueeze(1)  # an unmasked sample scores nothing
            out.append(BranchPlan(plan, query, weight, s, view=spec.view, active=active))
        return out

    def encode(
        self, tokens: Tokens, planned: BranchPlan, *, generator: torch.Generator | None = None,
        taps: Sequence[int] = (),
    ) -> Encoded:
        """One branch's encoder pass (drop: the visible tokens; replace: all, hidden ones replaced)."""
        return self.mode.encode(self, tokens, planned, generator=generator, taps=tuple(taps))

    def decode(
        self, tokens: Tokens, planned: BranchPlan, encoded: Encoded, *, branch: int = 0, memory: Encoded | None = None
    ) -> Decoded:
        """One branch's predictions at its queries, by that branch's decoder (`BranchSpec.decoder`);
        `memory`: another branch's encoding, handed to the decoder as `memory=` (`BranchSpec.memory`)."""
        index = self.branches[branch].decoder
        if index is None:
            raise ValueError(f"branch {branch} has no decoder (BranchSpec(decoder=None))")
        decoder = self.decoders[index]
        if getattr(decoder, "taps", ()):  # a decoder that reads encoder layers (core.decoders.layers) gets them
            decoder = functools.partial(decoder, taps=encoded.taps)
        if memory is not None:  # cross-attention to another view's encoding (CroCo)
            decoder = functools.partial(decoder, memory=memory)
        return self.mode.decode(self, decoder, tokens, planned, encoded)

    def _decoder_taps(self) -> set[int]:
        """Encoder block indices the decoders read (`taps` of a `core.decoders.layers.LayerDecoder`)."""
        return {i for decoder in self.decoders for i in getattr(decoder, "taps", ())}

    def targets(self, tokens: Tokens, inputs: Any = None, cache: dict[str, Any] | None = None) -> Tensor:
        """B×N×P targets as the loss sees them: the provider's (`target`), else the tokenizer's
        (normalized per token with norm_pix). `inputs` / `cache`: the modality batch and the
        pass's shared dict, for providers that run a teacher."""
        if self.target is not None:
            return self.target(tokens, inputs, {} if cache is None else cache, self)
        assert tokens.target is not None
        return self.target_norm.normalize(tokens.target) if self.target_norm else tokens.target

    def loss_terms(self, state: Pass) -> tuple[Tensor, dict[str, Tensor]]:
        """(weighted total, {term name: detached value}) over the model's terms."""
        return total_loss(self.terms, state)

    def forward(
        self,
        x: Any,
        *,
        seeds: Tensor | None = None,
        noise: Noise = None,
        generator: torch.Generator | None = None,
        decoder_noise: Noise = None,
        scores: Tensor | None = None,
    ) -> MAEOutput:
        """Run the skeleton on a batch.

        Args:
            x: the modality batch (e.g. B×C×H×W images), or a `Views` of several (branch k reads
                view `branches[k].view`; the output's pred / target / mask / tokens are view 0's).
            seeds: B int64 per-sample seeds: each sample's masks then depend only on its seed
                (folded into one seed per row for a tokenizer that packs samples into a row).
            noise: B×N injected masking scores (small = visible) of the first branch, overriding
                the strategy; or a sequence with one (or None) per branch.
            generator: generator for the batched draws when no seeds are given.
            decoder_noise: B×N injected scores for the decoder-side strategy (same forms).
            scores: B×N per-token scores for score-driven strategies (`core.masking.scores`).
        """
        inputs, views = tokenize_views(x, self.branches, self.tokenize)
        tokens = views[0]
        assert tokens is not None
        cache: dict[str, Any] = {}  # shared by mask strategies, targets and terms for this pass
        planned = self.plan_masks(
            tokens, seeds=seeds, noise=noise, generator=generator, decoder_noise=decoder_noise, scores=scores,
            inputs=inputs[0], cache=cache, views=views, view_inputs=inputs,
        )
        taps = tuple(sorted({i for term in self.terms for i in term.taps} | self._decoder_taps()))
        encoded = [self.encode(views[p.view], p, generator=generator, taps=taps)  # type: ignore[arg-type]
                   for p in planned]  # every branch encoded first (branch order = the RNG order), then decoded
        branches = []
        for k, (p, spec) in enumerate(zip(planned, self.branches)):
            memory = None if spec.memory is None else encoded[spec.memory]  # another view's encoding (CroCo)
            decoded = None if spec.decoder is None else self.decode(
                views[p.view], p, encoded[k], branch=k, memory=memory)  # type: ignore[arg-type]
            branches.append(Branch(p, encoded[k], decoded))
        wanted = reconstructed_views(self.branches)  # targets: view 0's, and those of reconstructed views
        targets = [self.targets(t, inputs[v], cache if v == 0 else cache.setdefault(f"view{v}", {}))
                   if v in wanted and t is not None else None for v, t in enumerate(views)]
        state = Pass(tokens, targets[0], branches, inputs=inputs[0], model=self, cache=cache,  # type: ignore[arg-type]
                     view_tokens=views, view_inputs=inputs, view_targets=targets)
        loss, parts = self.loss_terms(state)
        first = branches[0]
        mask = first.plan.mask if first.planned.active is None else first.plan.mask * first.planned.active.unsqueeze(1)
        return MAEOutput(
            loss, first.predictions(), state.target, mask, first.loss_weight(), first.plan, tokens,
            parts=parts, plans=[br.plan for br in branches],
        )

    # ---- the downstream interface -----------------------------------------------------------

    def features(
        self, x: Any, *, return_layers: tuple[int, ...] = (), final_norm: bool = True, modality: str | None = None
    ) -> Features:
        """Encoder features on all tokens, no masking (downstream interface of every modality).

        A tokenizer that packs several samples into one row (it has `segments(tokens)`) gives
        `PackedFeatures`, which pool per sample. A multi-modal model gives joint features
        (`modality=None`) or one modality's modality-only pass (`core.multimodal.features`).
        """
        if modality is not None:
            from anymae.core.multimodal.features import modality_features  # that package imports this module

            return modality_features(self, x, modality, return_layers=return_layers, final_norm=final_norm)
        tokens = self.tokenizer(x)
        encoded = self.run_encoder(tokens.x, tokens, None, taps=return_layers, final_norm=final_norm)
        latent, p = encoded.latent, encoded.num_prefix  # B×(P+N)×D
        inter = [encoded.taps[i] for i in sorted(encoded.taps)]
        if self._packs():
            seg, num = self.tokenizer.segments(tokens)
            return PackedFeatures(
                tokens=latent[:, p:], prefix=latent[:, :p], intermediates=inter, segments=seg, num_segments=num
            )
        return Features(tokens=latent[:, p:], prefix=latent[:, :p], intermediates=inter, valid=tokens.valid)

    def reconstruct(self, out: MAEOutput, *, stats: Literal["own", "visible"] = "own") -> Any:
        """The reconstruction of one forward pass in the modality's data space.

        Tokens the loss did not score are the input; scored tokens are the prediction. For
        norm_pix models predictions are mapped back with per-token statistics taken from
        `stats`: "own" uses each hidden token's own mean and variance (what MAE's visualizations
        do; it reveals those two numbers of the answer), "visible" uses the average statistics of
        the sample's visible tokens (nothing from the hidden token is used). Raw targets: `stats`
        changes nothing. Only for the tokenizer's own targets (no `target` provider).
        """
        if self.target is not None:
            raise ValueError(
                f"this model predicts {type(self.target).__name__} targets, not the input: "
                "there is no reconstruction in the data space to show"
            )
        if stats not in ("own", "visible"):
            raise ValueError(f"stats={stats!r}: expected 'own' or 'visible'")
        raw = out.tokens.target  # B×N×P
        pred = out.pred
        if self.target_norm is not None:
            pred = self.target_norm.denormalize(pred, raw, out.mask, stats)
        for term in self.terms:  # multi-modal models: each modality's own norm on its span's columns
            norm, modality = getattr(term, "norm", None), getattr(term, "modality", None)
            if norm is None or modality not in {span.modality for span in out.tokens.spans or ()}:
                continue
            span = out.tokens.span(modality)
            a, b, p = span.start, span.end, span.target_dim
            pred = pred.clone()
            pred[:, a:b, :p] = norm.denormalize(pred[:, a:b, :p], raw[:, a:b, :p], out.mask[:, a:b], stats)
        scored = out.loss_weight.unsqueeze(-1)  # B×N×1
        return self.tokenizer.untokenize(raw * (1 - scored) + pred * scored, out.tokens)

    def no_weight_decay(self) -> set[str]:
        """Names of tokens and learned position tables (timm's convention)."""
        params = dict(self.named_parameters())
        names = {"encoder.cls_token", "encoder.reg_token", "mask_token"}
        names |= {f"decoder{'' if k == 0 else k + 1}.mask_token" for k in range(self.num_decoders)}
        names |= {n for n in params if "pos_embed" in n}
        return {n for n in names if n in params}
