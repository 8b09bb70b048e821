"""Schedules: a setting as a pure function of the optimizer step (easy -> hard ratios, stages).

A schedule maps `step` (optimizer steps done before the current one: 0 for the first batch) to a
float. Being pure, the value at step s is the same whether a model ran s steps or was built fresh
and told the step (`MaskedAutoencoder.after_step`), so a resumed run continues exactly.

Kinds (each a frozen dataclass, serializable with `to_dict` and read back with `parse_schedule`):

- `Constant(value)`;
- `Linear(start, end, steps, begin=0, every=1)`: `start` until `begin`, then a straight line to
  `end` at `begin + steps`, `end` after; `every` holds the value for blocks of `every` steps
  (an epoch-wise ramp: `every = steps_per_epoch`);
- `Cosine(start, end, steps, begin=0, every=1)`: the same with a half-cosine ramp;
- `Stages(boundaries, values)`: `values[i]` where i = the number of boundaries <= step.

In a config a schedule is a number (constant) or a mapping with `kind` and the fields, e.g.
`{kind: linear, start: 0.0, end: 0.5, steps: 1000}`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Union


def _check_steps(kind: str, steps: int, begin: int, every: int) -> None:
    if steps < 1 or begin < 0 or every < 1:
        raise ValueError(
            f"schedule {kind!r}: expected steps >= 1, begin >= 0, every >= 1, got steps={steps}, begin={begin}, "
            f"every={every}"
        )


def _progress(step: int, steps: int, begin: int, every: int) -> float:
    """Share of the ramp done at `step` (held in blocks of `every` steps), clamped to [0, 1]."""
    if step < 0:
        raise ValueError(f"a schedule is read at a step >= 0, got step={step}")
    held = (step // every) * every
    return min(max((held - begin) / steps, 0.0), 1.0)


@dataclass(frozen=True)
class Constant:
    """The same value at every step."""

    value: float
    kind: ClassVar[str] = "constant"

    def __call__(self, step: int) -> float:
        return float(self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Linear:
    """`start` -> `end` along a straight line over `steps` steps from `begin` (module doc)."""

    start: float
    end: float
    steps: int
    begin: int = 0
    every: int = 1
    kind: ClassVar[str] = "linear"

    def __post_init__(self) -> None:
        _check_steps(self.kind, self.steps, self.begin, self.every)

    def __call__(self, step: int) -> float:
        t = _progress(step, self.steps, self.begin, self.every)
        return float(self.start + (self.end - self.start) * t)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Cosine:
    """`start` -> `end` along a half cosine over `steps` steps from `begin` (module doc)."""

    start: float
    end: float
    steps: int
    begin: int = 0
    every: int = 1
    kind: ClassVar[str] = "cosine"

    def __post_init__(self) -> None:
        _check_steps(self.kind, self.steps, self.begin, self.every)

    def __call__(self, step: int) -> float:
        t = _progress(step, self.steps, self.begin, self.every)
        return float(self.end + (self.start - self.end) * 0.5 * (1 + math.cos(math.pi * t)))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Stages:
    """Piecewise constant: `values[i]` from `boundaries[i - 1]` (inclusive) to `boundaries[i]`."""

    boundaries: tuple[int, ...]
    values: tuple[float, ...]
    kind: ClassVar[str] = "stages"

    def __post_init__(self) -> None:
        object.__setattr__(self, "boundaries", tuple(int(b) for b in self.boundaries))
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        b = self.boundaries
        if len(self.values) != len(b) + 1 or any(x >= y for x, y in zip(b, b[1:])) or any(x < 0 for x in b):
            raise ValueError(
                f"schedule 'stages': expected increasing boundaries >= 0 and one more value than boundaries, got "
                f"boundaries={list(b)}, values={list(self.values)}"
            )

    def __call__(self, step: int) -> float:
        if step < 0:
            raise ValueError(f"a schedule is read at a step >= 0, got step={step}")
        return self.values[bisect.bisect_right(self.boundaries, step)]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "boundaries": list(self.boundaries), "values": list(self.values)}


Schedule = Union[Constant, Linear, Cosine, Stages]
SCHEDULES: dict[str, type] = {cls.kind: cls for cls in (Constant, Linear, Cosine, Stages)}


def parse_schedule(value: float | int | dict[str, Any] | Schedule, name: str = "schedule") -> Schedule:
    """A schedule from a config value: a number (constant), a mapping with `kind`, or a schedule.

    Raises:
        ValueError naming `name` and the expected form.
    """
    if isinstance(value, tuple(SCHEDULES.values())):
        return value  # type: ignore[return-value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Constant(float(value))
    if isinstance(value, dict):
        spec = dict(value)
        kind = spec.pop("kind", None)
        cls = SCHEDULES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ValueError(f"{name}: schedule kind {kind!r} is not one of {sorted(SCHEDULES)}")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(spec) - set(allowed))
        if unknown:
            raise ValueError(f"{name}: schedule {kind!r} has no field(s) {unknown}; fields: {allowed}")
        try:
            return cls(**spec)  # type: ignore[no-any-return]
        except TypeError as err:
            raise ValueError(f"{name}: schedule {kind!r} needs fields {allowed}: {err}") from None
    raise ValueError(f"{name}: expected a number or a mapping with 'kind' ({sorted(SCHEDULES)}), got {value!r}")
