"""The `bigr` command line: the only argparse in the package.

Each subcommand is a small function that parses nothing itself and calls into the library.
Bad input ends in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .commands.argtypes import device as device_arg

EXIT_USAGE = 2


class CLIError(Exception):
    """An error whose message is all the user needs to see."""


# -- convert -----------------------------------------------------------------------------------


def cmd_convert(args: argparse.Namespace) -> int:
    import json

    import torch

    from .config import BiGRConfig, get_preset
    from .config_dicts import apply_overrides
    from .model import BiGR, save_tokenizer
    from .official import (
        config_differences,
        convert_state_dict,
        infer_config,
        read_official_checkpoint,
    )
    from .tokenizer import BinaryAutoencoder

    want_bigr = args.kind == "bigr"
    overrides = args.set or []
    preset = None
    if args.preset:
        try:
            preset = get_preset(args.preset)
        except KeyError as err:
            raise CLIError(str(err.args[0])) from None
        if isinstance(preset, BiGRConfig) != want_bigr:
            raise CLIError(
                f"preset {args.preset!r} is not a {'BiGR' if want_bigr else 'tokenizer'} preset"
            )
        preset = apply_overrides(preset, overrides)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        args.dtype
    ]
    checkpoint = read_official_checkpoint(args.file, args.kind, args.key)
    # The configuration is read off the checkpoint; a preset only cross-checks it (and fills
    # in what the file cannot tell, such as the heads of a file without build arguments).
    inferred = infer_config(checkpoint, args.kind, overrides, preset)
    config = inferred.config
    if preset is not None:
        differences = config_differences(config, preset)
        if differences:
            listed = "; ".join(
                f"{name}: inferred {json.dumps(a)}, preset {json.dumps(b)}"
                for name, a, b in differences
            )
            raise CLIError(
                f"{Path(args.file).name} does not match preset {args.preset!r}"
                + (" (after --set)" if overrides else "")
                + f": {listed}"
            )
    origin = f"checked against preset {args.preset}" if preset else "inferred from the checkpoint"
    print(f"configuration ({origin}):")
    for line in inferred.lines():
        print(f"  {line}")
    converted, report = convert_state_dict(checkpoint.state, config, dtype=dtype)
    extra = {
        "source": Path(args.file).name,
        "converted_by": "bigr convert",
        "config_from": origin,
        "report": report.summary(),
    }
    with torch.device("meta"):
        model = BiGR(config) if want_bigr else BinaryAutoencoder(config)
    model.load_state_dict(converted, strict=True, assign=True)
    if want_bigr:
        out = model.save_pretrained(args.out, extra=extra)
    else:
        out = save_tokenizer(model, args.out, extra=extra)
    print(report.summary())
    if report.dead_dropped:
        print(
            f"dropped dead tensors: {', '.join(report.dead_dropped[:6])}"
            + (" ..." if len(report.dead_dropped) > 6 else "")
        )
    print(f"wrote {out}")
    return 0


# -- parity ------------------------------------------------------------------------------------


def cmd_parity(args: argparse.Namespace) -> int:
    from .official.parity import format_rows, run_parity

    path = Path(args.reference)
    if not path.is_file():
        raise CLIError(f"{path}: no such file")
    if not path.with_suffix(".pt").is_file():
        raise CLIError(f"{path.with_suffix('.pt')}: reference tensors not found next to the JSON")
    rows = run_parity(path)
    text = format_rows(rows)
    if args.failures_only:
        text = "\n".join(line for line in text.splitlines() if "FAIL" in line or "entries:" in line)
    print(text)
    return 0 if all(r.passed for r in rows) else 1


# -- presets -----------------------------------------------------------------------------------


def cmd_presets(args: argparse.Namespace) -> int:
    import torch

    from .config import PRESETS, config_kind
    from .model import build_model, count_parameters

    width = max(len(name) for name in PRESETS) + 2
    for name, config in PRESETS.items():
        with torch.device("meta"):
            n = count_parameters(build_model(config))
        print(f"{name:<{width}} {config_kind(config):<10} {n / 1e6:10.2f} M parameters")
    return 0


# -- demo --------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    result = run_demo(args.out, seed=args.seed, device=args.device)
    print(
        f"wrote {Path(result['out_dir']) / 'index.html'} in {result['total_seconds']:.0f} s "
        "(open it in a browser)"
    )
    return 0


# -- export ------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    import json

    import torch

    from .checkpoint import load_directory, save_directory

    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    config, state = load_directory(args.src)
    meta = json.loads((Path(args.src) / "config.json").read_text())
    state = {k: v.to(dtype[args.dtype]) if v.is_floating_point() else v for k, v in state.items()}
    extra = {**meta.get("extra", {}), "stored_dtype": args.dtype}
    out = save_directory(args.out, config, state, extra)
    size = (out / "model.safetensors").stat().st_size
    print(f"wrote {out} ({size / 1e6:.1f} MB, {args.dtype}; loading computes in float32)")
    return 0


# -- serve -------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import flask  # noqa: F401
    except ImportError:
        raise CLIError("bigr serve needs Flask: pip install 'bigr[serve]'") from None
    from .serve import Server, create_app, load_pairs

    models, tokenizers = args.model or [], args.tokenizer or []
    if len(tokenizers) > len(models):
        raise CLIError("more --tokenizer than --model arguments")
    specs = [(m, tokenizers[i] if i < len(tokenizers) else None) for i, m in enumerate(models)]
    app = create_app(Server(load_pairs(specs, args.device)))
    print(f"serving on http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    app.run(host=args.host, port=args.port, threaded=True)
    return 0


# -- bench -------------------------------------------------------------------------------------


def _bench_train_variants(args: argparse.Namespace) -> int:
    import json

    from .config import get_preset
    from .config_dicts import apply_overrides
    from .evaluation.bench_train import bench_train_variants

    config = get_preset(args.preset)
    changed = apply_overrides(config, args.set or [])
    overrides = {k: v for k, v in changed.__dict__.items() if getattr(config, k) != v}
    batch = args.batch or 8
    result = bench_train_variants(
        args.preset,
        batch=batch,
        iters=args.repeats or 3,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        device=args.device,
        overrides=overrides,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{args.preset} {overrides or ''}: batch {batch} on {args.device}, "
        f"{result['step_gflop']:.1f} GFLOP per step; "
        f"fp32 matmul {result['matmul_gflops']:.0f} GFLOP/s"
    )
    for name, r in result["variants"].items():
        print(
            f"{name:>13}: {r['seconds_per_step']:.3f} s/step ({r['speedup']:.2f}x), "
            f"{r['tokens_per_second']:.0f} tokens/s, {r['gflops']:.0f} GFLOP/s "
            f"({r['fraction_of_matmul']:.0%} of matmul), "
            f"first step {r['first_step_seconds']:.1f} s, "
            f"loss {r['loss_after']:.6f}"
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    import torch

    from .evaluation.bench import bench_sample
    from .evaluation.bench_train import bench_train

    if args.what == "train" and args.variants:
        return _bench_train_variants(args)
    if args.what == "train":
        args.batch = args.batch or 8
        result = bench_train(
            args.preset,
            batch=args.batch,
            iters=args.repeats or 3,
            device=args.device,
            precision="bf16" if args.dtype == "bfloat16" else "fp32",
        )
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        print(f"{args.preset}: batch {args.batch}, {args.dtype} on {args.device}")
        for name, r in result["train"].items():
            print(
                f"{name:>12}: {r['tokens_per_second']:.0f} tokens/s "
                f"({r['seconds_per_step']:.2f} s/step)"
            )
        head = result["head"]
        print(
            f"masked-only speedup: {result['speedup_masked_only']:.2f}x per step, "
            f"{head['speedup_masked_only']:.2f}x on the transcoder's forward + backward "
            f"({result['settings']['masked_fraction']:.0%} of tokens masked)"
        )
        tok = result["tokenize"]
        if "images_per_second" in tok:
            print(f"tokenize ({tok['tokenizer']}): {tok['images_per_second']:.2f} images/s")
        return 0
    args.batch = args.batch or 4
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    result = bench_sample(
        args.preset,
        batch=args.batch,
        steps=args.steps,
        head_steps=args.head_steps,
        guidance=args.guidance,
        paths=tuple(args.paths.split(",")),
        device=args.device,
        dtype=dtype,
        repeats=args.repeats or 1,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{args.preset}: batch {args.batch}, {args.steps} steps, {args.head_steps} head steps, "
        f"guidance {args.guidance}, {args.dtype} on {args.device}"
    )
    print(f"matmul: {result['matmul_gflops']:.0f} GFLOP/s")
    for name, r in result["paths"].items():
        print(
            f"{name:>14}: {r['seconds_per_image']:.2f} s/image, "
            f"{r['gflop_per_image']:.0f} GFLOP/image, "
            f"{r['achieved_gflops']:.0f} GFLOP/s ({100 * r['fraction_of_matmul']:.0f}% of matmul)"
        )
    for other in ("release", "official_work"):
        if f"speedup_vs_{other}" in result:
            print(f"default vs {other}: {result[f'speedup_vs_{other}']:.2f}x faster")
    return 0


# -- entry point -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bigr", description="BiGR: binary latent codes for image generation"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("convert", help="import an official BiGR (.pt) or B-AE (.th) checkpoint")
    p.add_argument("kind", choices=["bigr", "bae"])
    p.add_argument("file", help="official checkpoint file")
    p.add_argument(
        "--preset",
        help="optional cross-check: fail unless the configuration read off the checkpoint "
        "equals this preset (see `bigr presets`)",
    )
    p.add_argument(
        "--out", required=True, help="output directory (config.json + model.safetensors)"
    )
    p.add_argument("--key", default="ema", help="entry of a BiGR .pt file holding the weights")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="set a config field, e.g. heads=16 where the checkpoint cannot tell it",
    )
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("parity", help="recompute an official reference file and compare")
    p.add_argument("reference", help="a *_reference.json file (its .pt lies next to it)")
    p.add_argument("--failures-only", action="store_true", help="print only failing rows")
    p.set_defaults(func=cmd_parity)

    from .commands.evaluate import add_evaluation_commands
    from .commands.generate import add_generation_commands
    from .commands.train import add_tokenizer_training_command, add_training_commands

    add_generation_commands(sub)
    add_training_commands(sub)
    add_tokenizer_training_command(sub)
    add_evaluation_commands(sub)

    p = sub.add_parser("bench", help="benchmarks that print numbers")
    p.add_argument("what", choices=["sample", "train"])
    p.add_argument("--preset", default="bench")
    p.add_argument("--batch", type=int, default=None, help="default: 4 (sample), 8 (train)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--head-steps", type=int, default=100)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument(
        "--paths",
        default="default,release",
        help="comma list: default, release (the release's algorithm), official_work (bigr's "
        "loop doing the release's head work)",
    )
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed repeats, the best is kept; default: 1 (sample), 3 (train steps)",
    )
    p.add_argument(
        "--variants",
        help="train: time these step variants instead (comma list of eager-fp32, eager-bf16, "
        "compile-fp32, compile-bf16; the first is the baseline of the speedups)",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a preset field")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("serve", help="a local web page to generate and to edit with a brush")
    p.add_argument("--model", action="append", help="model directory (repeatable; default: demo)")
    p.add_argument("--tokenizer", action="append", help="tokenizer of the matching --model")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="the embedded Fashion-MNIST models at work (no download)")
    p.add_argument("--out", default="bigr-demo", help="output folder (default: bigr-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=device_arg, default="cpu")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("export", help="copy a model directory with weights stored in another dtype")
    p.add_argument("src", help="model or tokenizer directory")
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("presets", help="list the model presets")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("bigr: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bigr {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, CLIError) else 1


if __name__ == "__main__":
    sys.exit(main())
