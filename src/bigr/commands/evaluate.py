"""`bigr sample-fid`, `tune-recipe`, `fid` and `probe`: their subparsers and handlers."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..data import BUILTIN_DATASET, HELD_OUT_SPEC
from ..outputs import atomic_write_text, check_output_file, run_lock
from .argtypes import device as device_arg
from .argtypes import finite_float, int_in
from .common import (
    add_features_argument,
    add_sampler_arguments,
    load_pair,
    parse_ints,
    sampler_from_args,
)

if TYPE_CHECKING:
    from ..evaluation.reference import ImageStatistics


def cmd_sample_fid(args: argparse.Namespace) -> int:
    if str(args.device) == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per rank
        args.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    model, tokenizer = load_pair(args)
    sampler = sampler_from_args(args, "recommended")
    rank = int(os.environ.get("RANK", 0)) if args.rank is None else args.rank
    world = int(os.environ.get("WORLD_SIZE", 1)) if args.world_size is None else args.world_size
    with run_lock(args.out, "sample-fid --out", rank=rank):
        result = _sample_fid(args, model, tokenizer, sampler, rank, world)
    state = f"complete: {result['samples']}" if result["complete"] else "other shards still missing"
    print(f"rank {rank}: wrote {result['shards_written']} shards to {result['out_dir']} ({state})")
    return 0


def _sample_fid(args, model, tokenizer, sampler, rank: int, world: int) -> dict:
    from ..evaluation.sample_fid import sample_fid

    return sample_fid(
        model,
        tokenizer,
        args.out,
        num_images=args.num,
        sampler=sampler,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        seed=args.seed,
        rank=rank,
        world_size=world,
        write_png=args.png,
        model_info={"model": str(args.model), "recipe": args.recipe or "recommended"},
    )


def _open_npz(path: Path):
    """The `arr_0` images of an .npz, opened for streaming; one line saying why not otherwise."""
    from ..evaluation.reference import NpzImages

    try:
        return NpzImages.open(path)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError) as err:
        if str(err).startswith(str(path)):
            raise
        kind = (
            "a single .npy array"
            if _is_npy(path)
            else f"damaged or truncated .npz ({type(err).__name__})"
        )
        raise ValueError(
            f"{path}: {kind}; for a sample-fid folder, delete samples.npz and rerun sample-fid "
            "to merge its shards again"
        ) from None


def _is_npy(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(6) == b"\x93NUMPY"


def _sample_source(path: Path):
    """What `bigr fid` measures: the images of a sample-fid folder or an .npz (streamed), or a
    plain image folder (returned as its path)."""
    if path.is_dir() and (path / "samples.npz").is_file():
        path = path / "samples.npz"
    if path.suffix == ".npz":
        return _open_npz(path)
    if path.is_dir():
        if (path / "meta.json").is_file():
            raise ValueError(f"{path}: the sample set is incomplete (no samples.npz yet)")
        return path
    raise ValueError(f"{path}: not a folder of images, a sample-fid folder or an .npz")


def _folder_image_size(folder: Path) -> int:
    """The size the images of a sample folder share (their first image's shorter side)."""
    from ..data.images import open_image
    from ..evaluation.reference import IMAGE_SUFFIXES, find_images

    paths = find_images(folder)
    if not paths:
        raise ValueError(f"{folder}: no {'/'.join(IMAGE_SUFFIXES)} images found")
    return min(open_image(paths[0]).size)


def _stats_of(
    spec: str, extractor, image_size: int, limit: int | None, batch_size: int, cache: Path | None
):
    """Statistics of samples or a reference, read one batch at a time: an .npz or sample-fid
    folder, an image folder (centre-cropped to `image_size`) or a dataset spec; written to
    `cache` when given (`--ref-stats`; `_check_reference` is what reads kept statistics)."""
    from ..data import open_dataset
    from ..evaluation.reference import (
        NpzImages,
        compute_statistics,
        load_statistics,
        save_statistics,
        statistics_from_folder,
        uint8_batches,
    )

    path = Path(spec)
    source = _sample_source(path) if path.exists() and not _is_stats_file(path) else None
    if path.exists() and source is None:
        stats = load_statistics(path, extractor, batch_size=batch_size)
    elif isinstance(source, NpzImages):
        count = len(source) if limit is None else min(limit, len(source))
        batches = uint8_batches(source.batches(batch_size, count), batch_size)
        stats = compute_statistics(batches, extractor, total=count, desc=str(source.path))
    elif source is not None:
        stats = statistics_from_folder(
            source, extractor, batch_size=batch_size, size=image_size, limit=limit
        )
    else:
        dataset = open_dataset(spec, image_size)
        count = len(dataset) if limit is None else min(limit, len(dataset))
        batches = (
            torch.stack([dataset[i][0] for i in range(start, min(start + batch_size, count))])
            for start in range(0, count, batch_size)
        )
        stats = compute_statistics(batches, extractor, total=count, desc=spec)
    if cache is not None:
        save_statistics(stats, cache)
    return stats


def _is_stats_file(path: Path) -> bool:
    """An .npz of statistics (stored `mu`), as opposed to one of images only."""
    if path.suffix != ".npz" or not path.is_file():
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return "mu.npy" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _check_reference(
    spec: str, cache: Path | None, image_size: int, expected: int | None
) -> ImageStatistics | None:
    """Fail on an unusable reference before any sample is measured (Inception is slow).
    Returns the statistics kept in `cache` when there are some, refused now if they were made
    from another number of reference images than `expected` (when that is known already)."""
    from ..data import open_dataset
    from ..evaluation.reference import load_statistics

    if cache is not None and cache.is_file():
        kept = load_statistics(cache)
        _check_kept_count(cache, kept.num_images, expected, spec, image_size)
        return kept
    if not Path(spec).exists():
        open_dataset(spec, 32)  # a dataset name: unknown ones are refused here
    return None


def _check_features(stats: ImageStatistics, where: str, extractor, image_size: int) -> None:
    """Refuse stored reference statistics (`where`: the option that gave them) of other features
    than this comparison's (another `--features`) before the samples are measured: one blank
    image through the extractor tells its feature width."""
    width = extractor(torch.zeros(1, 3, image_size, image_size)).pool.shape[1]  # inputs follow it
    if stats.pool.mu.shape[0] != width:
        raise ValueError(
            f"{where} holds statistics of {stats.pool.mu.shape[0]}-dimensional "
            f"features, this comparison's have {width}: they were made with another --features"
        )


def _check_kept_count(
    cache: Path, kept: int, ref_limit: int | None, spec: str, image_size: int
) -> None:
    if ref_limit is None or not kept or kept == ref_limit:
        return
    if kept < ref_limit and kept == _reference_count(spec, image_size):
        return  # the reference has fewer images than asked for: all of them were used
    raise ValueError(
        f"--ref-stats {cache} holds statistics of {kept} reference images, this comparison "
        f"uses {ref_limit}; delete it, give another path, or pass --ref-num {kept}"
    )


def _reference_count(spec: str, image_size: int) -> int | None:
    """How many images a reference holds (None for a file of statistics)."""
    from ..data import open_dataset
    from ..evaluation.reference import NpzImages, find_images

    path = Path(spec)
    if not path.exists():
        return len(open_dataset(spec, image_size))
    source = _sample_source(path) if not _is_stats_file(path) else None
    if isinstance(source, NpzImages):
        return len(source)
    return len(find_images(source)) if source is not None else None


def _expected_ref_count(args: argparse.Namespace, source) -> int | None:
    """How many reference images the comparison will use, where known before measuring:
    `--ref-num`, or the count of an .npz of samples (a folder's unreadable images are skipped,
    so its count is known only once measured)."""
    from ..evaluation.reference import NpzImages

    if args.ref_num is not None:
        return args.ref_num
    if isinstance(source, NpzImages):
        return len(source) if args.num is None else min(args.num, len(source))
    return None


def cmd_fid(args: argparse.Namespace) -> int:
    from ..evaluation.inception import feature_extractor
    from ..evaluation.reference import NpzImages, compare_statistics

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_output_file(args.out)  # before the work: a device or a folder is refused now
    sample_path = Path(args.samples)
    source = _sample_source(sample_path)
    size = source.shape[1] if isinstance(source, NpzImages) else _folder_image_size(source)
    limit = args.num
    cache = Path(args.ref_stats) if args.ref_stats else None
    expected = _expected_ref_count(args, source)
    reference = _check_reference(args.ref, cache, size, expected)
    kept = reference is not None
    extractor = feature_extractor(args.features).to(device)
    if not kept and _is_stats_file(Path(args.ref)):  # statistics given as --ref: used whole
        reference = _stats_of(args.ref, extractor, size, None, args.batch_size, cache)
    if reference is not None:
        where = f"--ref-stats {cache}" if kept else f"--ref {args.ref}"
        _check_features(reference, where, extractor, size)
    samples = _stats_of(str(sample_path), extractor, size, limit, args.batch_size, None)
    ref_limit = args.ref_num if args.ref_num is not None else samples.num_images or None
    if reference is None:
        reference = _stats_of(args.ref, extractor, size, ref_limit, args.batch_size, cache)
    elif kept and expected is None:  # a folder's count is known only now; a known one was checked
        _check_kept_count(cache, reference.num_images, ref_limit, args.ref, size)
    result = compare_statistics(samples, reference)
    result |= {"num_samples": samples.num_images, "num_reference": reference.num_images}
    result["features"] = args.features  # "pixels": distances that are not FIDs
    text = json.dumps(result, indent=2)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(text)
    return 0


def cmd_tune_recipe(args: argparse.Namespace) -> int:
    from ..evaluation.inception import feature_extractor
    from ..evaluation.tune import TuneConfig, release_seconds_per_image, tune_recipe, write_recipe

    model, tokenizer = load_pair(args)
    base = sampler_from_args(args, "recommended")
    changes = {"num": args.num, "reference": args.ref, "batch_size": args.batch_size}
    if args.fast is not None:  # the fast sampler's axes, unless swept explicitly below
        changes |= FAST_AXES
    for name in ("guidance", "gumbel", "reveal_certain"):
        values = getattr(args, f"sweep_{name}")
        if values:
            changes[name] = tuple(float(x) for x in values.split(","))
    for name in (
        "steps",
        "head_steps",
        "head_steps_last",
        "uncond_every",
        "kv_refresh",
        "head_steps_certain",
        "revise",
    ):
        values = getattr(args, f"sweep_{name}")
        if values:
            changes[name] = tuple(parse_ints(values, f"--sweep-{name.replace('_', '-')}"))
    cfg = TuneConfig(**changes, max_seconds_per_image=args.max_seconds_per_image, seed=args.seed)
    # every axis value, before anything is timed or sampled
    cfg.validate_axes(base, model.config.head.diffusion_steps)
    extractor = feature_extractor(args.features).to(args.device)
    with run_lock(args.out, "tune-recipe --out"):
        if args.fast is not None:
            release = release_seconds_per_image(model, args.batch_size, args.out, args.seed)
            limit = release / args.fast
            if cfg.max_seconds_per_image is not None:
                limit = min(limit, cfg.max_seconds_per_image)
            cfg = dataclasses.replace(cfg, max_seconds_per_image=limit)
            print(
                f"the release's recipe and algorithm: {release:.4f} s/image at batch "
                f"{args.batch_size}; budget {limit:.4f} s/image ({args.fast:g}x faster)"
            )
        result = tune_recipe(model, tokenizer, extractor, args.out, cfg, base)
    print(f"wrote {Path(args.out) / 'tuning.md'}, {Path(args.out) / 'tuning.json'}")
    if args.write:
        table = str(Path(args.out) / "tuning.md")
        name = args.name or ("fast" if args.fast is not None else "recommended")
        print(f"wrote {write_recipe(args.model, result, table, name)}")
    return 0


# `tune-recipe --fast`: few unmasking and head steps, and every speed option of the sampler
FAST_AXES = {
    "steps": (2, 4, 6, 8, 12),
    "head_steps": (5, 10, 15, 25),
    "head_steps_last": (2, 5),
    "uncond_every": (2, 3),
    "reveal_certain": (0.9, 0.97),
    "kv_refresh": (2, 3),
    "head_steps_certain": (2, 5),
}


def cmd_probe(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from ..data.shards import CodeShards
    from ..evaluation.probe import ProbeConfig, layer_features, train_probe, write_store
    from ..model import BiGR

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_output_file(args.out)
    model = BiGR.from_pretrained(args.model, device=device)
    train_codes, test_codes = CodeShards(args.train_codes), CodeShards(args.test_codes)
    layers = probe_layers(args.layers, model.config.depth)
    config = ProbeConfig(
        epochs=args.epochs, batch_size=args.batch_size, base_lr=args.lr, optimizer=args.optimizer
    )
    # features go to memory-mapped files, chunk by chunk: memory is bounded by the batch
    own_store = args.features_dir is None
    store = Path(tempfile.mkdtemp(prefix="bigr-probe-")) if own_store else Path(args.features_dir)
    try:
        splits = {}
        for name, shards, limit in (("train", train_codes, args.train_num),
                                    ("test", test_codes, args.test_num)):  # fmt: skip
            count = len(shards) if limit is None else min(limit, len(shards))
            codes = (c for c, _ in shards.iter_batches(256, 0, count))
            labels = torch.cat([lab for _, lab in shards.iter_batches(4096, 0, count)])
            features = layer_features(model, codes, layers, store=store / name, count=count)
            splits[name] = (shards, count, features, labels)
        (_, _, tr_f, tr_y), (_, _, te_f, te_y) = splits["train"], splits["test"]
        results: dict[str, dict] = {}
        for i in layers:
            r = results[f"layer {i}"] = train_probe(tr_f[i], tr_y, te_f[i], te_y, config)
            print(f"layer {i:>2}: top-1 {r['top1']:.2f}  top-5 {r['top5']:.2f}")
        if "bits" in args.baselines:
            bits = {}
            for name, (shards, count, _, _) in splits.items():
                width = shards.meta.num_tokens * shards.meta.code_bits
                batches = (c for c, _ in shards.iter_batches(1024, 0, count))
                bits[name] = write_store(store / f"{name}-bits.npy", batches, count, width)
            results["tokenizer bits"] = train_probe(bits["train"], tr_y, bits["test"], te_y, config)
            print(f"tokenizer bits: top-1 {results['tokenizer bits']['top1']:.2f}")
        if "pixels" in args.baselines:
            results["raw pixels"] = _pixel_baseline(args, test_codes, tr_y, te_y, config, store)
            print(f"raw pixels: top-1 {results['raw pixels']['top1']:.2f}")
    finally:
        if own_store:
            shutil.rmtree(store, ignore_errors=True)
    if args.out:
        atomic_write_text(
            args.out, json.dumps({"config": config.__dict__, "results": results}, indent=2) + "\n"
        )
        print(f"wrote {args.out}")
    return 0


def probe_layers(text: str, depth: int) -> list[int]:
    """`--layers`: "auto" (the middle block, three quarters in, and the last: where the
    paper and this study find the best features), "all", or comma-separated indices."""
    if text == "auto":
        return sorted({depth // 2, (3 * depth) // 4, depth - 1})
    if text == "all":
        return list(range(depth))
    layers = parse_ints(text, "--layers")
    if any(not 0 <= i < depth for i in layers):
        raise ValueError(f"--layers must lie in 0..{depth - 1}")
    return layers


def _pixel_baseline(args, test_codes, tr_y, te_y, config, store: Path) -> dict:
    from ..data import open_dataset
    from ..evaluation.probe import train_probe, write_store

    if not (args.train_data and args.test_data):
        raise ValueError("the pixel baseline needs --train-data and --test-data")
    size = args.pixel_size or test_codes.meta.tokenizer.get("config", {}).get("image_size")
    if not size:
        raise ValueError("the code shards do not name their image size: pass --pixel-size")

    def pixels(name: str, spec: str, n: int):
        ds = open_dataset(spec, size)
        batches = (
            torch.stack([ds[i][0] for i in range(s, min(s + 256, n))]).mul(255).round()
            for s in range(0, n, 256)
        )
        return write_store(store / f"{name}-pixels.npy", batches, n, 3 * size * size)

    train = pixels("train", args.train_data, len(tr_y))
    test = pixels("test", args.test_data, len(te_y))
    # stored as bytes; the classifier's BatchNorm makes the 0..255 scale irrelevant
    return train_probe(train, tr_y, test, te_y, config)


def add_evaluation_commands(sub: argparse._SubParsersAction) -> None:
    """`bigr sample-fid`, `tune-recipe`, `fid` and `probe`."""
    _add_sample_fid(sub)
    _add_tune_recipe(sub)
    _add_fid(sub)
    _add_probe(sub)


def _add_sample_fid(sub: argparse._SubParsersAction) -> None:
    """`bigr sample-fid`: class-balanced samples for FID, resumable across ranks."""
    p = sub.add_parser(
        "sample-fid", help="sample N class-balanced images for FID (resumable, torchrun)"
    )
    p.add_argument("--model", required=True)
    p.add_argument("--tokenizer")
    p.add_argument("--out", required=True, help="sample folder (shards, then samples.npz)")
    p.add_argument(
        "--num-samples",
        "--num",
        dest="num",
        type=int_in(1, 1_000_000),
        default=10_000,
        help="samples, class-balanced (under torchrun write --num-samples: torchrun reads "
        "--num as its own --numa-binding)",
    )
    p.add_argument("--batch-size", type=int_in(1, 4096), default=32)
    p.add_argument("--shard-size", type=int_in(1, 1_000_000), default=1000)
    p.add_argument("--png", action="store_true", help="also write every image as a PNG")
    p.add_argument("--rank", type=int_in(0, 65535))
    p.add_argument("--world-size", type=int_in(1, 65536))
    add_sampler_arguments(p)
    p.set_defaults(func=cmd_sample_fid)


def _add_tune_recipe(sub: argparse._SubParsersAction) -> None:
    """`bigr tune-recipe`: the sampler sweep that chooses a model's recipe by FID."""
    p = sub.add_parser(
        "tune-recipe",
        help="choose the sampling recipe by FID on held-out images (resumable sweep)",
    )
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--tokenizer")
    p.add_argument("--out", required=True, help="folder for points.jsonl, tuning.md/json")
    p.add_argument("--num", type=int_in(2, 100_000), default=1000, help="samples per point")
    p.add_argument("--ref", default=HELD_OUT_SPEC, help="held-out images (never the test split)")
    p.add_argument("--batch-size", type=int_in(1, 4096), default=250)
    p.add_argument("--sweep-guidance", help="comma-separated guidance scales")
    p.add_argument("--sweep-gumbel", help="comma-separated Gumbel temperatures")
    p.add_argument("--sweep-steps", help="comma-separated unmasking step counts")
    p.add_argument("--sweep-head-steps", help="comma-separated head step counts")
    p.add_argument(
        "--sweep-head-steps-last", help="comma-separated head steps at the last unmasking step"
    )
    p.add_argument(
        "--sweep-uncond-every", help="comma-separated refresh periods of the unconditional branch"
    )
    p.add_argument(
        "--sweep-reveal-certain", help="comma-separated certainty bars (entropy-driven steps)"
    )
    p.add_argument(
        "--sweep-kv-refresh",
        help="comma-separated refresh periods of the kept keys and values",
    )
    p.add_argument(
        "--sweep-head-steps-certain",
        help="comma-separated head step counts for the more certain half of the tokens",
    )
    p.add_argument(
        "--sweep-revise", help="comma-separated counts of committed tokens redrawn per late step"
    )
    p.add_argument(
        "--fast",
        type=finite_float(1.0),
        metavar="SPEEDUP",
        help="choose the best recipe at least SPEEDUP times faster than the release's recipe "
        "run by the release's algorithm (timed here once), sweeping the fast sampler's options",
    )
    p.add_argument(
        "--max-seconds-per-image",
        type=finite_float(0, open_low=True),
        help="keep only points sampling at most this many seconds per image",
    )
    p.add_argument(
        "--name", help="recipe name for --write (default: fast with --fast, else recommended)"
    )
    p.add_argument("--write", action="store_true", help="store the choice in MODEL/recipe.json")
    add_sampler_arguments(p)
    add_features_argument(p)
    p.set_defaults(func=cmd_tune_recipe)


def _add_fid(sub: argparse._SubParsersAction) -> None:
    """`bigr fid`: FID, sFID, precision and recall of samples against a reference."""
    p = sub.add_parser("fid", help="FID, sFID, precision and recall of samples against a reference")
    p.add_argument("samples", help="sample-fid folder, .npz (arr_0), or a folder of images")
    p.add_argument(
        "--ref",
        required=True,
        help=f"dataset ({BUILTIN_DATASET}:test), image folder, ADM .npz or stats .npz",
    )
    p.add_argument("--num", type=int_in(2, 10_000_000), help="use the first N samples")
    p.add_argument(
        "--ref-num",
        type=int_in(2, 10_000_000),
        help="reference images (default: as many as samples)",
    )
    p.add_argument(
        "--ref-stats",
        help="keep the reference statistics in this .npz and reuse them on later calls (refused "
        "when they were made from another number of reference images or other --features)",
    )
    p.add_argument("--batch-size", type=int_in(1, 4096), default=50)
    p.add_argument("--device", type=device_arg)
    p.add_argument("--out", help="also write the result JSON here")
    add_features_argument(p)
    p.set_defaults(func=cmd_fid)


def _add_probe(sub: argparse._SubParsersAction) -> None:
    """`bigr probe`: the linear probe of pooled features after chosen layers."""
    p = sub.add_parser("probe", help="linear probe of pooled features after chosen layers")
    p.add_argument("--model", required=True)
    p.add_argument("--train-codes", required=True, help="code shards of the training split")
    p.add_argument("--test-codes", required=True, help="code shards of the held-out split")
    p.add_argument(
        "--layers",
        default="auto",
        help="blocks to probe: auto (the middle, three quarters in, the last), all, or "
        "comma-separated indices",
    )
    p.add_argument(
        "--features-dir",
        help="keep the memory-mapped features here (default: a temporary folder, removed)",
    )
    p.add_argument("--baselines", default="bits", help="comma list of: bits, pixels")
    p.add_argument("--train-data", help="images of the training split (pixel baseline)")
    p.add_argument("--test-data", help="images of the held-out split (pixel baseline)")
    p.add_argument("--pixel-size", type=int_in(1, 1024))
    p.add_argument("--train-num", type=int_in(1, 100_000_000))
    p.add_argument("--test-num", type=int_in(1, 100_000_000))
    p.add_argument("--epochs", type=int_in(1, 10_000), default=90)
    p.add_argument("--batch-size", type=int_in(1, 65536), default=256)
    p.add_argument(
        "--lr",
        type=finite_float(0, open_low=True),
        default=0.1,
        help="base lr (scaled by batch / 256)",
    )
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "lars"])
    p.add_argument("--device", type=device_arg)
    p.add_argument("--out", help="write results as JSON")
    p.set_defaults(func=cmd_probe)
