"""`bigr plan`: the memory a training configuration needs per GPU (see `bigr.plan`)."""

from __future__ import annotations

import argparse

from .argtypes import finite_float, int_in


def cmd_plan(args: argparse.Namespace) -> int:
    from ..config import BiGRConfig, apply_overrides, get_preset
    from ..plan import GIB, plan, table

    names = args.preset or []
    if not names:
        raise ValueError("name at least one --preset (see `bigr presets`)")
    for name in names:
        config = apply_overrides(get_preset(name), args.set or [])
        if not isinstance(config, BiGRConfig):
            raise ValueError(f"preset {name!r} is not a BiGR generator preset")
        print(table(name, plan(config), args.gpus, args.batch_size, int(args.memory * GIB)))
    return 0


def add_plan_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="memory per GPU of a training configuration: fixed part, activations per sample "
        "(measured on a copy cut to two blocks), the largest batch that fits",
    )
    p.add_argument("--preset", action="append", help="generator preset (repeatable)")
    p.add_argument("--gpus", type=int_in(1, 1_000_000), default=8, help="GPUs the run uses")
    p.add_argument(
        "--batch-size", type=int_in(1, 100_000_000), default=256, help="global batch size"
    )
    p.add_argument(
        "--memory", type=finite_float(0, open_low=True), default=80.0, help="GiB per GPU"
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a preset field")
    p.set_defaults(func=cmd_plan)
