"""The `bigr` command line: the top-level parser and the entry point.

Every command's subparser and handler live in one module of `commands/` (models: convert,
parity, export, presets; generate; train; evaluate; bench; interfaces: serve, demo),
and sampler flags are generated from `SamplerConfig`'s fields (`commands.common`). Handlers
call into the library; bad input ends in one line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable

from .commands.argtypes import CLIError

EXIT_USAGE = 2


class HelpFormatter(argparse.HelpFormatter):
    """Each flag's default at the end of its help, unless there is none to show or the help
    already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS, [])
        if shown and action.option_strings and "default" not in text and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bigr")
    except PackageNotFoundError:  # run from a source tree without installing
        from . import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="bigr", description="BiGR: binary latent codes for image generation")
    parser.add_argument("--version", action="version", version=f"bigr {_version()}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )

    from .commands.bench import add_bench_command
    from .commands.evaluate import add_evaluation_commands
    from .commands.generate import add_generation_commands
    from .commands.interfaces import add_interface_commands
    from .commands.models import add_conversion_commands, add_model_file_commands
    from .commands.plan import add_plan_command
    from .commands.train import add_tokenizer_training_command, add_training_commands

    add_conversion_commands(sub)
    add_generation_commands(sub)
    add_training_commands(sub)
    add_tokenizer_training_command(sub)
    add_evaluation_commands(sub)
    add_bench_command(sub)
    add_plan_command(sub)
    add_interface_commands(sub)
    add_model_file_commands(sub)
    from .commands.help_texts import fill_help

    for name, command in sub.choices.items():
        fill_help(name, command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_handler(args.command, args.func, args)


def run_handler(
    command: str, handler: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """Run a command's handler, at its `--precision` when it samples (`bigr.precision`): bad
    input (a `CLIError`, `ValueError`, `OSError`, `KeyError`) ends in one line on stderr and a
    non-zero exit, an interrupt in exit 130."""
    from .precision import inference_precision

    device = getattr(args, "device", None) or "cpu"
    precision = getattr(args, "inference_precision", None)  # sampling commands only
    try:
        with inference_precision(precision, device) if precision else contextlib.nullcontext():
            return handler(args)
    except KeyboardInterrupt:
        print("bigr: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError, KeyError, MemoryError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bigr {command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, CLIError) else 1
    except RuntimeError as err:  # the allocator's own words, on the CPU or a GPU
        text = str(err)
        if "out of memory" not in text.lower() and "can't allocate memory" not in text:
            raise
        first = text.strip().splitlines()[0][:200]
        print(
            f"bigr {command}: error: out of memory ({first}); lower --batch-size or --num",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
