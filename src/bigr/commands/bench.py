"""`bigr bench`: the sampling and training benchmarks with their printed summaries."""

from __future__ import annotations

import argparse

from .argtypes import device as device_arg
from .argtypes import finite_float, int_in


def add_bench_command(sub: argparse._SubParsersAction) -> None:
    """`bigr bench sample|train`."""
    p = sub.add_parser("bench", help="benchmarks that print numbers")
    p.add_argument("what", choices=["sample", "train"])
    p.add_argument("--preset", default="bench")
    p.add_argument(
        "--batch", type=int_in(1, 4096), default=None, help="default: 4 (sample), 8 (train)"
    )
    p.add_argument("--steps", type=int_in(1, 1000), default=20)
    p.add_argument("--head-steps", type=int_in(1, 1000), default=100)
    p.add_argument("--guidance", type=finite_float(0, 1000), default=3.0)
    p.add_argument(
        "--paths",
        default="default,release",
        help="comma list: default, release (the release's algorithm), head_all (bigr's "
        "loop doing the release's head work), recipe-NAME (bigr's loop at a named recipe of "
        "--recipes-from, e.g. recipe-fast)",
    )
    p.add_argument("--device", type=device_arg, default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument(
        "--repeats",
        type=int_in(1, 1000),
        default=None,
        help="timed repeats, the best is kept; default: 1 (sample), 3 (train steps)",
    )
    p.add_argument(
        "--variants",
        help="train: time these step variants instead, the first being the baseline of the "
        "speedups: [PATH-]MODE-PRECISION with PATH bigr (default; packed codes, head on masked "
        "tokens), release (B-AE encodes every batch, head on every token) or release_prepared "
        "(one byte per bit on disk, head on every token), MODE eager|compile, PRECISION "
        "fp32|bf16; e.g. release-compile-fp32,eager-fp32,compile-fp32",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="sample: torch.compile the backbone on every path (compilation not timed)",
    )
    p.add_argument(
        "--compile-mode",
        choices=["default", "reduce-overhead", "max-autotune"],
        default="default",
        help="sample: torch.compile's mode with --compile (reduce-overhead: CUDA graphs)",
    )
    p.add_argument(
        "--recipes-from",
        default="bigr:fashion",
        help="sample: the model whose named recipes `--paths recipe-NAME` time",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a preset field")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_bench)


def _bench_train_variants(args: argparse.Namespace) -> int:
    import json

    from ..config import apply_overrides, get_preset
    from ..evaluation.bench_train_variants import bench_train_variants

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
            f"{name:>27}: {r['seconds_per_step']:.3f} s/step ({r['speedup']:.2f}x), "
            f"{r['tokens_per_second']:.0f} tokens/s, {r['gflops']:.0f} GFLOP/s "
            f"({r['fraction_of_matmul']:.0%} of matmul), "
            f"first step {r['first_step_seconds']:.1f} s, "
            f"loss {r['loss_after']:.6f}"
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..evaluation.bench import bench_sample
    from ..evaluation.bench_train import bench_train

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
            f"head on unknown tokens only: {result['speedup_head_unknown']:.2f}x per step, "
            f"{head['speedup_head_unknown']:.2f}x on the transcoder's forward + backward "
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
        compile=args.compile,
        compile_mode=None if args.compile_mode == "default" else args.compile_mode,
        recipes_from=args.recipes_from,
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
    for other in ("release", "head_all"):
        if f"speedup_vs_{other}" in result:
            print(f"default vs {other}: {result[f'speedup_vs_{other}']:.2f}x faster")
    return 0
