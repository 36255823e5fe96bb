"""`bigr convert`, `parity`, `export` and `presets`: the release's checkpoints and the
package's own model directories."""

from __future__ import annotations

import argparse
from pathlib import Path

from .argtypes import CLIError


def cmd_convert(args: argparse.Namespace) -> int:
    import torch

    from ..config import BiGRConfig, apply_overrides, get_preset
    from ..official.convert import PresetMismatch, convert_checkpoint

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
    source = args.file
    if str(source).startswith("hf://"):  # a release file on the hub: downloaded (or cached)
        from ..hub import download

        source = download(str(source))
    try:
        done = convert_checkpoint(
            source,
            args.kind,
            args.out,
            preset=preset,
            preset_name=args.preset or "",
            overrides=overrides,
            key=args.key,
            dtype=dtype,
            force=args.force,
        )
    except PresetMismatch as err:
        raise CLIError(str(err)) from None
    print(f"configuration ({done.origin}):")
    for line in done.inferred.lines():
        print(f"  {line}")
    print(done.report.summary())
    if done.report.dead_dropped:
        dropped = done.report.dead_dropped
        print(
            f"dropped dead tensors: {', '.join(dropped[:6])}" + (" ..." if len(dropped) > 6 else "")
        )
    print(f"wrote {done.out}")
    return 0


def cmd_parity(args: argparse.Namespace) -> int:
    from ..official.parity import format_rows, run_parity

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


def cmd_export(args: argparse.Namespace) -> int:
    import json

    import torch

    from ..checkpoint import load_directory, resolve, save_directory
    from ..outputs import check_replaceable

    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    check_replaceable(args.out, force=args.force)  # before reading anything
    src = resolve(args.src)  # a folder, or an embedded name (checkpoint.EMBEDDED)
    config, state = load_directory(src)
    meta = json.loads((src / "config.json").read_text())
    extra = {**meta.get("extra", {}), "stored_dtype": args.dtype}
    if args.weights == "raw":
        state, step = raw_weights(src, state)
        extra.update(weights="raw", trained_steps=step)
    state = {k: v.to(dtype[args.dtype]) if v.is_floating_point() else v for k, v in state.items()}
    out = save_directory(args.out, config, state, extra, force=args.force)
    size = (out / "model.safetensors").stat().st_size
    print(f"wrote {out} ({size / 1e6:.1f} MB, {args.dtype}; loading computes in float32)")
    return 0


def raw_weights(src, exported: dict) -> tuple[dict, int]:
    """The training weights (not their moving average) of the run whose export is `src`: read
    from the run's `state.pt` (beside `src`, or inside it when `src` is the run folder), checked
    to hold the same tensors as the export. Returns them and the state's step."""
    from ..checkpoint import CheckpointError, load_state

    candidates = [src / "state.pt", src.parent / "state.pt"]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise CheckpointError(
            f"{src}: --weights raw needs a training run's state.pt beside the model (found "
            f"neither {candidates[0]} nor {candidates[1]}); only the exported average is here"
        )
    state = load_state(path, "cpu")
    weights = state.get("model")
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: holds no training weights ('model' entry)")
    weights = {k.removeprefix("_orig_mod."): v for k, v in weights.items()}
    if set(weights) != set(exported) or any(
        weights[k].shape != exported[k].shape for k in exported
    ):
        raise CheckpointError(
            f"{path}: its weights do not match the model in {src} (another run's state?)"
        )
    return weights, int(state["step"])


def cmd_presets(args: argparse.Namespace) -> int:
    import torch

    from ..config import PRESETS, config_kind
    from ..model import build_model, count_parameters

    width = max(len(name) for name in PRESETS) + 2
    for name, config in PRESETS.items():
        with torch.device("meta"):
            n = count_parameters(build_model(config))
        print(f"{name:<{width}} {config_kind(config):<10} {n / 1e6:10.2f} M parameters")
    return 0


# -- demo --------------------------------------------------------------------------------------


def add_conversion_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="import an official BiGR (.pt) or B-AE (.th) checkpoint")
    p.add_argument("kind", choices=["bigr", "bae"])
    p.add_argument(
        "file",
        help="official checkpoint file, or hf://OWNER/REPO/PATH of one on the Hugging Face hub "
        "(e.g. hf://haoosz/BiGR/gpt/bigr_L_d24.pt)",
    )
    p.add_argument(
        "--preset",
        help="optional cross-check: fail unless the configuration read off the checkpoint "
        "equals this preset (see `bigr presets`)",
    )
    p.add_argument(
        "--out", required=True, help="output directory (config.json + model.safetensors)"
    )
    p.add_argument("--key", default="ema", help="entry of a BiGR .pt file holding the weights")
    p.add_argument("--force", action="store_true")
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


def add_model_file_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="copy a model directory with weights stored in another dtype")
    p.add_argument("src", help="model or tokenizer directory")
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument(
        "--weights",
        default="ema",
        choices=["ema", "raw"],
        help="ema: the weights in SRC (a training run exports its moving average); raw: the "
        "training weights from the run's state.pt beside SRC, at the same step (default: ema)",
    )
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("presets", help="list the model presets")
    p.set_defaults(func=cmd_presets)
