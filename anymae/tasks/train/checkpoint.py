"""Checkpoints: atomic saves of plain values, safe loads, and key-checked state-dict loading.

A checkpoint is a dict of tensors and plain values only (dict / list / tuple / str / int /
float / bool / None), so ``torch.load(weights_only=True)`` reads it and no pickled object ties
it to this code. The training engine writes ``{"model", "optimizer", "step", "epoch", "config",
...}`` to a rolling ``last.pt`` (and optionally ``step_XXXXXX.pt``).

Every floating-point tensor of a checkpoint must be finite: ``check_finite`` runs on every save and
every load, so no command writes or accepts NaN / Inf weights (a diverged run, a run whose steps
were all skipped) without an error naming the file and the keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymae.core.io import atomic_write

LAST = "last.pt"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
_PLAIN = (str, int, float, bool, type(None))


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read or loaded; the message names the file or keys."""


class NonFiniteWeightsError(CheckpointError):
    """A checkpoint holds NaN / Inf values; the message names the file and the keys."""


_LISTED_KEYS = 5  # keys named in a non-finite error


def _tensors(value: Any, path: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor inside nested dicts / lists / tuples, with its key path (``model.w``, ``a[2]``)."""
    if isinstance(value, torch.Tensor):
        return [(path, value)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _tensors(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [t for i, v in enumerate(value) for t in _tensors(v, f"{path}[{i}]")]
    return []


def check_finite(state: Any, source: str) -> None:
    """Raise ``NonFiniteWeightsError`` unless every floating-point tensor in ``state`` is finite.

    Args:
        state: a checkpoint (nested dicts / lists of tensors and plain values) or a state dict.
        source: what ``state`` is, for the message (``"checkpoint 'runs/x/last.pt'"``).
    """
    bad = []
    for key, tensor in _tensors(state):
        if (tensor.is_floating_point() or tensor.is_complex()) and tensor.numel():
            count = int((~torch.isfinite(tensor)).sum())
            if count:
                bad.append(f"{key} ({count} of {tensor.numel()})")
    if bad:
        more = f" and {len(bad) - _LISTED_KEYS} more" if len(bad) > _LISTED_KEYS else ""
        raise NonFiniteWeightsError(
            f"{source} holds NaN/Inf values in {len(bad)} tensor(s): {', '.join(bad[:_LISTED_KEYS])}{more}; "
            "the weights are unusable (the run diverged): train again with a lower lr or clip_grad, "
            "or use an earlier checkpoint"
        )


def step_filename(step: int) -> str:
    """``step_000123.pt`` for step 123."""
    return f"step_{step:06d}.pt"


def _check_plain(value: Any, path: str) -> None:
    """Raise TypeError naming the key path of the first value that is not a tensor or plain."""
    if isinstance(value, torch.Tensor) or type(value) in _PLAIN:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise TypeError(f"checkpoint key {path or '(top level)'} has a key {key!r} that is not str/int")
            _check_plain(item, f"{path}.{key}" if path else str(key))
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{path}[{i}]")
        return
    raise TypeError(
        f"checkpoint key '{path}' holds a {type(value).__name__} ({value!r:.80}); only tensors and "
        "plain values (dict, list, tuple, str, int, float, bool, None) may be saved"
    )


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: temp file in the same directory, fsync, rename.

    On any failure ``path`` keeps its previous content and no temp file is left behind.

    Raises:
        TypeError: a value is not a tensor or plain value (names its key path, e.g.
            ``optimizer.state.0.step``); nothing is written.
        NonFiniteWeightsError: a tensor holds NaN / Inf (``check_finite``); nothing is written.
    """
    _check_plain(dict(state), "")
    path = Path(path)
    check_finite(state, f"the checkpoint to be written to '{path}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        torch.save(dict(state), f)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True, map_location="cpu")``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is empty, truncated / corrupt, holds pickled objects, or is not a dict.
        NonFiniteWeightsError: a tensor holds NaN / Inf (``check_finite``).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' is not a file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint '{path}' is empty (0 bytes): the write that made it did not finish")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError / UnpicklingError / EOFError / ...
        why = next(iter(str(e).splitlines()), "")[:200]
        raise CheckpointError(
            f"cannot read checkpoint '{path}' ({size} bytes): the file is truncated, "
            f"corrupt or holds non-plain objects ({type(e).__name__}: {why})"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(state).__name__}, expected a dict")
    check_finite(state, f"checkpoint '{path}'")
    return state


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """``run_dir/last.pt`` if present, else the ``step_XXXXXX.pt`` with the highest step, else None."""
    run_dir = Path(run_dir)
    if (run_dir / LAST).is_file():
        return run_dir / LAST
    steps = [(int(m.group(1)), p) for p in run_dir.glob("step_*.pt") if (m := _STEP_FILE.match(p.name))]
    return max(steps)[1] if steps else None


@dataclass
class KeyReport:
    """How a state dict's keys compare with a module's.

    Attributes:
        missing: module keys the state dict lacks.
        unexpected: state-dict keys the module lacks.
        mismatched: ``(key, checkpoint shape, module shape)`` for keys whose shapes differ.
        ignored: keys skipped by the caller's ``ignore`` filter.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        """One line per problem class, each listing the keys (with shapes for mismatches)."""
        lines = []
        if self.missing:
            lines.append(f"missing keys ({len(self.missing)}): {', '.join(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected keys ({len(self.unexpected)}): {', '.join(self.unexpected)}")
        if self.mismatched:
            shapes = ", ".join(f"{k} (checkpoint {list(a)} vs model {list(b)})" for k, a, b in self.mismatched)
            lines.append(f"shape mismatches ({len(self.mismatched)}): {shapes}")
        return "\n".join(lines)


def compare_keys(
    module: nn.Module, state_dict: Mapping[str, Any], *, ignore: Callable[[str], bool] | None = None
) -> KeyReport:
    """Compare ``state_dict`` with ``module.state_dict()``; keys where ``ignore(key)`` are skipped."""
    ignore = ignore or (lambda _key: False)
    own = module.state_dict()
    report = KeyReport()
    for key in sorted(set(own) | set(state_dict)):
        if ignore(key):
            report.ignored.append(key)
        elif key not in state_dict:
            report.missing.append(key)
        elif key not in own:
            report.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(state_dict[key].shape):
            report.mismatched.append((key, tuple(state_dict[key].shape), tuple(own[key].shape)))
    return report


def load_state_dict_checked(
    module: nn.Module,
    state_dict: Mapping[str, Any],
    *,
    ignore: Callable[[str], bool] | None = None,
    strict: bool = True,
) -> KeyReport:
    """Load ``state_dict`` into ``module``, refusing silent mismatches.

    Args:
        module: the target module.
        state_dict: name -> tensor.
        ignore: keys for which it returns True are neither loaded nor reported as problems
            (e.g. ``lambda k: k.startswith("decoder.")`` to load an encoder from a pretrain ckpt).
        strict: raise on any missing / unexpected / shape-mismatched key; with False the
            matching keys are loaded and the problems are only returned.

    Returns:
        The ``KeyReport``.

    Raises:
        CheckpointError: ``strict`` and the keys do not match; lists every key by name.
    """
    report = compare_keys(module, state_dict, ignore=ignore)
    if strict and not report.ok:
        raise CheckpointError(f"state dict does not match {type(module).__name__}:\n{report.describe()}")
    bad = set(report.unexpected) | {k for k, _, _ in report.mismatched} | set(report.ignored)
    module.load_state_dict({k: v for k, v in state_dict.items() if k not in bad}, strict=False)
    return report
