"""`bigr tune-recipe`: choose a model's sampling recipe on held-out images, never the test split.

A coordinate-descent sweep: starting from a base recipe, each axis in turn (guidance; order x
Gumbel temperature, each certainty order at every temperature, `random` and `raster` without
noise; the Gumbel ramp; the guidance schedule; a guidance interval; unmasking steps; head
(diffusion) steps; the fast sampler's options when given; then guidance once more) is swept with
the other fields held at the best values so far, and the value with the lowest FID against the
reference split is kept (default `bigr.data.HELD_OUT_SPEC`, a held-out split of training
images which the embedded models never train on). Within a speed budget (`max_seconds_per_image`)
only points inside it compete, and the cost axes (steps, head steps, the fast options) are swept
first and again last.
Every point uses the same seeds (batch b of every point draws from a generator seeded by
(seed, b)), so points differ only by their settings.

Each measured point is appended to `OUT/points.jsonl` (keyed by its settings, n, seed and
reference), so an interrupted sweep resumes where it stopped and a rerun costs nothing. The
folder records a fingerprint of the weights it was measured with (`OUT/weights.txt`, model and
tokenizer) and refuses to resume with other weights, whose points would be silently reused. The
table and the choice go to `OUT/tuning.json` and `OUT/tuning.md`. `write_recipe` stores the
choice in the model directory's `recipe.json` with the evidence (reference, n, seed, metric).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import weights_fingerprint
from ..data import HELD_OUT_SPEC
from ..model import BiGR
from ..outputs import atomic_write_text
from ..recipes import model_recipes, model_selections, save_recipes
from ..sampler import SamplerConfig
from ..sampler_plan import sampler_from_record, sampler_record
from ..tokenizer import BinaryAutoencoder
from .reference import (
    ImageStatistics,
    compare_statistics,
    load_statistics,
    save_statistics,
    statistics_from_images,
)


@dataclass(frozen=True, kw_only=True)
class TuneConfig:
    num: int = 1000  # samples per point
    reference: str = HELD_OUT_SPEC
    guidance: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0)
    guidance_schedules: tuple[str, ...] = ("constant", "linear")
    # (start, stop] of progress where guidance applies ("interval" schedule; outside, one pass)
    guidance_windows: tuple[tuple[float, float], ...] = ((0.0, 0.5), (0.25, 1.0), (0.5, 1.0))
    orders: tuple[str, ...] = ("entropy", "confidence", "random", "raster")
    gumbel: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0)
    gumbel_schedules: tuple[str, ...] = ("constant", "down", "up")
    steps: tuple[int, ...] = (4, 8, 12, 20)
    head_steps: tuple[int, ...] = (10, 25, 50, 100)
    # the fast sampler's options, swept after the head steps when given (each axis also keeps
    # the current value): a head-step ramp, reuse of the unconditional branch, the
    # entropy-driven step count
    head_steps_last: tuple[int, ...] = ()
    uncond_every: tuple[int, ...] = ()
    reveal_certain: tuple[float, ...] = ()
    kv_refresh: tuple[int, ...] = ()
    head_steps_certain: tuple[int, ...] = ()
    # revision of committed tokens (tokens per late step), swept with the quality axes
    revise: tuple[int, ...] = ()
    # keep only points that sample at most this many seconds per image (the fastest point of
    # an axis when none does): the best recipe within a speed budget
    max_seconds_per_image: float | None = None
    batch_size: int = 250
    seed: int = 0

    def validate(self) -> None:
        if self.num < 2:
            raise ValueError(f"num must be >= 2 samples per point, got {self.num}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_seconds_per_image is not None and not self.max_seconds_per_image > 0:
            raise ValueError(f"max_seconds_per_image must be > 0, got {self.max_seconds_per_image}")
        for name in ("guidance", "orders", "gumbel", "steps", "head_steps"):
            if not getattr(self, name):
                raise ValueError(f"{name}: give at least one value")

    def validate_axes(self, base: SamplerConfig, diffusion_steps: int | None = None) -> None:
        """Every value of every axis checked on `base` (and against the model's
        `diffusion_steps`) before the first point is measured, so a bad value fails at once
        instead of hours into the sweep."""
        self.validate()
        base.validate()
        if diffusion_steps is not None:
            for name in ("head_steps", "head_steps_last", "head_steps_certain"):
                values = (*getattr(self, name), getattr(base, name))
                over = [v for v in values if v > diffusion_steps]
                if over:
                    raise ValueError(
                        f"sweep {name.replace('_', '-')} value {over[0]} exceeds the model's "
                        f"{diffusion_steps} diffusion steps"
                    )
        single = {
            name: getattr(self, name)
            for name in ("guidance", "gumbel", "steps", "head_steps", "head_steps_last",
                         "uncond_every", "reveal_certain", "kv_refresh", "head_steps_certain",
                         "revise", "guidance_schedules", "gumbel_schedules")
        }  # fmt: skip
        single["order"] = self.orders
        field = {"guidance_schedules": "guidance_schedule", "gumbel_schedules": "gumbel_schedule"}
        for name, values in single.items():
            for value in values:
                candidate = {field.get(name, name): value}
                _check_candidate(base, candidate, f"{name.replace('_', '-')} value {value!r}")
        for start, stop in self.guidance_windows:
            window = dict(guidance_schedule="interval", guidance_start=start, guidance_stop=stop)
            _check_candidate(base, window, f"guidance window ({start}, {stop})")


def _check_candidate(base: SamplerConfig, change: dict, what: str) -> None:
    try:
        dataclasses.replace(base, **change).validate()
    except (ValueError, TypeError) as err:
        raise ValueError(f"sweep {what}: {err}") from None


def axes(cfg: TuneConfig) -> list[tuple[str, Callable[[SamplerConfig], list[SamplerConfig]]]]:
    """The sweep's axes in order: each maps the current best recipe to its candidates."""

    def replace(field: str, values) -> Callable[[SamplerConfig], list[SamplerConfig]]:
        return lambda cur: [dataclasses.replace(cur, **{field: v}) for v in values]

    def orders(cur: SamplerConfig) -> list[SamplerConfig]:
        out = []
        for order in cfg.orders:
            noisy = order in ("entropy", "confidence")
            for g in cfg.gumbel if noisy else (0.0,):
                out.append(dataclasses.replace(cur, order=order, gumbel=g))
        return out

    def gumbel_schedules(cur: SamplerConfig) -> list[SamplerConfig]:
        if cur.gumbel == 0:  # a ramp of zero noise is no noise
            return [cur]
        return [dataclasses.replace(cur, gumbel_schedule=s) for s in cfg.gumbel_schedules]

    def windows(cur: SamplerConfig) -> list[SamplerConfig]:
        return [cur] + [
            dataclasses.replace(
                cur, guidance_schedule="interval", guidance_start=a, guidance_stop=b
            )
            for a, b in cfg.guidance_windows
        ]

    def keeping(field: str, values) -> Callable[[SamplerConfig], list[SamplerConfig]]:
        return lambda cur: [cur, *replace(field, values)(cur)]

    speed = [
        (name, keeping(field, values))
        for name, field, values in (
            ("head-step ramp", "head_steps_last", cfg.head_steps_last),
            ("unconditional reuse", "uncond_every", cfg.uncond_every),
            ("entropy-driven steps", "reveal_certain", cfg.reveal_certain),
            ("keys/values reuse", "kv_refresh", cfg.kv_refresh),
            ("head steps of certain tokens", "head_steps_certain", cfg.head_steps_certain),
        )
        if values
    ]
    quality = [
        ("guidance", replace("guidance", cfg.guidance)),
        ("order x gumbel", orders),
        ("gumbel schedule", gumbel_schedules),
        ("guidance schedule", replace("guidance_schedule", cfg.guidance_schedules)),
        ("guidance interval", windows),
        *([("revision", keeping("revise", cfg.revise))] if cfg.revise else []),
    ]
    cost = [
        ("unmasking steps", replace("steps", cfg.steps)),
        ("head steps", replace("head_steps", cfg.head_steps)),
        *speed,
    ]
    if cfg.max_seconds_per_image is None:
        return [*quality, *cost, ("guidance (again)", replace("guidance", cfg.guidance))]
    # within a speed budget the cost axes go first (so that the quality axes compare points
    # the budget admits, rather than all being over it), then once more at the end
    again = [(f"{name} (again)", axis) for name, axis in cost]
    return [*cost, *quality, *again]


class PointCache:
    """Measured points by key, appended to a JSON-lines file as they are measured."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.points: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.points[row["key"]] = row

    def get(self, key: str) -> dict | None:
        return self.points.get(key)

    def add(self, row: dict) -> None:
        self.points[row["key"]] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def point_key(sampler: SamplerConfig, cfg: TuneConfig) -> str:
    return json.dumps([sampler_record(sampler), cfg.num, cfg.seed, cfg.reference])


def claim_folder(out: Path, fingerprint: str) -> None:
    """Mark `out` as measured with these weights, or refuse it if it was measured with others."""
    mark = out / "weights.txt"
    if mark.is_file():
        recorded = mark.read_text().strip()
        if recorded != fingerprint:
            raise ValueError(
                f"{out} holds points measured with other weights (fingerprint {recorded}; this "
                f"model and tokenizer are {fingerprint}): use a fresh --out, or delete the folder"
            )
        return
    atomic_write_text(mark, fingerprint + "\n")


def tune_recipe(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    extractor,
    out_dir: str | Path,
    cfg: TuneConfig,
    base: SamplerConfig,
    *,
    reference: ImageStatistics | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the sweep; returns {"best": sampler dict, "axes": [...], "points": [...]}."""
    from .image_sets import generate

    cfg.validate_axes(base, model.config.head.diffusion_steps)
    out = Path(out_dir)
    claim_folder(out, weights_fingerprint(model, tokenizer))
    cache = PointCache(out / "points.jsonl")
    size = tokenizer.config.image_size
    if reference is None:
        reference = _reference_statistics(cfg, size, extractor, out)

    def measure(sampler: SamplerConfig) -> dict:
        key = point_key(sampler, cfg)
        row = cache.get(key)
        if row is None:
            start = time.perf_counter()
            images, seconds = generate(
                model, tokenizer, sampler, cfg.num, batch_size=cfg.batch_size, seed=cfg.seed
            )
            stats = statistics_from_images(images, extractor, keep_features=True)
            scores = {k: float(v) for k, v in compare_statistics(stats, reference).items()}
            row = {
                "key": key,
                "sampler": sampler_record(sampler),
                **scores,
                "n": cfg.num,
                "seconds_per_image": seconds / cfg.num,
                "point_seconds": time.perf_counter() - start,
            }
            cache.add(row)
        return row

    current, history = base, []
    for name, candidates in axes(cfg):
        rows = []
        for sampler in _unique(candidates(current)):
            row = measure(sampler)
            rows.append(row)
            log(f"{name}: {_describe(sampler)} -> FID {row['fid']:.2f}, recall {_r(row)}")
        best = choose(rows, cfg.max_seconds_per_image)
        current = sampler_from_record(best["sampler"])
        history.append({"axis": name, "points": [r["key"] for r in rows], "best": best["key"]})
        log(f"{name}: kept {_describe(current)} (FID {best['fid']:.2f})")
    result = {
        "config": dataclasses.asdict(cfg),
        "base": sampler_record(base),
        "best": sampler_record(current),
        "best_point": cache.get(point_key(current, cfg)),
        "axes": history,
        "points": [cache.get(k) for h in history for k in h["points"]],
    }
    atomic_write_text(out / "tuning.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "tuning.md", tuning_markdown(result))
    return result


def choose(rows: list[dict], max_seconds_per_image: float | None = None) -> dict:
    """The lowest-FID point, among those within the speed budget if one is given (the
    fastest point when none is)."""
    if max_seconds_per_image is None:
        return min(rows, key=lambda r: r["fid"])
    within = [r for r in rows if r["seconds_per_image"] <= max_seconds_per_image]
    if not within:
        return min(rows, key=lambda r: r["seconds_per_image"])
    return min(within, key=lambda r: r["fid"])


def release_seconds_per_image(model: BiGR, batch: int, out_dir: str | Path, seed: int = 0) -> float:
    """Seconds per image of the release's recipe run by the release's algorithm on one batch
    of `batch` class-balanced labels (kept in OUT/release_timing.json, measured once)."""
    from ..official.release_sampler import release_sample_codes
    from ..recipes import RECIPES
    from .bench import timed_sampling

    path = Path(out_dir) / "release_timing.json"
    if path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("batch") == batch:
            return float(kept["seconds_per_image"])
    device = model.transformer.mask_token.device
    labels = torch.arange(batch, device=device) % model.config.num_classes
    seconds = timed_sampling(release_sample_codes, model, labels, RECIPES["release"], seed=seed)
    seconds /= batch
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"batch": batch, "seconds_per_image": seconds}) + "\n")
    return seconds


def _reference_statistics(cfg: TuneConfig, size: int, extractor, out: Path) -> ImageStatistics:
    """The reference split's statistics, computed once per folder (a resumed sweep skips the
    minutes Inception takes) and keyed by split, count, image size and feature extractor."""
    from .image_sets import real_images

    count = _reference_count(cfg)
    tag = json.dumps([cfg.reference, count, size, type(extractor).__name__])
    path = out / f"reference_{hashlib.sha256(tag.encode()).hexdigest()[:12]}.npz"
    if path.is_file():
        return load_statistics(path)
    images, _ = real_images(cfg.reference, count, size)
    stats = statistics_from_images(images, extractor, keep_features=True)
    save_statistics(stats, path)
    return stats


def _reference_count(cfg: TuneConfig) -> int:
    from ..data import open_dataset

    return len(open_dataset(cfg.reference, 32))


def _unique(configs: list[SamplerConfig]) -> list[SamplerConfig]:
    seen, out = set(), []
    for c in configs:
        key = json.dumps(sampler_record(c))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _r(row: dict) -> str:
    return f"{row['recall']:.3f}" if row.get("recall") is not None else "-"


def _describe(s: SamplerConfig) -> str:
    ramp = s.guidance_schedule
    if ramp == "interval":
        ramp = f"in ({s.guidance_start:g}, {s.guidance_stop:g}]"
    extras = "".join(
        f", {label} {value:g}"
        for label, value, off in (
            ("head steps at the end", s.head_steps_last, 0),
            ("unconditional every", s.uncond_every, 1),
            ("reveal certain", s.reveal_certain, 0.0),
            ("keys/values refreshed every", s.kv_refresh, 1),
            ("head steps of certain tokens", s.head_steps_certain, 0),
            ("revise", s.revise, 0),
        )
        if value != off
    )
    return (
        f"guidance {s.guidance:g} ({ramp}), {s.order} gumbel {s.gumbel:g} "
        f"({s.gumbel_schedule}), {s.steps} steps, {s.head_steps} head steps{extras}"
    )


def tuning_markdown(result: dict) -> str:
    cfg = result["config"]
    points = {p["key"]: p for p in result["points"] if p is not None}
    lines = [
        "# Recipe tuning",
        "",
        f"FID of {cfg['num']} class-balanced samples per point against `{cfg['reference']}` "
        f"(seed {cfg['seed']}; the test split is not used). Coordinate descent: each axis is "
        "swept with the others held at the best values so far.",
        "",
        f"Chosen: {_describe(sampler_from_record(result['best']))}.",
        "",
        "| axis | settings | FID | precision | recall | s/image | kept |",
        "|---|---|---|---|---|---|---|",
    ]
    for h in result["axes"]:
        for key in h["points"]:
            p = points[key]
            kept = "**yes**" if key == h["best"] else ""
            settings = _describe(sampler_from_record(p["sampler"]))
            lines.append(
                f"| {h['axis']} | {settings} | {p['fid']:.2f} | "
                f"{p.get('precision', float('nan')):.3f} | {p.get('recall', float('nan')):.3f} | "
                f"{p['seconds_per_image']:.3f} | {kept} |"
            )
    return "\n".join(lines) + "\n"


def write_recipe(
    model_dir: str | Path, result: dict, table: str | None = None, name: str = "recommended"
) -> Path:
    """Store the sweep's choice as the model's recipe `name`, with its evidence (each recipe
    its own: a model's `recipe.json` keeps one selection record per recipe)."""
    cfg, best = result["config"], result["best_point"]
    limit = cfg.get("max_seconds_per_image")
    method = "coordinate-descent sweep (bigr tune-recipe), lowest FID"
    if limit is not None:
        method += f" among points sampling at most {limit:.4g} s per image"
    selection = {
        "method": method,
        "reference": cfg["reference"],
        "samples_per_point": cfg["num"],
        "seed": cfg["seed"],
        "points": len(result["points"]),
        "fid": best["fid"],
        "precision": best.get("precision"),
        "recall": best.get("recall"),
        "seconds_per_image": best["seconds_per_image"],
    }
    if table:
        selection["table"] = table
    recipes = {**model_recipes(model_dir), name: sampler_from_record(result["best"])}
    kept = {k: v for k, v in model_selections(model_dir).items() if k in recipes}
    return save_recipes(model_dir, recipes, {**kept, name: selection})
