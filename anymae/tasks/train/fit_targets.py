"""Target providers fitted on the training data before training (see `tasks.train.prepare`).

A provider with state from a file or from data (a `fitted` flag, `load(path)`, `source_file`, and
for data `can_fit`, `fit(vectors, seed=...)` and `raw(tokens, inputs)`:
`core.targets.codebook.KMeansIds`, `core.targets.vq.VQTokenizerIds`) is prepared in this order:

1. a file the user gave (`provider.source_file`: `model.codebook=PATH`, `model.tokenizer_file=PATH`)
   is loaded; a provider that cannot fit (`can_fit` False) and has no file is an error naming the option;
2. else the run directory's `<name>.codebook.pt` (`<name>.tokenizer.pt` for a VQ tokenizer; written by
   an earlier start of the same run) is loaded, so a resumed run never refits;
3. else the provider is fitted on a bounded, seeded sample of the training data (the first
   `max_items` of a permutation drawn from the run's seed; each item's augmentation seeded by
   `SeededSamples`), its token vectors capped at `provider.max_vectors`, and the result is saved
   there (weights-only `.pt`, written atomically). Under torchrun every rank fits the same sample
   with the same seed (no process group exists yet at this point); DDP then broadcasts rank 0's
   buffers, the codebook among them, when it wraps the model.

Providers other than the model's `target` (e.g. inside a loss term) are found by walking the model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from anymae.core.targets import TargetProvider

log = logging.getLogger(__name__)

MAX_FIT_ITEMS = 2048  # most dataset items one fit reads
_BATCH = 32


def _fittable(model: nn.Module) -> list[tuple[str, Any]]:
    return [
        (name or "target", m) for name, m in model.named_modules()
        if isinstance(m, TargetProvider) and callable(getattr(m, "load", None)) and hasattr(m, "fitted")
    ]  # fmt: skip


def sample_vectors(model: nn.Module, provider: Any, dataset: Any, seed: int, max_items: int = MAX_FIT_ITEMS) -> Tensor:
    """M×D token vectors (`provider.raw`) of a seeded sample of `dataset`: at most `max_items` items,
    at most `provider.max_vectors` vectors (an evenly strided subset when more), deterministic in `seed`."""
    from anymae.datasets.seeding import SeededSamples

    n = len(dataset)
    if n == 0:
        raise ValueError("cannot fit a codebook on an empty dataset")
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(n, generator=gen)[: min(n, max_items)].tolist()
    seeded = SeededSamples(dataset, seed)
    chunks: list[Tensor] = []
    with torch.no_grad():
        for start in range(0, len(order), _BATCH):
            items = [seeded[i] for i in order[start : start + _BATCH]]
            x = seeded.collate(items)[0]
            raw = provider.raw(model.tokenizer(x), x)  # B×N×D
            chunks.append(raw.reshape(-1, raw.shape[-1]).float().cpu())
    vectors = torch.cat(chunks)  # M×D
    cap = int(provider.max_vectors)
    if vectors.shape[0] > cap:
        idx = torch.linspace(0, vectors.shape[0] - 1, cap).round().long()
        vectors = vectors[idx]
    log.info("fitting %s on %d token vectors from %d of %d items (seed %d)", type(provider).__name__,
             vectors.shape[0], len(order), n, seed)  # fmt: skip
    print(f"fit_targets: {type(provider).__name__} fitted on {vectors.shape[0]} token vectors from "
          f"{len(order)} of {n} items (seed {seed})")  # fmt: skip
    return vectors


def _save(provider: Any, path: Path) -> None:
    """Write `provider.fitted_state()` (what its `load` reads back) atomically as a weights-only `.pt`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per process (torchrun ranks)
    torch.save({k: v.detach().cpu().clone() for k, v in provider.fitted_state().items()}, tmp)
    os.replace(tmp, path)


def fit_targets(model: nn.Module, dataset: Any, run_dir: Path, seed: int, *, max_items: int = MAX_FIT_ITEMS) -> None:
    """Prepare every data-fitted provider of `model` (module doc)."""
    for name, provider in _fittable(model):
        if provider.fitted:
            continue
        user_file = getattr(provider, "source_file", None)
        if user_file:
            provider.load(user_file)
            continue
        if not getattr(provider, "can_fit", False):
            from anymae.core.config import ConfigError

            option = getattr(provider, "source_option", "the provider's file option")
            raise ConfigError(f"{option}: {type(provider).__name__} needs its weights from a file; give {option}=PATH")
        path = Path(run_dir) / f"{name}.{getattr(provider, 'fitted_file', 'codebook')}.pt"
        if path.is_file():
            provider.load(path)
            print(f"fit_targets: {name} codebook loaded from {path}")
            continue
        provider.fit(sample_vectors(model, provider, dataset, seed, max_items), seed=seed)
        _save(provider, path)





def fit_targets_on_batch(model: nn.Module, batch: Any, seed: int = 0) -> None:
    """Smoke tests and examples only: fit every data-fitted provider on the tokens of one batch (a
    codebook of K codes needs at least K token vectors in it), and let a file-backed provider without
    a file use its initial (random) weights. Real runs use `fit_targets`."""
    for _name, provider in _fittable(model):
        if provider.fitted:
            continue
        if getattr(provider, "can_fit", False):
            with torch.no_grad():
                raw = provider.raw(model.tokenizer(batch), batch)  # B×N×D
            provider.fit(raw.reshape(-1, raw.shape[-1]), seed=seed)
        else:
            provider.use_initial_weights()  # the random initial tokenizer stands in for a file

__all__ = ["MAX_FIT_ITEMS", "fit_targets", "fit_targets_on_batch", "sample_vectors"]
