"""Speed against quality per named recipe: seconds per image timed in one run beside the release's
own algorithm, and FID with a bootstrap interval of each recipe's difference from the release's
recipe (20 unmasking steps, 100 head steps, guidance 3).

Timing: every recipe samples the same `speed_batch` class-balanced labels `speed_repeats` times,
the recipes interleaved so that a machine busy for a while slows all of them alike; the best
time per recipe is kept (all are stored), together with the matmul rate of the same run. The
baseline row is the release's recipe run by the release's algorithm
(`bigr.official.release_sampler`: the head on every token, separate guidance halves, no fusing).

Quality: FID (with precision and recall) of `num_speed` samples per recipe against the reference,
and for each recipe the difference from the release's recipe with a 95 % interval from
`speed_bootstrap` resamples of both sample sets (reference fixed; the basic bootstrap, recentred
on the observed difference). Each recipe's FID and resampled FIDs are kept in `results/sets/`,
so a section cut off part-way resumes from the recipes it had measured (the timings, minutes,
are taken again: they must come from one run).

Two goals. Speed: at least 40x faster than the release's algorithm with an FID not worse than
the release recipe's (interval not above 0). Quality: an FID below the recommended recipe's
(interval below 0) at no more seconds per image. Each row also gives the share of the matmul
rate (measured in the same run) that the recipe reaches for the work it does: its analytic
FLOPs per image (`bigr.evaluation.bench.sampling_flops`, `release_flops` for the release's
algorithm) over its seconds per image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bigr.evaluation.bench import matmul_gflops, release_flops, sampling_flops, timed_sampling

from ..config import ReportConfig
from ..context import Context, slug
from ..format import fmt

SETTINGS = (
    "recipe",
    "speed_recipes",
    "num_speed",
    "num_fid",
    "speed_batch",
    "speed_repeats",
    "speed_bootstrap",
    "compile",
)
GOAL_SPEEDUP = 40.0
RELEASE_ALGORITHM = "release recipe, release algorithm"


def candidates(config: ReportConfig) -> list[tuple[str, object]]:
    """The (name, SamplerConfig) pairs compared: `speed_recipes`, else the release's and the
    recommended recipe; the release's recipe is always among them (the FID baseline)."""
    from bigr.recipes import RECIPES

    pairs = list(config.speed_recipes) or [("recommended", config.recipe)]
    if all(name != "release" for name, _ in pairs):
        pairs.insert(0, ("release", RECIPES["release"]))
    return pairs


def _timings(ctx: Context, pairs: list[tuple[str, object]]) -> dict[str, list[float]]:
    """Seconds per image of each recipe (and of the release's algorithm on its recipe), each
    timed `speed_repeats` times, interleaved."""
    from bigr.official.release_sampler import release_sample_codes
    from bigr.recipes import RECIPES
    from bigr.sampler import sample_codes

    cfg, model = ctx.config, ctx.model
    device = model.transformer.mask_token.device
    labels = torch.arange(cfg.speed_batch, device=device) % model.config.num_classes
    runs = {name: (sample_codes, recipe) for name, recipe in pairs}
    runs[RELEASE_ALGORITHM] = (release_sample_codes, RECIPES["release"])
    times: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(cfg.speed_repeats):
        for name, (sample, recipe) in runs.items():
            seconds = timed_sampling(sample, model, labels, recipe, seed=cfg.seed + repeat)
            times[name].append(seconds / cfg.speed_batch)
    return times


def pareto(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names of the (seconds, FID) points that no other point matches or beats on both with
    one strictly better."""
    return {
        name
        for name, (s, f) in points.items()
        if not any(
            (s2 <= s and f2 <= f) and (s2 < s or f2 < f)
            for other, (s2, f2) in points.items()
            if other != name
        )
    }


def compute(ctx: Context) -> dict:
    from bigr.recipes import RECIPES

    cfg = ctx.config
    pairs = candidates(cfg)
    n = cfg.num_speed or cfg.num_fid
    times = _timings(ctx, pairs)
    gflops = matmul_gflops()
    rows, spreads = {}, {}
    for i, (name, recipe) in enumerate(pairs):
        # kept in results/sets/ with its bootstrap FIDs: a cut-off section resumes per recipe
        entry = ctx.sample_fid(
            recipe,
            n,
            f"speed_{slug(name)}",
            bootstrap=cfg.speed_bootstrap,
            bootstrap_seed=cfg.seed + i,
        )
        spreads[name] = np.asarray(entry["bootstrap"])
        rows[name] = {
            "recipe": entry["sampler"],
            "fid": entry["fid"],
            "precision": entry.get("precision"),
            "recall": entry.get("recall"),
            "n": entry["n"],
            "seconds_per_image": min(times[name]),
            "seconds_all": times[name],
        }
    baseline = min(times[RELEASE_ALGORITHM])
    base = rows["release"]
    config, batch = ctx.model.config, cfg.speed_batch
    for (name, recipe), row in zip(pairs, rows.values(), strict=True):
        row["speedup_vs_release_algorithm"] = baseline / row["seconds_per_image"]
        row["speedup_vs_release_recipe"] = base["seconds_per_image"] / row["seconds_per_image"]
        row["gflop_per_image"] = sampling_flops(config, recipe, batch)["total"] / batch / 1e9
        row["matmul_share"] = row["gflop_per_image"] / row["seconds_per_image"] / gflops
        for other in ("release", "recommended"):
            if name != other and other in rows:
                _difference_from(row, other, rows[other]["fid"], spreads[name] - spreads[other])
        if name == "release":
            continue
        row["meets_goal"] = bool(
            row["speedup_vs_release_algorithm"] >= GOAL_SPEEDUP
            and row["fid_minus_release_low"] <= 0
        )
        if name != "recommended" and "recommended" in rows:
            row["beats_recommended"] = bool(
                row["fid_minus_recommended_high"] < 0
                and row["seconds_per_image"] <= rows["recommended"]["seconds_per_image"]
            )
    release_gflop = release_flops(config, RECIPES["release"], batch)["total"] / batch / 1e9
    front = pareto({k: (r["seconds_per_image"], r["fid"]) for k, r in rows.items()})
    for name, row in rows.items():
        row["pareto"] = name in front
    return {
        "n": n,
        "batch": cfg.speed_batch,
        "repeats": cfg.speed_repeats,
        "bootstrap": cfg.speed_bootstrap,
        "release_algorithm_seconds_per_image": baseline,
        "release_algorithm_seconds_all": times[RELEASE_ALGORITHM],
        "release_algorithm_gflop_per_image": release_gflop,
        "release_algorithm_matmul_share": release_gflop / baseline / gflops,
        "matmul_gflops": gflops,
        "recipes": rows,
    }


def _difference_from(row: dict, other: str, other_fid: float, boot: np.ndarray) -> None:
    """The row's FID minus `other`'s, with a basic-bootstrap 95 % interval from the paired
    resampled FIDs' differences `boot`."""
    observed = row["fid"] - other_fid
    low, high = np.quantile(boot, [0.025, 0.975]) - boot.mean() + observed
    row[f"fid_minus_{other}"] = observed
    row[f"fid_minus_{other}_low"], row[f"fid_minus_{other}_high"] = float(low), float(high)


def _settings(recipe: dict) -> str:
    text = f"{recipe['steps']} x {recipe['head_steps']}, guidance {fmt(recipe['guidance'], 1)}"
    extras = [
        f"{key} {recipe[key]}"
        for key, off in (
            ("head_steps_last", 0),
            ("uncond_every", 1),
            ("reveal_certain", 0.0),
            ("kv_refresh", 1),
            ("head_steps_certain", 0),
            ("revise", 0),
        )
        if recipe.get(key, off) != off
    ]
    if recipe.get("guidance_schedule", "constant") != "constant":
        extras.append(f"guidance {recipe['guidance_schedule']}")
    return ", ".join([text, f"{recipe['order']} order, Gumbel {recipe['gumbel']}", *extras])


def _difference(row: dict, other: str) -> str:
    key = f"fid_minus_{other}"
    if key not in row:
        return "—"
    return f"{fmt(row[key])} [{fmt(row[key + '_low'])}, {fmt(row[key + '_high'])}]"


def _goals(name: str, row: dict) -> str:
    if name == "release":
        return "—"
    met = [f"{GOAL_SPEEDUP:g}x" if row["meets_goal"] else ""]
    met.append("beats recommended" if row.get("beats_recommended") else "")
    return ", ".join(m for m in met if m) or "neither"


def _share(share) -> str:
    return "n/a" if share is None else f"{100 * share:.0f} %"


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    from bigr.plots import plot_curves

    r = result
    rows = r["recipes"]
    lines = [
        "## Speed against quality per recipe",
        "",
        f"Seconds per image: best of {r['repeats']} interleaved calls of {r['batch']} images each "
        f"(code sampling only); matmul rate of the same run {fmt(r['matmul_gflops'], 0)} "
        f"GFLOP/s. The release's recipe run by the release's own algorithm: "
        f"{fmt(r['release_algorithm_seconds_per_image'], 4)} s/image. FID of n = {r['n']} "
        f"samples per recipe; intervals: {r['bootstrap']} bootstrap resamples of the sample sets. "
        f"Backbone under torch.compile: {'yes, on every path' if config.compile else 'no'}. "
        f"Goals: at least {GOAL_SPEEDUP:g}x faster than the release's algorithm with an FID no "
        "worse than the release recipe's (interval not above 0); an FID better than the "
        "recommended recipe's (interval below 0) at no more seconds per image. Share of the "
        "matmul rate: the recipe's analytic FLOPs per image over its seconds per image, as a "
        "share of the matmul rate (the release's algorithm: "
        f"{_share(r.get('release_algorithm_matmul_share'))}).",
        "",
        "| recipe | unmasking x head steps, settings | s/image | vs release algorithm "
        "| share of matmul rate | FID | minus release [95 %] | minus recommended [95 %] "
        "| precision | recall | Pareto | goals met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| `{name}` | {_settings(row['recipe'])} | {fmt(row['seconds_per_image'], 4)} "
            f"| {fmt(row['speedup_vs_release_algorithm'], 1)}x "
            f"| {_share(row.get('matmul_share'))} | {fmt(row['fid'])} "
            f"| {_difference(row, 'release')} | {_difference(row, 'recommended')} "
            f"| {fmt(row['precision'], 3)} | {fmt(row['recall'], 3)} "
            f"| {'yes' if row['pareto'] else ''} | {_goals(name, row)} |"
        )
    lines += ["", "![speed against FID per recipe](speed_recipes.png)", ""]
    points = {name: ([row["seconds_per_image"]], [row["fid"]]) for name, row in rows.items()}
    # the release's algorithm draws what bigr's path draws on the same recipe (the equivalence
    # test), so its point has the release recipe's FID at the release algorithm's time
    points[RELEASE_ALGORITHM] = (
        [r["release_algorithm_seconds_per_image"]],
        [rows["release"]["fid"]],
    )
    plot_curves(
        out / "speed_recipes.png",
        points,
        title=f"FID-{r['n']} against seconds per image",
        xlabel="s per image (code sampling, log scale)",
        ylabel="FID",
        logx=True,
        markers=True,
    )
    return lines
