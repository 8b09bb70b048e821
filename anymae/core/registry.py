"""A name -> builder registry (timm's `create_model` / `list_models` idea).

Modalities register preset names with the builder that makes them. A modality whose optional
dependencies are missing registers lazily: its names are listed, and creating one imports the
module, which fails with a message naming the extra to install.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn


@dataclass
class Entry:
    name: str
    modality: str
    builder: Callable[..., nn.Module] | None = None
    module: str | None = None  # lazily imported module that registers the builder
    summary: str = ""
    # overrides that shrink the preset to the smallest input it accepts (smoke tests, `info`)
    small: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, Entry] = {}


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    modality: str,
    summary: str = "",
    small: dict[str, Any] | None = None,
) -> None:
    """Register a preset name; re-registering the same builder is a no-op."""
    old = _REGISTRY.get(name)
    if old is not None and old.builder is not None and old.builder is not builder:
        raise ValueError(f"model name {name!r} is already registered by {old.builder}")
    _REGISTRY[name] = Entry(name, modality, builder, old.module if old else None, summary, dict(small or {}))


def register_lazy(name: str, module: str, *, modality: str, summary: str = "") -> None:
    """Register a name whose builder lives in `module`, imported on first use."""
    if name not in _REGISTRY:
        _REGISTRY[name] = Entry(name, modality, None, module, summary)


def list_models(pattern: str = "*", *, modality: str | None = None) -> list[str]:
    """Sorted registered names matching a shell-style pattern (and modality)."""
    return sorted(
        n for n, e in _REGISTRY.items() if fnmatch.fnmatch(n, pattern) and modality in (None, e.modality)
    )


def get_entry(name: str) -> Entry:
    entry = _REGISTRY.get(name)
    if entry is None:
        close = fnmatch.filter(_REGISTRY, f"*{name.split('_')[0]}*")[:8]
        hint = f"; similar: {', '.join(sorted(close))}" if close else ""
        raise KeyError(f"unknown model {name!r}{hint}. `anymae info` lists all models.")
    if entry.builder is None and entry.module is not None:
        importlib.import_module(entry.module)  # registers the builder (or names the missing extra)
        entry = _REGISTRY[name]
    if entry.builder is None:
        raise KeyError(f"model {name!r} has no builder")
    return entry


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered preset, with keyword overrides of its config fields."""
    return get_entry(name).builder(name=name, **overrides)
