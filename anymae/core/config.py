"""Typed configs: plain dataclasses filled from YAML plus ``key.sub=value`` overrides, and back.

No registry, no file inheritance, no interpolation: a run uses the dataclass defaults, then the YAML
file, then the overrides. Every mistake raises ``ConfigError`` naming the dotted key, the value, what
was expected and where the value came from (file or override); a ``__post_init__`` check that
raises ``FieldError`` is blamed on its own key.

An override replaces what the file says in two ways beyond its own key (one info line on stderr
says what was dropped):

- ``S.source=NAME`` for a section ``S`` whose file entry has another ``source`` (``data``,
  ``test_data``, ``val_data``, ...): the file's keys of ``S`` that source ``NAME`` does not have
  belong to the old source and are dropped (the keys of a source come from the hook that the
  data-source registry installs with ``register_source_keys``).
- a field declared with ``metadata=alternatives("other")`` (``optim.blr`` / ``optim.lr``): setting it
  on the command line clears ``other`` set in the file; setting both on the command line is an error.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import os
import re
import sys
import types
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from anymae.core.io import atomic_write

T = TypeVar("T")
_PLAIN = (str, int, float, bool, type(None))
_UNIONS = (Union, types.UnionType)


class ConfigError(ValueError):
    """A config key, value or file is wrong; the message says which, and what was expected."""


class FieldError(ValueError):
    """One field's value is out of range: raised by ``__post_init__`` checks (``check_field``) and by
    value checks that know only the value (``field`` None, e.g. a mask ratio checked deep in a model).

    ``from_dict`` blames the field's own dotted key (not the last override of its section).
    """

    def __init__(self, field: str | None, value: Any, expected: str) -> None:
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"{field or 'value'}={value!r}: expected {expected}")


def check_field(cond: bool, field: str, value: Any, expected: str) -> None:
    """Raise ``FieldError(field, value, expected)`` unless ``cond`` (for ``__post_init__`` checks)."""
    if not cond:
        raise FieldError(field, value, expected)


def alternatives(*others: str) -> dict[str, Any]:
    """Field metadata: this field and the sibling fields ``others`` say the same thing two ways
    (``lr`` and ``blr``). An override of one clears the others set in the file; overriding two is
    an error. Use as ``blr: float = field(default=1.5e-4, metadata=alternatives("lr"))``."""
    return {"alternatives": others}


# source name -> the keys its config has (None: unknown source). Installed by the data-source
# registry (anymae.datasets.sources), which the core does not import.
_source_keys: list[Callable[[str], Collection[str] | None]] = []


def register_source_keys(keys_of: Callable[[str], Collection[str] | None]) -> None:
    """Install how ``S.source=NAME`` overrides learn the keys of source ``NAME`` (see the module doc)."""
    if keys_of not in _source_keys:
        _source_keys.append(keys_of)


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` / ``2E5`` as floats (YAML 1.1 wants ``1.0e-3``)."""


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` writing a list of scalars on one line: ``img_size: [224, 224]``."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
    r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789."))
_Dumper.add_representer(list, lambda d, data: d.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=all(isinstance(v, _PLAIN) for v in data)))


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _key(path: str, origins: Mapping[str, str] | None, *, below: bool = True) -> str:
    """``'a.b' (from override 'a.b=1')``: the origin of ``path``, of a key below it (if ``below``), or of
    a parent."""
    src = next((s for k, s in reversed((origins or {}).items())
                if k == path or (below and k.startswith(path + "."))), "")
    parent = path
    while not src and parent and origins:
        parent = parent[: max(parent.rfind("."), parent.rfind("["), 0)]  # a.b[1] -> a.b -> a -> ""
        src = origins.get(parent, "")
    return (f"'{path}'" if path else "(top level)") + (f" (from {src})" if src else "")


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in _UNIONS:
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join('...' if a is ... else _type_name(a) for a in args)}]"
    return getattr(tp, "__name__", repr(tp))


def _default(f: dataclasses.Field[Any]) -> Any:
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


def _convert(value: Any, tp: Any, path: str, origins: Mapping[str, str] | None, base: Any = None) -> Any:
    """``value`` checked against annotation ``tp`` and converted (int -> float, list -> tuple);
    a section's keys that ``value`` leaves out come from ``base`` when it is an instance."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        return from_dict(tp, value, where=path, origins=origins, base=base if isinstance(base, tp) else None)
    if origin in _UNIONS:
        arms = [a for a in args if a is not type(None)]
        if value is None and len(arms) < len(args):
            return None
        if len(arms) == 1:  # Optional[X]: X's own error is the precise one
            return _convert(value, arms[0], path, origins, base)
        for arm in arms:
            with contextlib.suppress(ConfigError):
                return _convert(value, arm, path, origins)
    elif origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
    elif origin in (list, tuple) and isinstance(value, (list, tuple)):
        if origin is list or (len(args) == 2 and args[1] is ...):
            items = [args[0] if args else Any] * len(value)
        else:
            items = list(args)
        if len(items) == len(value):
            out = [_convert(v, t, f"{path}[{i}]", origins) for i, (v, t) in enumerate(zip(value, items))]
            return out if origin is list else tuple(out)
    elif origin is dict and isinstance(value, Mapping):
        kt, vt = args or (Any, Any)
        return {_convert(k, kt, _join(path, k), origins): _convert(v, vt, _join(path, k), origins)
                for k, v in value.items()}
    elif tp is float and type(value) in (int, float):
        return float(value)
    elif origin is None and isinstance(value, tp) and (tp is bool or not isinstance(value, bool)):
        return value  # True is an int to Python, not to a config
    raise ConfigError(f"config key {_key(path, origins)}: expected {_type_name(tp)}, "
                      f"got {value!r} ({type(value).__name__})")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "",
              origins: Mapping[str, str] | None = None, base: T | None = None) -> T:
    """Build config dataclass ``cls`` (and nested ones) from plain ``data``, checking every key and value.

    Args:
        where: dotted path of ``data`` in the whole config ("" at the top), prefixed to error keys.
        origins: dotted key -> where it was set (``"override 'a.b=1'"``, ``"file 'x.yaml'"``).
        base: an instance giving the keys ``data`` leaves out; by default the field defaults, where
            a section's default instance (``default_factory=lambda: Model(depth=4)``) gives its keys.

    Raises:
        ConfigError: unknown key (lists the valid keys, suggests the closest), wrong type, value
            outside a ``Literal``, missing required key, or an error from ``__post_init__``.
    """
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints, kwargs, base = get_type_hints(cls), {}, copy.deepcopy(base)
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{_join(where, close[0])}'?" if close else "."
            level = f"under '{where}'" if where else "at the top level"
            raise ConfigError(f"unknown config key {_key(_join(where, key), origins)}{hint} "
                              f"Valid keys {level}: {', '.join(fields)}")
        sub_base = _default(fields[key]) if base is None else getattr(base, key)
        kwargs[key] = _convert(value, hints[key], _join(where, key), origins, sub_base)
    if base is not None:
        kwargs = {n: getattr(base, n) for n in fields} | kwargs
    missing = [_join(where, n) for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"missing required config key(s) {', '.join(map(repr, missing))} ({cls.__name__} "
                          f"has no default); set it in the YAML file or as an override {missing[0]}=...")
    try:
        return cls(**kwargs)
    except FieldError as e:
        if e.field not in fields:
            raise ConfigError(f"invalid config {_key(where, origins, below=False)} ({cls.__name__}): {e}") from e
        raise ConfigError(f"invalid config key {_key(_join(where, e.field), origins)} ({cls.__name__}): {e}") from e
    except (TypeError, ValueError) as e:  # not tied to one key: the section, as set by the file or a parent
        raise ConfigError(f"invalid config {_key(where, origins, below=False)} ({cls.__name__}): {e}") from e


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass or mapping, for YAML and ``torch.load(weights_only=True)``.

    Tuples become lists; a value that is not str / int / float / bool / None / list / dict (a numpy
    scalar, a Path) raises ``ConfigError`` naming its key. ``from_dict(type(c), to_dict(c)) == c``."""

    def plain(value: Any, path: str) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        if isinstance(value, Mapping):
            return {k: plain(v, _join(path, k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if type(value) in _PLAIN:
            return value
        raise ConfigError(f"config key '{path}' holds {value!r} ({type(value).__name__}), "
                          "not a plain value (str, int, float, bool, None, list or dict)")

    return plain(cfg, "")


def yaml_text(cfg: Any) -> str:
    """``cfg`` (config dataclass or mapping) as YAML text, keys in field order, lists of scalars on one line."""
    return yaml.dump(to_dict(cfg), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def dump_yaml(cfg: Any, path: str | os.PathLike[str]) -> None:
    """Write ``cfg`` (config dataclass or mapping) to ``path`` as YAML (``yaml_text``), atomically:
    text built first, temp file in the same directory, flush, fsync, rename; on failure ``path`` is
    untouched and no temp file remains."""
    text = yaml_text(cfg)
    with atomic_write(path, "w") as f:
        f.write(text)


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in YAML file ``path`` (``{}`` if empty; ``1e-3`` reads as a float); errors name
    the file, and the line and column of a YAML syntax error."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or e
        raise ConfigError(f"invalid YAML in config file '{path}'{at}: {problem}") from e
    if not isinstance(data, (dict, type(None))):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys, got {type(data).__name__}")
    return data or {}


def _override_value(text: str) -> Any:
    """The value of override ``text`` (``key=value``), read as YAML."""
    raw = text.partition("=")[2]
    try:
        return yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError as e:
        why = getattr(e, "problem", None) or e
        raise ConfigError(f"override {text!r}: {raw!r} is not a valid YAML value ({why})") from e


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``data`` with each ``key.sub=value`` set in order, creating missing sections.

    Values are read as YAML (``1e-3``, ``true``, ``null``, ``[224, 224]``); ``from_dict`` later checks
    that the keys exist. A malformed override raises ``ConfigError`` naming it."""
    out = copy.deepcopy(dict(data))
    for text in overrides:
        key, eq, _ = text.partition("=")
        keys = key.split(".")
        if not eq or not all(keys):
            raise ConfigError(f"malformed override {text!r}: expected key.sub=value, e.g. optim.lr=1e-3")
        value = _override_value(text)
        node = out
        for i, key in enumerate(keys[:-1]):
            if node.get(key) is None:
                node[key] = {}
            elif not isinstance(node[key], dict):
                raise ConfigError(f"override {text!r}: '{'.'.join(keys[:i + 1])}' holds {node[key]!r}, "
                                  "not a section with sub-keys")
            node = node[key]
        node[keys[-1]] = value
    return out


def _field_at(cls: type, keys: Sequence[str]) -> dataclasses.Field[Any] | None:
    """The dataclass field that dotted ``keys`` name inside ``cls`` (through nested and optional
    sections), or None."""
    found = None
    for key in keys:
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            return None
        found = next((f for f in dataclasses.fields(cls) if f.name == key), None)
        if found is None:
            return None
        tp = get_type_hints(cls)[key]
        arms = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in _UNIONS else [tp]
        cls = arms[0] if len(arms) == 1 else None  # type: ignore[assignment]
    return found


def _section(data: Any, keys: Sequence[str]) -> dict[str, Any] | None:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else None


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)  # stderr: --print-config keeps stdout pure YAML


def _drop_replaced(cls: type, data: dict[str, Any], path: Any, overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of file ``data`` without what the ``overrides`` replace (see the module doc): the old
    source's keys of a section whose ``source`` is overridden, and a field's file-set alternatives."""
    out = copy.deepcopy(data)
    given = {t.partition("=")[0] for t in overrides}
    for text in overrides:
        key = text.partition("=")[0]
        keys = key.split(".")
        if not all(keys):
            continue  # a malformed override: apply_overrides names it
        f = _field_at(cls, keys)
        others = f.metadata.get("alternatives", ()) if f is not None else ()
        for other_key in (".".join([*keys[:-1], other]) for other in others):
            if other_key in given:
                raise ConfigError(f"overrides '{key}' and '{other_key}' say the same thing two ways; give only one")
        parent = _section(out, keys[:-1])
        if parent is None:
            continue  # nothing in the file to replace
        if keys[-1] == "source" and len(keys) > 1:
            new = _override_value(text)
            known = [k for k in (f(new) for f in _source_keys) if k is not None] if isinstance(new, str) else []
            if known and parent.get("source") not in (None, new):
                stale = [k for k in parent if k != "source" and k not in known[0]]
                for k in stale:
                    del parent[k]
                if stale:
                    where = ".".join(keys[:-1])
                    _note(f"{key}={new} (override) replaces the source {parent['source']!r} of file '{path}': "
                          f"dropped its keys {', '.join(f'{where}.{k}' for k in stale)}, which {new} does not have")
            continue
        for other in others:
            if other in parent:
                _note(f"{key} (override) replaces {'.'.join([*keys[:-1], other])}={parent.pop(other)!r} of file "
                      f"'{path}'")
    return out


def load_config(cls: type[T], path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> T:
    """Defaults of ``cls``, then YAML file ``path`` (if any), then ``overrides``; errors name the
    file or the override that set the offending key. An override of ``S.source`` or of a field with
    ``alternatives`` drops what it replaces in the file (see the module doc)."""
    data = load_yaml(path) if path is not None else {}
    data = apply_overrides(_drop_replaced(cls, data, path, overrides), overrides)
    origins = {"": f"file '{path}'"} if path is not None else {}
    origins.update({t.partition("=")[0]: f"override {t!r}" for t in overrides})
    return from_dict(cls, data, origins=origins)


def _rows(cls: type, prefix: str, instance: Any) -> Iterator[tuple[str, str, str]]:
    hints = get_type_hints(cls)
    for f in (f for f in dataclasses.fields(cls) if f.init):
        key, tp = _join(prefix, f.name), hints[f.name]
        arms = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in _UNIONS else [tp]
        sub = arms[0] if len(arms) == 1 and dataclasses.is_dataclass(arms[0]) else None  # Sub | None
        default = _default(f) if instance is None else getattr(instance, f.name)
        if sub is not tp:  # a plain nested section has no line of its own, only its keys
            yield key, _type_name(tp), "(required)" if default is dataclasses.MISSING else f"= {default!r}"
        if sub is not None:
            yield from _rows(sub, key, default if isinstance(default, sub) else None)


def describe(cls: type) -> str:
    """Every dotted key of ``cls`` with its type and effective default, one per line (``--help``)."""
    rows = list(_rows(cls, "", None))
    kw, tw = (max((len(r[i]) for r in rows), default=0) for i in (0, 1))
    return "\n".join([f"{cls.__name__} keys:"] + [f"  {k:<{kw}}  {t:<{tw}}  {d}" for k, t, d in rows])
