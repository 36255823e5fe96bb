"""Argument types that range-check numbers at the command line (argparse reports the error)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


class CLIError(Exception):
    """An error whose message is all the user needs to see (exit status 2)."""


def int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def finite_float(
    low: float = -math.inf, high: float = math.inf, *, open_low: bool = False, open_high=False
):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be finite, got {text}")
        below = value < low or (open_low and value == low)
        if below or value > high or (open_high and value == high):
            sign = ">" if open_low else ">="
            left, right = "(" if open_low else "[", ")" if open_high else "]"
            bound = f"{sign} {low:g}" if high == math.inf else f"in {left}{low:g}, {high:g}{right}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


def comma_list(item: Callable[[str], object], *, choices: tuple[str, ...] = ()):
    """A non-empty comma list, each item parsed (and range-checked) by `item`, or one of
    `choices` when given; returns a tuple."""

    def parse(text: str) -> tuple:
        parts = [part.strip() for part in text.split(",")]
        if not text.strip() or any(not part for part in parts):
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma list")
        if choices:
            unknown = [part for part in parts if part not in choices]
            if unknown:
                known = ", ".join(choices)
                raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)} (known: {known})")
            return tuple(parts)
        values = []
        for part in parts:
            try:
                values.append(item(part))
            except argparse.ArgumentTypeError as err:
                raise argparse.ArgumentTypeError(f"{part}: {err}") from None
        return tuple(values)

    parse.__name__ = "comma list"
    return parse


def device(text: str) -> str:
    """A torch device that exists here: `cpu`, `cuda`, `cuda:N` (N < the GPU count), `mps`."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        message = f"{text!r} is not a device (cpu, cuda, cuda:N, mps)"
        raise argparse.ArgumentTypeError(message) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: no CUDA device on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise argparse.ArgumentTypeError(f"{text}: this machine has {count} CUDA devices")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text}: unsupported device type {dev.type!r}")
    return text
