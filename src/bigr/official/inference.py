"""Inference of a release configuration from a checkpoint: the bookkeeping shared by the BiGR
(`infer_bigr`) and B-AE (`infer_tokenizer`) inference.

Sizes come from the tensors' shapes, the rest from the build arguments stored beside them (the
release's `args` Namespace or a B-AE `hparams` dict); a contradiction between the two is an error,
and the `--set` flag needed is named for what neither shows. Each inferred value keeps its source
(`InferredConfig`), printed by `bigr convert` next to the value; `config_differences` names the
fields where an inferred config and a `--preset` differ.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..config import BiGRConfig, Config, to_dict
from .checkpoints import (
    ConversionError,
)

# The release's model builders (`--model`, stored as args["model"]) -> the preset holding the
# sizes each fixes (dim, layers, heads); "custom-tiny" names the reference data's tiny model
# (reference README §3), built from explicit arguments.
BUILDER_PRESETS = {
    "BiGR-L": "bigr-l-d24",
    "BiGR-XL": "bigr-xl-d24",
    "BiGR-XXL": "bigr-xxl-d24",
    "BiGR-L-512": "bigr-l-d32-512",
    "custom-tiny": "bigr-tiny",
}
# multiple_of values tried, in order, when the build arguments do not reproduce the FFN width
# (the release's 256 first); no ffn_dim_multiplier is searched for.
MULTIPLE_OF_CANDIDATES = (256, 128, 64, 32, 16, 8, 512, 1024)


@dataclass
class InferredConfig:
    """A configuration read off a checkpoint, with where each field's value came from."""

    config: Config
    sources: dict[str, str]  # dotted field name -> source

    def lines(self) -> list[str]:
        """One `field = value  (source)` line per field, values as JSON (as `--set` takes)."""
        flat = _flatten(to_dict(self.config))
        width = max(len(name) for name in flat)
        return [
            f"{name:<{width}} = {json.dumps(value)}  ({self.sources.get(name, 'default')})"
            for name, value in flat.items()
        ]


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def config_differences(a: Config, b: Config) -> list[tuple[str, Any, Any]]:
    """(dotted field, value in a, value in b) for every field where two configs differ."""
    if type(a) is not type(b):
        return [("kind", type(a).__name__, type(b).__name__)]
    fa, fb = _flatten(to_dict(a)), _flatten(to_dict(b))
    return [(name, fa[name], fb[name]) for name in fa if fa[name] != fb[name]]


def override_fields(overrides: list[str] | tuple[str, ...]) -> set[str]:
    return {item.split("=", 1)[0].strip() for item in overrides if "=" in item}


class Inference:
    """Bookkeeping of one inference: the tensors' shapes, the stored arguments, the values
    found so far and their sources."""

    def __init__(self, state: dict[str, Tensor], args: dict[str, Any], what: str) -> None:
        self.state, self.args, self.what = state, args, what
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def shape(self, key: str) -> tuple[int, ...]:
        if key not in self.state:
            raise ConversionError(
                f"the checkpoint has no {key}, which the configuration is read from "
                f"(is it a {self.what} checkpoint?)"
            )
        return tuple(self.state[key].shape)

    def put(self, name: str, value: Any, source: str) -> None:
        self.values[name], self.sources[name] = value, source

    def has(self, name: str) -> bool:
        return self.args.get(name) is not None

    def get(self, name: str, kind: type) -> Any:
        value = self.args[name]
        ok = {
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, int | float) and not isinstance(value, bool),
            bool: isinstance(value, bool) or value in (0, 1),
            str: isinstance(value, str),
        }[kind]
        if not ok:
            raise ConversionError(
                f"stored build argument {name}={value!r} is not a{'n' if kind is int else ''} "
                f"{kind.__name__}"
            )
        return kind(value)

    def check(self, arg: str, value: Any, what: str) -> None:
        """A stored argument that contradicts what the weights show is an error."""
        if self.has(arg):
            stored = self.get(arg, type(value))
            if stored != value:
                raise ConversionError(
                    f"the stored build arguments say {arg}={stored!r}, but the weights have "
                    f"{what} {value!r}"
                )

    def from_args(self, name: str, args: tuple[str, ...], kind: type, base: Any, src: str) -> Any:
        for arg in args:
            if self.has(arg):
                self.put(name, self.get(arg, kind), f"args {arg}")
                return self.values[name]
        self.put(name, base, src)
        return base


def count_indexed(state: dict[str, Tensor], prefix: str) -> int:
    """How many `prefix<i>.` entries there are (checked to be numbered 0..n-1)."""
    found = set()
    for key in state:
        if key.startswith(prefix):
            index = key[len(prefix) :].split(".", 1)[0]
            if index.isdigit():
                found.add(int(index))
    if found != set(range(len(found))):
        raise ConversionError(f"{prefix}<i> entries are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def kv_heads(rows: int, dim: int, heads: int) -> int | None:
    """Key/value heads giving `rows` fused q|k|v rows, or None if none does."""
    if heads <= 0 or dim % heads:
        return None
    head_dim = dim // heads
    if rows % head_dim or (rows // head_dim - heads) <= 0 or (rows // head_dim - heads) % 2:
        return None
    kv = (rows // head_dim - heads) // 2
    return kv if heads % kv == 0 else None


def with_ffn(config: BiGRConfig, multiple_of: int, multiplier: float | None) -> BiGRConfig:
    return dataclasses.replace(config, multiple_of=multiple_of, ffn_multiplier=multiplier)


def validated(config: Config) -> Config:
    try:
        config.validate()
    except ValueError as err:
        raise ConversionError(f"the inferred configuration is invalid: {err}") from None
    return config
