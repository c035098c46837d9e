"""Config fields with their help and range, built from YAML mappings by one validator, and hashed stably.

`doc(...)` gives a dataclass field its one-line help and its bounds or choices; `build_dataclass`
builds any config dataclass from a mapping, checking every value's type and range and naming the
bad key with the closest known one; `config_hash` is the stable hash stage caching and run
manifests use. Profiles (harness.core.config) and task knobs (tasks.base) both go through them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import HarnessError, did_you_mean


@dataclass(frozen=True)
class Bounds:
    """The interval a numeric setting must lie in; each end closed (ge, le), open (gt, lt) or absent."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, value: float) -> str | None:
        """Returns "must be >= 1" (or the like) for a value outside the interval, None for one inside."""
        below = (self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
        above = (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt)
        return f"must be {self}" if below or above else None

    def __str__(self) -> str:
        """Returns the interval as messages write it: ">= 1", "> 0", "<= 5" or "in [0, 1)" (floats as 0, not 0.0)."""
        ge, gt, le, lt = (f"{v:g}" if isinstance(v, float) else v for v in (self.ge, self.gt, self.le, self.lt))
        low = f"[{ge}" if ge is not None else f"({gt}" if gt is not None else ""
        high = f"{le}]" if le is not None else f"{lt})" if lt is not None else ""
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f"{'>=' if low[0] == '[' else '>'} {low[1:]}"
        return f"{'<=' if high[-1] == ']' else '<'} {high[:-1]}"


def doc(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] = (),
) -> Any:
    """Returns a dataclass field carrying its help text and the values it allows (checked by `build_dataclass`).

    ge/gt/le/lt bound a number (each item of a list of numbers): >=, >, <=, <; `choices` lists a string's values.
    """
    metadata: dict[str, Any] = {"help": help}
    if (ge, gt, le, lt) != (None, None, None, None):
        metadata["bounds"] = Bounds(ge, gt, le, lt)
    if choices:
        metadata["choices"] = choices
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def build_dataclass(cls: type, values: Any, where: str) -> Any:
    """Returns `cls` built from a mapping, or raises HarnessError naming the bad key or value.

    `where` is the dotted path of the mapping ("stages.fc-rl"); "" for a profile's top level.

    Each value must have its field's type and lie in the bounds or choices its `doc(...)` gives; a
    class with a `problem()` method (values that do not fit together) is refused when it returns one.
    """
    if not isinstance(values, dict):
        raise HarnessError(f"{where or 'the profile'} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            hint = did_you_mean(str(key), fields)
            raise HarnessError(
                f"unknown key {key!r}{' in ' + where if where else ''} ({hint}known: {', '.join(fields)})"
            )
        inner = f"{where}.{key}" if where else str(key)
        kwargs[key] = _coerce(hints[key], value, inner)
        _check_allowed(fields[key], kwargs[key], inner)
    built = cls(**kwargs)
    problem = built.problem() if callable(getattr(built, "problem", None)) else None
    if problem:
        raise HarnessError(f"{where}: {problem}" if where else problem)
    return built


def _check_allowed(f: dataclasses.Field, value: Any, where: str) -> None:
    """Raises HarnessError for a value (or an item of a list) outside the field's bounds or choices."""
    bounds, choices = f.metadata.get("bounds"), f.metadata.get("choices")
    for item in value if isinstance(value, list) else [value]:
        problem = bounds.problem(item) if bounds is not None and item is not None else None
        if problem:
            raise HarnessError(f"{where} {problem}, got {item!r}")
        if choices and item not in choices:
            raise HarnessError(f"{where} must be one of {', '.join(choices)}, got {item!r}")


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else build_dataclass(hint, value, where)
    if isinstance(hint, types.UnionType):
        arms = [arm for arm in typing.get_args(hint) if arm is not type(None)]
        if value is None and len(arms) < len(typing.get_args(hint)):
            return None
        return _coerce(arms[0], value, where) if len(arms) == 1 else value
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise HarnessError(f"{where} must be a list, got {value!r}")
        (inner,) = typing.get_args(hint)[:1]
        return [_coerce(inner, v, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise HarnessError(f"{where} must be a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    wrong_bool = isinstance(value, bool) != (origin is bool)
    if origin in (int, float, str, bool) and (not isinstance(value, origin) or wrong_bool):
        raise HarnessError(f"{where} must be {origin.__name__}, got {value!r}")
    return value


def canonical_json(obj: Any) -> str:
    """Returns `obj` (dataclasses, dicts, lists, scalars) as sorted, compact JSON."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"))


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def config_hash(*parts: Any) -> str:
    """Returns a 16-hex-digit sha256 of the canonical JSON of `parts`."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:16]


def as_dict(obj: Any) -> Any:
    """Returns a dataclass tree as plain dicts and lists (for manifests)."""
    return _plain(obj)
