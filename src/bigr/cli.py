"""The `bigr` command line: the top-level parser and the entry point.

Every command's subparser and handler live in one module of `commands/` (models: convert,
parity, export, presets; generate; train; evaluate; bench; interfaces: serve, demo),
and sampler flags are generated from `SamplerConfig`'s fields (`commands.common`). Handlers
call into the library; bad input ends in one line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .commands.argtypes import CLIError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bigr", description="BiGR: binary latent codes for image generation"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .commands.bench import add_bench_command
    from .commands.evaluate import add_evaluation_commands
    from .commands.generate import add_generation_commands
    from .commands.interfaces import add_interface_commands
    from .commands.models import add_conversion_commands, add_model_file_commands
    from .commands.train import add_tokenizer_training_command, add_training_commands

    add_conversion_commands(sub)
    add_generation_commands(sub)
    add_training_commands(sub)
    add_tokenizer_training_command(sub)
    add_evaluation_commands(sub)
    add_bench_command(sub)
    add_interface_commands(sub)
    add_model_file_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_handler(args.command, args.func, args)


def run_handler(
    command: str, handler: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """Run a command's handler: bad input (a `CLIError`, `ValueError`, `OSError`, `KeyError`)
    ends in one line on stderr and a non-zero exit, an interrupt in exit 130."""
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("bigr: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bigr {command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, CLIError) else 1


if __name__ == "__main__":
    sys.exit(main())
