"""One registry mechanism for everything chosen by name: models, maskings, losses, data sources.

A `Registry` maps names to objects (builders, classes, functions) plus free-form metadata (a
model's modality and summary, a data source's config class). Entries are added in one way,
`register(name, obj, **meta)`, usable as a decorator, next to the object's definition:

    LOSSES = Registry("loss")

    @LOSSES.register("sce")
    def scaled_cosine_error(pred, target, weight=None, gamma=3.0): ...

Two lazy forms: a registry made with `modules=(...)` (or given them later by `defer(...)`) imports
those modules (which register their entries) the first time it is read, so the registry's own
module imports none of them (the data sources of every modality; the model presets, which the
package `anymae` defers so that `import anymae` and `anymae --help` import no model code); a name whose object lives in a module with optional dependencies
registers with `register_lazy(name, module, **meta)`: it is listed, and looking it up imports the
module, which registers the object (or fails with a message naming the extra to install). Looking
up an unknown name raises `UnknownNameError` listing the known names and the closest one.

The model registry (timm's `create_model` / `list_models` idea) is the instance `MODELS` below.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from anymae.core.config import ConfigError

if TYPE_CHECKING:  # torch is imported by the registered modules, not by reading the registry
    from torch import nn

T = TypeVar("T")
_LISTED = 40  # an error message lists every known name up to this many, else only the close ones


class UnknownNameError(ConfigError, KeyError):
    """A name is not registered: a `ConfigError` (the CLI reports it) and a `KeyError` (a lookup)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


@dataclass
class Entry(Generic[T]):
    """One registered name: its object (None until a lazy module is imported) and its metadata.

    Metadata keys read as attributes: `MODELS.entry("mae_vit_base_patch16").modality`.
    """

    name: str
    obj: T | None = None
    module: str | None = None  # imported on first lookup when `obj` is None
    meta: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        meta = self.__dict__.get("meta", {})
        if key in meta:
            return meta[key]
        raise AttributeError(f"{self.__dict__.get('name')!r} has no field or metadata {key!r}; "
                             f"its metadata: {sorted(meta)}")


class Registry(Mapping[str, T]):
    """Names -> objects with metadata; a read-only mapping (`reg[name]`, `name in reg`, `list(reg)`).

    Args:
        kind: what is registered, for messages ("model", "masking", "data source").
        hint: appended to the unknown-name error (e.g. "`anymae info` lists all models").
        modules: modules that register entries, imported the first time the registry is read.
    """

    def __init__(self, kind: str, *, hint: str = "", modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, Entry[T]] = {}
        self._pending = list(modules)

    def defer(self, *modules: str) -> None:
        """Import `modules` (which register entries) the first time the registry is read, not now."""
        self._pending.extend(m for m in modules if m not in self._pending)

    def _load(self) -> None:
        """Import the registering modules not imported yet (each once, also when one reads back)."""
        while self._pending:
            importlib.import_module(self._pending.pop(0))

    @overload
    def register(self, name: str, obj: None = None, **meta: Any) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, obj: T, **meta: Any) -> T: ...

    def register(self, name: str, obj: T | None = None, **meta: Any) -> T | Callable[[T], T]:
        """Register `obj` under `name` with `meta`; without `obj`, a decorator that does so.

        Re-registering the same object is a no-op (a module imported twice); another object under
        a taken name is an error naming both.
        """
        if obj is None:
            return lambda target: self.register(name, target, **meta)
        old = self._entries.get(name)
        if old is not None and old.obj is not None and old.obj is not obj:
            raise ValueError(f"{self.kind} name {name!r} is already registered to {old.obj!r}")
        merged = {**(old.meta if old else {}), **meta}
        self._entries[name] = Entry(name, obj, old.module if old else None, merged)
        return obj

    def register_lazy(self, name: str, module: str, **meta: Any) -> None:
        """List `name` now; its object is registered by importing `module` on first lookup."""
        if name not in self._entries:
            self._entries[name] = Entry(name, None, module, dict(meta))

    def unregister(self, name: str) -> None:
        """Remove `name` (tests and plugins that register temporarily)."""
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry[T]:
        """The entry of `name`, its lazy module imported; `UnknownNameError` if not registered."""
        self._load()
        found = self._entries.get(name) if isinstance(name, str) else None
        if found is None:
            raise UnknownNameError(self._unknown(name))
        if found.obj is None and found.module is not None:
            importlib.import_module(found.module)  # registers the object (or names the missing extra)
            found = self._entries[name]
        if found.obj is None:
            raise UnknownNameError(f"{self.kind} {name!r} is listed but its module {found.module!r} did not "
                                   "register it")
        return found

    def get(self, name: str) -> T:  # type: ignore[override]  (no default: an unknown name is an error)
        """The object registered as `name`."""
        return self.entry(name).obj  # type: ignore[return-value]

    def names(self, pattern: str = "*", **meta: Any) -> list[str]:
        """Sorted names matching a shell-style pattern and every given metadata value."""
        self._load()
        return sorted(n for n, e in self._entries.items() if fnmatch.fnmatch(n, pattern)
                      and all(e.meta.get(k) == v for k, v in meta.items()))

    def entries(self) -> list[Entry[T]]:
        """Every entry in name order, as listed (lazy ones not imported)."""
        self._load()
        return [self._entries[n] for n in sorted(self._entries)]

    def _unknown(self, name: object) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        text = f"unknown {self.kind} {name!r}"
        text += f"; expected one of {', '.join(known)}" if len(known) <= _LISTED else ""
        text += f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        return text + (f" ({self.hint})" if self.hint else "")

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} names)"


MODELS: Registry[Callable[..., nn.Module]] = Registry("model", hint="`anymae info` lists all models")


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    modality: str,
    summary: str = "",
    small: dict[str, Any] | None = None,
) -> None:
    """Register a preset name with its builder (`builder(name=..., **overrides)`).

    `small` holds overrides that shrink the preset to the smallest input it accepts (smoke tests).
    """
    MODELS.register(name, builder, modality=modality, summary=summary, small=dict(small or {}))


def register_lazy(name: str, module: str, *, modality: str, summary: str = "") -> None:
    """Register a preset name whose builder lives in `module`, imported on first use."""
    MODELS.register_lazy(name, module, modality=modality, summary=summary, small={})


def list_models(pattern: str = "*", *, modality: str | None = None) -> list[str]:
    """Sorted registered model names matching a shell-style pattern (and modality)."""
    return MODELS.names(pattern, **({"modality": modality} if modality is not None else {}))


def get_entry(name: str) -> Entry[Callable[..., nn.Module]]:
    """A model's entry: `.obj` the builder, `.modality`, `.summary`, `.small`."""
    return MODELS.entry(name)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered preset, with keyword overrides of its config fields."""
    return MODELS.get(name)(name=name, **overrides)
