"""The study's report command: `python -m experiments.fashion.study --out DIR [...]` (the
report itself is this package; the pipeline, `experiments.fashion.pipeline`, calls it last)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bigr.cli import run_handler
from bigr.commands.argtypes import comma_list, finite_float, int_in
from bigr.commands.common import (
    add_features_argument,
    add_sampler_arguments,
    config_changes,
    load_pair,
    sampler_from_args,
)
from bigr.recipes import recipe
from bigr.sampler_plan import ORDERS


def build_parser() -> argparse.ArgumentParser:
    """The report's flags: its sections, their sample counts, the models and the recipe."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.fashion.study",
        description="The Fashion-MNIST results report (FID, speed/quality, orders, probe, "
        "inpainting, class edits, training variants) as markdown with plots; every section is "
        "cached under OUT/results/ and resumes where it stopped.",
    )
    p.add_argument("--model", help="generator directory (default: the embedded demo model)")
    p.add_argument("--tokenizer")
    p.add_argument("--out", required=True, help="report folder (sections are cached there)")
    p.add_argument("--name", help="title of the report")
    p.add_argument(
        "--sections",
        help="comma list of: tokenizer, fid, sweeps, speed, orders, probe, inpaint, edits, text, "
        "variants "
        "(default: all that apply; text models get text, probe, inpaint)",
    )
    p.add_argument("--force", action="store_true", help="recompute cached sections")
    p.add_argument(
        "--num-fid", type=int_in(2, 10_000_000), help="samples for the headline FID (default 10000)"
    )
    p.add_argument(
        "--num-sweep", type=int_in(2, 10_000_000), help="samples per sweep point (default 2000)"
    )
    p.add_argument(
        "--num-orders",
        type=int_in(2, 10_000_000),
        help="samples per order / bit-draw point (default: --num-sweep)",
    )
    p.add_argument(
        "--seeds",
        type=int_in(1, 1000),
        help="sample draws per point of the order / bit-draw comparisons (default 3)",
    )
    p.add_argument(
        "--gumbel-sweep",
        type=comma_list(finite_float(0.0)),
        help="Gumbel temperatures each certainty order is tried at (default 0,0.1,0.2,0.3,0.45)",
    )
    p.add_argument(
        "--orders",
        type=comma_list(str, choices=ORDERS),
        help=f"token orders compared (default {','.join(ORDERS)})",
    )
    p.add_argument(
        "--steps-sweep", type=comma_list(int_in(1, 1024)), help="unmasking steps swept (4,8,12,20)"
    )
    p.add_argument(
        "--head-sweep", type=comma_list(int_in(1, 1024)), help="head steps swept (5,10,25,50)"
    )
    p.add_argument(
        "--selection-data",
        help="held-out training images that per-order temperatures are chosen on "
        "(default fashion-mnist:val; never the --reference)",
    )
    p.add_argument(
        "--speed-recipes",
        dest="speed_recipe_names",
        type=comma_list(str),
        help="recipes the speed section times against the release's (default: recommended, "
        "and the model's own 'fast', 'turbo' and 'refined' recipes where it has them)",
    )
    p.add_argument(
        "--num-speed",
        type=int_in(2, 10_000_000),
        help="samples per recipe for the speed section's FIDs (default: --num-fid)",
    )
    p.add_argument(
        "--speed-repeats", type=int_in(1, 1000), help="timed calls per recipe, interleaved (3)"
    )
    p.add_argument("--speed-batch", type=int_in(1, 4096), help="images per timed call (100)")
    p.add_argument(
        "--speed-bootstrap",
        type=int_in(1, 100_000),
        help="bootstrap resamples for the speed section's FID intervals (20)",
    )
    p.add_argument("--probe-epochs", type=int_in(1, 10_000))
    p.add_argument("--probe-train", type=int_in(2, 10_000_000))
    p.add_argument(
        "--probe-val",
        type=int_in(1, 10_000_000),
        help="the last of the probe's training images, held out to choose the block (5000)",
    )
    p.add_argument("--probe-test", type=int_in(2, 10_000_000))
    p.add_argument("--inpaint-images", type=int_in(2, 10_000_000))
    p.add_argument(
        "--edit-images", type=int_in(2, 10_000_000), help="held-out images per class-edit pair"
    )
    p.add_argument(
        "--num-text", type=int_in(2, 10_000_000), help="text models: samples over the prompts"
    )
    p.add_argument("--text-fid", action="store_true", help="text models: also an FID")
    p.add_argument(
        "--variant",
        action="append",
        metavar="LABEL=DIR",
        help="a generator trained otherwise (e.g. predicting x0), compared by FID (repeatable)",
    )
    p.add_argument(
        "--variant-base",
        metavar="LABEL",
        help="compare the variants with this one instead of the report's model: a checkpoint "
        "of the model's own run at the variants' step count (`bigr train --stop-at`)",
    )
    p.add_argument("--batch-size", type=int_in(1, 4096))
    p.add_argument("--reference", help="held-out data (default fashion-mnist:test)")
    p.add_argument("--train-data", help="training data (default fashion-mnist:train)")
    add_features_argument(p)
    add_sampler_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the report; bad input ends in one line on stderr."""
    args = build_parser().parse_args(argv)
    return run_handler("report", cmd_report, args)


def cmd_report(args: argparse.Namespace) -> int:
    from bigr.demo import asset_dir
    from bigr.train.generator import trained_steps

    from . import ReportConfig, run_report
    from .sections import SECTIONS

    sections = tuple(args.sections.split(",")) if args.sections else None
    unknown = sorted(set(sections or ()) - set(SECTIONS))
    if unknown:  # before any model is loaded
        raise ValueError(f"unknown report sections {unknown}; known: {', '.join(SECTIONS)}")
    if args.model is None:  # the embedded demo models
        args.name = args.name or "bigr:fashion"
        args.model = str(asset_dir() / "model")
        args.tokenizer = args.tokenizer or str(asset_dir() / "tokenizer")
    model, tokenizer = load_pair(args)
    sampler = sampler_from_args(args, "recommended")
    variants = []
    for item in args.variant or []:
        label, sep, directory = item.partition("=")
        if not sep or not label or not directory:
            raise ValueError(f"--variant takes LABEL=DIR, got {item!r}")
        if not (Path(directory) / "config.json").is_file():
            raise FileNotFoundError(f"--variant {label}: no model at {directory}")
        variants.append((label, directory))
    config = ReportConfig(
        **{
            **config_changes(args, ReportConfig),  # every flag named as its field
            "recipe": sampler,  # not the --recipe name
            "edit_recipe": recipe("edit", args.model),
            "variants": tuple(variants),
            "model_steps": trained_steps(args.model),
            "speed_recipes": _speed_recipes(args, sampler),
        }
    )
    if config.selection_data == config.reference:
        raise ValueError(
            f"--selection-data {config.reference} is the --reference: settings would be chosen "
            "on the images they are reported on; choose them on held-out training images"
        )
    from bigr.evaluation.inception import feature_extractor

    extractor = None if args.features == "inception" else feature_extractor(args.features)
    path = run_report(
        model,
        tokenizer,
        args.out,
        config,
        extractor=extractor,
        sections=sections,
        force=args.force,
        model_name=args.name or Path(args.model).name,
    )
    print(f"wrote {path}")
    return 0


SPEED_RECIPES = ("fast", "turbo", "refined")  # a model's own recipes the speed section times


def _speed_recipes(args: argparse.Namespace, recommended) -> tuple:
    """(name, recipe) pairs of `--speed-recipes` (model recipes first, then built-in ones),
    by default the recommended recipe and the model's own `fast`, `turbo` and `refined`
    recipes where it has them."""
    from bigr.recipes import model_recipes

    names = args.speed_recipe_names
    if names is None:
        own = model_recipes(args.model)
        names = ["recommended", *(n for n in SPEED_RECIPES if n in own)]
    pairs = [(n, recommended if n == "recommended" else recipe(n, args.model)) for n in names]
    if len({n for n, _ in pairs}) != len(pairs):
        raise ValueError(f"--speed-recipes names a recipe twice: {','.join(names)}")
    return tuple(pairs)
