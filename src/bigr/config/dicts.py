"""Dict round trip and overrides of frozen config dataclasses, for any config class.

Owns: `to_dict` / `from_dict` (JSON from a file is type-checked field by field, unknown keys
are an error, `validate()` runs when the class has one) and `apply_overrides`, the
`--set a.b=value` strings of the command line; `require_ranges` / `require_choice`, the
range and choice checks of a config's fields, one message naming the field.

Leaves to others: which config classes exist and their JSON envelope (`models.py`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any


def to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-able dict of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Inverse of `to_dict`; unknown keys are an error so typos never pass silently."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be an object, got {value!r}")
            value = from_dict(hint, value)
        else:
            value = _typed(name, hint, value)
        kwargs[name] = value
    config = cls(**kwargs)
    if hasattr(config, "validate"):
        config.validate()
    return config


def _typed(name: str, hint: Any, value: Any) -> Any:
    """`value` converted to `hint` (int, float, bool, str, tuple[int, ...], X | None), or a
    ValueError naming the field: JSON from a file is checked, never trusted."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _typed(name, inner, value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{name} must be a list, got {value!r}")
        return tuple(_typed(name, args[0], v) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return value
    return value


def _parse_value(text: str, current: Any) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if isinstance(current, bool) and isinstance(value, str):
        value = value.lower() in ("1", "true", "yes", "on")
    elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    elif isinstance(current, tuple) and isinstance(value, int):
        value = (value,)
    return value


def apply_overrides(config: Any, overrides: list[str]) -> Any:
    """Apply `a.b=value` strings (values parsed as JSON where possible) to a config."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        path, text = item.split("=", 1)
        config = _set_path(config, path.strip().split("."), text.strip())
    return config


def _set_path(config: Any, path: list[str], text: str) -> Any:
    names = {f.name for f in dataclasses.fields(config)}
    if path[0] not in names:
        raise ValueError(f"{type(config).__name__} has no field {path[0]!r}")
    current = getattr(config, path[0])
    if len(path) > 1:
        return dataclasses.replace(config, **{path[0]: _set_path(current, path[1:], text)})
    return dataclasses.replace(config, **{path[0]: _parse_value(text, current)})


def require_ranges(config: Any, rules: dict[str, str], prefix: str = "") -> None:
    """Range checks by field: "pos" (> 0), "nonneg" (>= 0), "prob" (in [0, 1)), "unit" (in
    [0, 1]); a field that is None is skipped; infinities and NaN fail every rule. One message
    naming the field (after `prefix`, e.g. "head." for a nested config) and the value."""
    for field, rule in rules.items():
        value, name = getattr(config, field), prefix + field
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(v):
                raise ValueError(f"{name} must be finite, got {value!r}")
            ok = {"pos": v > 0, "nonneg": v >= 0, "prob": 0 <= v < 1, "unit": 0 <= v <= 1}[rule]
            if not ok:
                what = {"pos": "> 0", "nonneg": ">= 0", "prob": "in [0, 1)", "unit": "in [0, 1]"}
                what = what[rule]
                raise ValueError(f"{name} must be {what}, got {value!r}")


def require_choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    """One message naming the field when its value is not one of `choices`."""
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
