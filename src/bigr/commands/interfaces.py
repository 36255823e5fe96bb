"""`bigr serve` and `bigr demo`: the browser page and the demo folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import CLIError, int_in
from .argtypes import device as device_arg
from .common import add_precision_argument


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import flask  # noqa: F401
    except ImportError:
        raise CLIError("bigr serve needs Flask: pip install 'bigr[serve]'") from None
    from ..serve import Server, create_app, load_pairs

    models, tokenizers = args.model or [], args.tokenizer or []
    if len(tokenizers) > len(models):
        raise CLIError("more --tokenizer than --model arguments")
    specs = [(m, tokenizers[i] if i < len(tokenizers) else None) for i, m in enumerate(models)]
    server = Server(load_pairs(specs, args.device), precision=args.inference_precision)
    app = create_app(server, allowed_hosts=tuple(args.allow_host or ()))
    print(f"serving on http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    app.run(host=args.host, port=args.port, threaded=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    result = run_demo(args.out, seed=args.seed, device=args.device)
    print(
        f"wrote {Path(result['out_dir']) / 'index.html'} in {result['total_seconds']:.0f} s "
        "(open it in a browser)"
    )
    return 0


# -- export ------------------------------------------------------------------------------------


def add_interface_commands(sub: argparse._SubParsersAction) -> None:
    from ..demo import SUMMARY

    p = sub.add_parser("serve", help="a local web page to generate and to edit with a brush")
    p.add_argument("--model", action="append", help="model directory (repeatable; default: demo)")
    p.add_argument("--tokenizer", action="append", help="tokenizer of the matching --model")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int_in(1, 65535), default=8765)
    p.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="also answer requests addressed to this host name (repeatable; localhost, "
        "127.0.0.1 and ::1 always are), e.g. the machine's name when serving with --host 0.0.0.0",
    )
    p.add_argument("--device", type=device_arg, default="cpu")
    add_precision_argument(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help=SUMMARY)
    p.add_argument("--out", default="bigr-demo", help="output folder (default: bigr-demo)")
    p.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    add_precision_argument(p)
    p.set_defaults(func=cmd_demo)
