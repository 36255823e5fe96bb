"""Handlers of `bigr tokenize` and `bigr train` (argument parsing stays in `cli.py`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from contextlib import nullcontext
from pathlib import Path

from .. import schedules
from ..config import BiGRConfig, apply_overrides, get_preset
from ..data import BUILTIN_DATASET
from ..data.captions import CAPTION_SOURCES
from .argtypes import device as device_arg
from .argtypes import finite_float, int_in
from .common import config_changes, parse_ints


def cmd_tokenize(args: argparse.Namespace) -> int:
    from ..data.tokenize import tokenize_command
    from ..outputs import run_lock

    rank = int(os.environ.get("RANK", 0)) if args.rank is None else args.rank
    with run_lock(args.out, "tokenize --out", rank=rank):
        result = _tokenize(args, tokenize_command)
    done = "" if result["complete"] else "; other ranks' shards still missing"
    print(
        f"wrote {result['shards_written']} shards ({result['shards_already_done']} already there) "
        f"to {result['out_dir']}: {result['images']} images, {result['bytes_per_image']} bytes "
        f"per image vs {result['release_bytes_per_image']} in the release's one-byte-per-bit "
        f"format{done}"
    )
    return 0


def _tokenize(args: argparse.Namespace, tokenize_command) -> dict:
    return tokenize_command(
        args.tokenizer,
        args.data,
        args.out,
        rank=args.rank,
        world_size=args.world_size,
        device=args.device,
        batch_size=args.batch_size,
        samples_per_image=args.samples,
        stochastic=not args.deterministic,
        include_flips=args.flips,
        shard_size=args.shard_size,
        seed=args.seed,
        num_workers=args.workers,
        captions=args.captions,
        progress=True,
    )


def _main_rank_lock(folder: str, what: str):
    """The run folder's lock, held by the process that writes it (rank 0 under torchrun)."""
    from ..outputs import run_lock

    return run_lock(folder, what) if os.environ.get("RANK", "0") == "0" else nullcontext()


def cmd_train(args: argparse.Namespace) -> int:
    from ..data.shards import CodeShards
    from ..model import load_tokenizer
    from ..train.generator import TrainConfig, train_generator

    config = get_preset(args.preset)
    if not isinstance(config, BiGRConfig):
        raise ValueError(f"preset {args.preset!r} is not a BiGR generator preset")
    config = apply_overrides(config, args.set or [])
    data = CodeShards(args.codes)
    if data.meta.classes and config.num_classes != len(data.meta.classes):
        config = dataclasses.replace(config, num_classes=len(data.meta.classes))
        print(f"num_classes set to {config.num_classes} from the codes' class list")
    if not data.meta.classes and not config.text_dim and not config.unconditional:
        config = dataclasses.replace(config, num_classes=0, class_dropout=1.0)
        print("the codes carry no class labels: training an unconditional model")
    changes = config_changes(args, TrainConfig, {"warmup": "warmup_steps"})
    changes.pop("sample_classes", None)  # text on the command line, parsed here
    if args.sample_classes:
        changes["sample_classes"] = tuple(parse_ints(args.sample_classes, "--sample-classes"))
    train = TrainConfig(**changes)
    tokenizer = (
        load_tokenizer(args.tokenizer, device=args.device or "cpu") if args.tokenizer else None
    )
    with _main_rank_lock(args.out, "train --out"):
        stats = train_generator(
            config,
            data,
            args.out,
            train,
            resume=args.resume,
            init=args.init,
            tokenizer=tokenizer,
            device=args.device,
        )
    stopped = int(stats.get("stopped_by_signal", 0))
    if os.environ.get("RANK", "0") != "0":
        return 128 + stopped if stopped else 0
    if stats:
        print(f"step {stats['step']}: loss {stats['loss']:.4f}, bit accuracy {stats['acc']:.4f}")
    print(f"wrote {Path(args.out) / 'model'} (EMA weights), {Path(args.out) / 'loss.png'}")
    if stopped:
        print(f"stopped by a signal after step {stats['step']}, saved: continue with --resume")
        return 128 + stopped  # the shell's convention for a process ended by that signal
    if train.stop_at and train.stop_at < train.steps:
        print(
            f"stopped at step {train.stop_at} of {train.steps} (--stop-at): continue with --resume"
        )
    return 0


def add_training_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="encode a dataset into bit-packed code shards")
    p.add_argument("--tokenizer", required=True, help="tokenizer directory")
    p.add_argument("--data", required=True, help=f"{BUILTIN_DATASET}[:test], or a folder of images")
    p.add_argument("--out", required=True, help="output shard folder")
    p.add_argument(
        "--samples", type=int_in(1, 64), default=1, help="stochastic code samples per image"
    )
    p.add_argument(
        "--deterministic", action="store_true", help="codes p > 0.5 instead of Bernoulli draws"
    )
    p.add_argument("--flips", action="store_true", help="also encode horizontally flipped copies")
    p.add_argument("--batch-size", type=int_in(1, 65536), default=64)
    p.add_argument("--shard-size", type=int_in(1, 10_000_000), default=10_000)
    p.add_argument("--workers", type=int_in(0, 256), default=0)
    p.add_argument(
        "--captions",
        choices=list(CAPTION_SOURCES),
        help="store generated captions (ids + MiniLM table) for a text-conditioned model",
    )
    p.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0)
    p.add_argument("--rank", type=int_in(0, 65535), help="this process's rank (default: $RANK)")
    p.add_argument(
        "--world-size", type=int_in(1, 65536), help="number of ranks (default: $WORLD_SIZE)"
    )
    p.add_argument("--device", type=device_arg)
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("train", help="train a BiGR generator on code shards (also under torchrun)")
    p.add_argument("--codes", required=True, help="shard folder written by `bigr tokenize`")
    p.add_argument("--preset", required=True, help="model preset (see `bigr presets`)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a model config field"
    )
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state.pt if it exists")
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="warm start from an exported model at the step it records (fresh optimizer, the LR "
        "re-warmed over --warmup steps); OUT/state.pt, if there, still wins",
    )
    p.add_argument("--tokenizer", help="tokenizer directory, for sample grids during training")
    p.add_argument("--sample-classes", help="comma-separated classes of the sample grids")
    p.add_argument("--device", type=device_arg)
    g = p.add_argument_group("optimisation (defaults: the release's recipe)")
    g.add_argument("--steps", type=int_in(1, 100_000_000))
    g.add_argument(
        "--stop-at",
        type=int_in(1, 100_000_000),
        metavar="STEP",
        help="checkpoint and stop after STEP (the LR schedule still spans --steps); --resume "
        "continues the same run, e.g. to compare runs at an equal budget",
    )
    g.add_argument(
        "--batch-size",
        type=int_in(1, 1_000_000),
        help="global batch: per rank x ranks x accumulation",
    )
    g.add_argument("--grad-accum", type=int_in(1, 65536))
    g.add_argument("--lr", type=finite_float(0, open_low=True))
    g.add_argument("--weight-decay", type=finite_float(0))
    g.add_argument("--warmup", type=int_in(0, 100_000_000), help="warmup steps")
    g.add_argument("--lr-schedule", choices=schedules.LR_SCHEDULES)
    g.add_argument("--min-lr", type=finite_float(0))
    g.add_argument("--grad-clip", type=finite_float(0))
    g.add_argument("--ema-decay", type=finite_float(0, 1, open_high=True))
    g.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    g.add_argument("--compile", action="store_true", default=None)
    g.add_argument(
        "--fsdp",
        action="store_true",
        default=None,
        help="shard parameters, gradients and optimizer state over the torchrun processes "
        "(largest presets); a run resumes across one process, DDP and FSDP in any order",
    )
    g.add_argument(
        "--fsdp-mode",
        choices=["full", "grad-op", "hybrid"],
        help="with --fsdp: full resharding after forward (least memory), grad-op (keep the "
        "gathered parameters until backward: less traffic), hybrid (shard within a node, "
        "replicate across nodes)",
    )
    g.add_argument(
        "--fsdp-precision",
        choices=["fp32", "bf16"],
        help="with --fsdp: bf16 gathers and computes in bf16, reduces gradients in fp32",
    )
    g.add_argument(
        "--activation-checkpointing",
        action="store_true",
        default=None,
        help="recompute each block in the backward pass: activations per sample fall to the "
        "blocks' inputs, for about a third more compute",
    )
    g.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="also write loss, accuracy, learning rate and gradient norm as TensorBoard "
        "events to DIR (pip install 'bigr[tensorboard]')",
    )
    g.add_argument(
        "--per-sample-mask",
        action="store_true",
        default=None,
        help="one mask ratio per sample (the release draws one per batch)",
    )
    g.add_argument("--seed", type=int_in(0, 2**63 - 1))
    g.add_argument("--log-every", type=int_in(1, 100_000_000))
    g.add_argument("--checkpoint-every", type=int_in(1, 100_000_000))
    g.add_argument("--sample-every", type=int_in(0, 100_000_000))
    p.set_defaults(func=cmd_train)


def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    from ..config import TokenizerConfig
    from ..data import open_dataset
    from ..train.tokenizer import TokenizerTrainConfig, train_tokenizer

    config = get_preset(args.preset)
    if not isinstance(config, TokenizerConfig):
        raise ValueError(f"preset {args.preset!r} is not a tokenizer preset")
    config = apply_overrides(config, args.set or [])
    data = open_dataset(args.data, config.image_size)
    held_out = open_dataset(args.eval_data, config.image_size) if args.eval_data else None
    changes = config_changes(args, TokenizerTrainConfig, {"warmup": "warmup_steps"})
    if args.no_flip:
        changes["flip"] = False
    if args.export_weights:
        changes["export"] = args.export_weights
    train = TokenizerTrainConfig(**changes)
    with _main_rank_lock(args.out, "train-tokenizer --out"):
        stats = train_tokenizer(
            config,
            data,
            args.out,
            train,
            held_out=held_out,
            resume=args.resume,
            device=args.device,
            init=args.init,
        )
    stopped = int(stats.get("stopped_by_signal", 0))
    if os.environ.get("RANK", "0") != "0":
        return 128 + stopped if stopped else 0
    if stats:
        extra = f", held-out PSNR {stats['psnr']:.2f} dB" if "psnr" in stats else ""
        l1 = f": L1 {stats['l1']:.4f}" if "l1" in stats else ""
        print(f"step {stats['step']}{l1}{extra}")
    kind = "EMA" if train.export == "ema" else "raw"
    print(f"wrote {Path(args.out) / 'model'} ({kind} weights), {Path(args.out) / 'loss.png'}")
    if stopped:
        print(f"stopped by a signal after step {stats['step']}, saved: continue with --resume")
        return 128 + stopped
    if train.stop_at and train.stop_at < train.steps:
        print(
            f"stopped at step {train.stop_at} of {train.steps} (--stop-at): continue with --resume"
        )
    return 0


def add_tokenizer_training_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-tokenizer", help="train a binary autoencoder (also under torchrun)")
    p.add_argument("--data", required=True, help=f"{BUILTIN_DATASET}, or a folder of images")
    p.add_argument("--eval-data", help="held-out data for PSNR and reconstruction grids")
    p.add_argument("--preset", required=True, help="tokenizer preset (see `bigr presets`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", type=device_arg)
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument(
        "--init",
        help="start from this exported tokenizer (same config), e.g. to fine-tune its decoder",
    )
    p.add_argument(
        "--freeze-encoder",
        action="store_true",
        help="train the decoder side only: every image keeps its codes (generators stay valid)",
    )
    p.add_argument(
        "--codes",
        choices=["bernoulli", "threshold"],
        help="codes the decoder trains on: Bernoulli draws (default, the release) or p > 0.5",
    )
    g = p.add_argument_group("optimisation")
    for flag, kind in [
        ("--steps", int),
        ("--batch-size", int),
        ("--lr", float),
        ("--warmup", int),
        ("--min-lr", float),
        ("--perceptual-weight", float),
        ("--perceptual-resolution", int),
        ("--perceptual-start", int),
        ("--perceptual-images", int),
        ("--disc-start", int),
        ("--disc-warmup", int),
        ("--disc-weight-max", float),
        ("--disc-lr", float),
        ("--ema-decay", float),
        ("--ema-every", int),
        ("--seed", int),
        ("--log-every", int),
        ("--checkpoint-every", int),
        ("--eval-every", int),
        ("--eval-images", int),
    ]:
        g.add_argument(flag, type=kind)
    g.add_argument(
        "--stop-at",
        type=int_in(1, 100_000_000),
        metavar="STEP",
        help="checkpoint and stop after STEP (the LR schedule still spans --steps); --resume "
        "continues the same run",
    )
    g.add_argument("--lr-schedule", choices=schedules.LR_SCHEDULES)
    g.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    g.add_argument(
        "--export-weights",
        choices=["ema", "raw"],
        help="weights written to model/ (default ema; with --resume on a finished run: re-export)",
    )
    p.set_defaults(func=cmd_train_tokenizer)
