"""Screen sampler options on validation images before measuring any on the test split: for each
candidate (a named recipe of the model plus changed options), the FID of `--num` class-balanced
samples against `--ref` (validation images; never the test split) and its seconds per image,
all candidates timed in one run (interleaved calls, best of `--repeats`), beside the release's
recipe run by the release's own algorithm.

    python -m experiments.fashion.sampler_screen --out DIR [--num 1000] \
        [NAME=RECIPE[,FIELD=VALUE...] ...]

Each candidate's samples and FID stay in DIR/NAME/ and DIR/NAME-fid.json, so an interrupted
screen resumes where it stopped (sampling resumes per shard); the reference statistics are
computed once (DIR/reference.npz). Writes DIR/screen.md, screen.json and screen.png (FID against
seconds per image). The timings are taken again on every run: they must come from one run. With
`--timings-from` they are read instead from an earlier screen's screen.json (every candidate
there under its name with the same recipe and changes), so a screen at a larger `--num` can
reuse timings taken once on a quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import torch

from bigr.data import HELD_OUT_SPEC
from bigr.outputs import atomic_write_text
from bigr.plots import plot_curves
from bigr.sampler_plan import SamplerConfig

# What the screen compares by default: the shipped recipes, each new option alone and combined
DEFAULT = (
    "release=release",
    "fast=fast",
    "fast-kv3=fast,kv_refresh=3",
    "fast-kv4=fast,kv_refresh=4",
    "fast-certain2=fast,head_steps_certain=2",
    "fast-kv3-certain2=fast,kv_refresh=3,head_steps_certain=2",
    "fast8=fast,steps=8",
    "fast8-kv3=fast,steps=8,kv_refresh=3",
    "fast8-kv3-certain2=fast,steps=8,kv_refresh=3,head_steps_certain=2",
    "fast-revise2=fast,revise=2",
    "fast-kv3-revise2=fast,kv_refresh=3,revise=2",
    "fast-kv3-certain2-revise2=fast,kv_refresh=3,head_steps_certain=2,revise=2",
    "recommended=recommended",
    "recommended-revise2=recommended,revise=2",
    "recommended-revise4=recommended,revise=4",
)


@dataclasses.dataclass(frozen=True)
class Candidate:
    name: str
    recipe: str
    changes: dict

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """NAME=RECIPE[,FIELD=VALUE...], values parsed as the field's type."""
        name, _, spec = text.partition("=")
        recipe, *items = spec.split(",")
        if not name or not recipe:
            raise ValueError(f"a candidate is NAME=RECIPE[,FIELD=VALUE...], got {text!r}")
        types = {f.name: type(f.default) for f in dataclasses.fields(SamplerConfig)}
        changes = {}
        for item in items:
            field, _, value = item.partition("=")
            if field not in types:
                raise ValueError(f"{text!r}: {field!r} is not a sampler option")
            changes[field] = types[field](value)
        return cls(name, recipe, changes)

    def sampler(self, model: str) -> SamplerConfig:
        from bigr.recipes import recipe

        config = dataclasses.replace(recipe(self.recipe, model), **self.changes)
        config.validate()
        return config

    def flags(self) -> list[str]:
        out = ["--recipe", self.recipe]
        for field, value in self.changes.items():
            out += [f"--{field.replace('_', '-')}", str(value)]
        return out


def measure_fid(candidate: Candidate, args: argparse.Namespace, out: Path) -> dict:
    """Sample the candidate's set (resumable) and its FID against the reference, cached with
    the settings it was measured at: a kept FID of other settings (another `--num`, seed,
    reference or feature) is never reused."""
    result = out / f"{candidate.name}-fid.json"
    settings = {
        "num": args.num,
        "seed": args.seed,
        "ref": args.ref,
        "features": args.features,
        "recipe": candidate.recipe,
        "changes": candidate.changes,
    }
    if result.is_file():
        kept = json.loads(result.read_text())
        if kept.get("settings") == settings:
            return kept
    bigr = [sys.executable, "-m", "bigr"]
    samples = out / candidate.name
    tokenizer = ["--tokenizer", args.tokenizer] if args.tokenizer else []
    compiled = ["--compile"] if args.compile else []  # faster; the last bits may differ
    subprocess.run(
        [*bigr, "sample-fid", "--model", args.model, *tokenizer, "--out", str(samples),
         "--num-samples", str(args.num), "--batch-size", str(args.batch_size),
         "--seed", str(args.seed), *compiled, *candidate.flags()],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [*bigr, "fid", str(samples), "--ref", args.ref, "--ref-stats",
         str(out / "reference.npz"), "--out", str(result), "--features", args.features],
        check=True,
    )  # fmt: skip
    entry = {**json.loads(result.read_text()), "settings": settings}
    atomic_write_text(result, json.dumps(entry, indent=2) + "\n")
    return entry


def measure_speed(candidates: list[Candidate], args: argparse.Namespace) -> dict[str, float]:
    """Seconds per image of each candidate and of the release's algorithm on the release's
    recipe: best of `repeats` interleaved calls of `timing_batch` images, one run."""
    from bigr.evaluation.bench import timed_sampling
    from bigr.model import BiGR
    from bigr.official.release_sampler import release_sample_codes
    from bigr.recipes import RECIPES
    from bigr.sampler import sample_codes

    model = BiGR.from_pretrained(args.model).eval()
    if args.compile:
        from bigr.model import compile_backbone

        compile_backbone(model)
    labels = torch.arange(args.timing_batch) % model.config.num_classes
    runs = {c.name: (sample_codes, c.sampler(args.model)) for c in candidates}
    runs["release algorithm"] = (release_sample_codes, RECIPES["release"])
    best = {name: float("inf") for name in runs}
    for repeat in range(args.repeats):
        for name, (sample, sampler) in runs.items():
            seconds = timed_sampling(sample, model, labels, sampler, seed=args.seed + repeat)
            best[name] = min(best[name], seconds / args.timing_batch)
            print(f"{name}: {best[name]:.4f} s/image", flush=True)
    return best


# The recipes the screen names, each by a fixed rule on the validation FIDs and timings, and the
# candidate each rule measures against:
RULES = {
    "turbo": "fewest seconds per image among candidates with an FID no worse than the release "
    "recipe's",
    "refined": "lowest FID among candidates sampling no slower than the recommended recipe",
}
YARDSTICK = {"turbo": "release", "refined": "recommended"}


def missing_yardsticks(rules: tuple[str, ...], names: set[str]) -> list[str]:
    """The yardstick candidates `rules` need that `names` lacks, in rule order."""
    return [YARDSTICK[r] for r in rules if YARDSTICK[r] not in names]


def read_timings(path: str, candidates: list[Candidate]) -> dict[str, float]:
    """Seconds per image of `candidates` and of the release's algorithm from an earlier
    screen's screen.json; every candidate must be there with the same recipe and changes."""
    record = json.loads(Path(path).read_text())
    rows = {r["name"]: r for r in record["rows"]}
    out = {"release algorithm": float(record["release_algorithm_seconds_per_image"])}
    for c in candidates:
        row = rows.get(c.name)
        if row is None or row["recipe"] != c.recipe or row["changes"] != c.changes:
            raise ValueError(f"{path} has no timing of candidate {c.name} as defined here")
        out[c.name] = float(row["seconds_per_image"])
    return out


def choose(rows: list[dict], rules: tuple[str, ...] = tuple(RULES)) -> dict[str, dict]:
    """The rows the names in `rules` pick (rules above; a name no candidate qualifies for is
    left out): the release's and the recommended recipe as screened (candidates `release` and
    `recommended`, `YARDSTICK`) are the yardsticks, each needed only by its rule."""
    by_name = {r["name"]: r for r in rows}
    missing = missing_yardsticks(rules, set(by_name))
    if missing:
        raise ValueError(f"naming recipes needs the candidates {' and '.join(missing)}")
    others = [r for r in rows if r["name"] not in YARDSTICK.values()]
    chosen = {}
    if "turbo" in rules:
        turbo = [r for r in others if r["fid"] <= by_name["release"]["fid"]]
        if turbo:
            chosen["turbo"] = min(turbo, key=lambda r: r["seconds_per_image"])
    if "refined" in rules:
        limit = by_name["recommended"]["seconds_per_image"]
        refined = [r for r in others if r["seconds_per_image"] <= limit]
        if refined:
            chosen["refined"] = min(refined, key=lambda r: r["fid"])
    return chosen


def write_recipes(
    model_dir: str, chosen: dict[str, dict], args: argparse.Namespace, points: int
) -> Path:
    """Add the chosen candidates to the model folder's recipe.json, each with its evidence
    (`points`: how many candidates the screen compared)."""
    from bigr.recipes import model_recipes, model_selections, save_recipes

    recipes, selections = model_recipes(model_dir), model_selections(model_dir)
    for name, row in chosen.items():
        candidate = Candidate(row["name"], row["recipe"], row["changes"])
        recipes[name] = candidate.sampler(model_dir)
        selections[name] = {
            "method": f"sampler screen: {RULES[name]}",
            "candidate": row["name"],
            "reference": args.ref,
            "samples_per_point": args.num,
            "seed": args.seed,
            "points": points,
            "fid": row["fid"],
            "precision": row.get("precision"),
            "recall": row.get("recall"),
            "seconds_per_image": row["seconds_per_image"],
            "timings": args.timings_from or "this screen",
            "table": args.table or str(Path(args.out) / "screen.md"),
        }
    return save_recipes(model_dir, recipes, selections)


def markdown(rows: list[dict], release: float, args: argparse.Namespace) -> str:
    lines = [
        "# Sampler options on validation images",
        "",
        f"FID of {args.num} class-balanced samples per candidate (seed {args.seed}) against "
        f"`{args.ref}` (never the test split). "
        + (
            f"Seconds per image: read from the earlier screen `{args.timings_from}` (its "
            f"timings, one run); the release's recipe run by the release's own algorithm took "
            f"{release:.4f} s/image in that run."
            if args.timings_from
            else f"Seconds per image: best of {args.repeats} interleaved calls of "
            f"{args.timing_batch} images, one run"
            f"{', backbone under torch.compile' if args.compile else ''}; the release's recipe "
            f"run by the release's own algorithm took {release:.4f} s/image in the same run."
        ),
        "",
        "| candidate | recipe and changes | s/image | vs release algorithm | FID | precision "
        "| recall |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        changes = ", ".join(f"{k} {v}" for k, v in r["changes"].items()) or "as shipped"
        lines.append(
            f"| {r['name']} | `{r['recipe']}`: {changes} | {r['seconds_per_image']:.4f} | "
            f"{release / r['seconds_per_image']:.1f}x | {r['fid']:.2f} | "
            f"{r.get('precision', float('nan')):.3f} | {r.get('recall', float('nan')):.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m experiments.fashion.sampler_screen",
        description="FID on validation images and seconds per image of sampler options",
    )
    p.add_argument("--out", required=True, help="folder for the samples, FIDs and the table")
    p.add_argument("--model", default="bigr:fashion")
    p.add_argument("--tokenizer", help="default: the one the model names")
    p.add_argument(
        "--features",
        choices=("inception", "pixels"),
        default="inception",
        help="pixels: a weight-free quick check whose numbers are not FIDs (tests)",
    )
    p.add_argument("--ref", default=HELD_OUT_SPEC, help="validation images (not the test split)")
    p.add_argument("--num", type=int, default=1000, help="samples per candidate")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--timing-batch", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--compile",
        action="store_true",
        help="sample and time every candidate with the backbone under torch.compile (as the "
        "report does)",
    )
    p.add_argument(
        "--only-fid",
        action="store_true",
        help="measure the FIDs and stop; time the candidates in a later run on a quiet machine",
    )
    p.add_argument(
        "--timings-from",
        metavar="SCREEN_JSON",
        help="take every candidate's seconds per image from an earlier screen's screen.json "
        "instead of timing them (same candidate names and definitions)",
    )
    p.add_argument(
        "--write",
        metavar="MODEL_DIR",
        help="name recipes in MODEL_DIR/recipe.json by fixed rules: "
        + " and ".join(f"{name} ({rule})" for name, rule in RULES.items())
        + "; needs the candidates release (turbo) and recommended (refined)",
    )
    p.add_argument(
        "--rules",
        default=",".join(RULES),
        help=f"with --write: which names to choose, comma-separated (default: {','.join(RULES)})",
    )
    p.add_argument("--table", help="where the committed table will be (recorded with --write)")
    p.add_argument("candidates", nargs="*", metavar="NAME=RECIPE[,FIELD=VALUE...]")
    args = p.parse_args(argv)
    if re.search(r":test\b", args.ref):
        p.error("the screen chooses settings: give validation images, not the test split")
    try:
        candidates = [Candidate.parse(text) for text in args.candidates or DEFAULT]
        for c in candidates:
            c.sampler(args.model)  # every candidate checked before any work
    except ValueError as err:
        p.error(str(err))
    rules = tuple(r.strip() for r in args.rules.split(",") if r.strip())
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        p.error(f"--rules: unknown {unknown or 'empty'}; known: {', '.join(RULES)}")
    missing = missing_yardsticks(rules, {c.name for c in candidates})
    if args.write and missing:
        p.error(
            f"--write names recipes against the candidates {' and '.join(missing)}: add them "
            "(or choose --rules)"
        )
    if args.timings_from:
        try:
            timings = read_timings(args.timings_from, candidates)
        except (OSError, ValueError, KeyError) as err:
            p.error(f"--timings-from: {err}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fids = {c.name: measure_fid(c, args, out) for c in candidates}
    if args.only_fid:
        print(f"FIDs kept in {out}; no timings taken (--only-fid)")
        return 0
    speed = timings if args.timings_from else measure_speed(candidates, args)
    rows = [
        {
            "name": c.name,
            "recipe": c.recipe,
            "changes": c.changes,
            "seconds_per_image": speed[c.name],
            **{k: fids[c.name].get(k) for k in ("fid", "precision", "recall")},
        }
        for c in candidates
    ]
    release = speed["release algorithm"]
    text = markdown(rows, release, args)
    if args.write:
        chosen = choose(rows, rules)
        text += "\n" + "".join(
            f"- `{name}` = {chosen[name]['name']}: {RULES[name]}\n"
            if name in chosen
            else f"- `{name}`: no candidate qualifies ({RULES[name]}); not written\n"
            for name in rules
        )
        if chosen:
            print(f"wrote {write_recipes(args.write, chosen, args, len(rows))}")
    atomic_write_text(out / "screen.md", text)
    record = {
        "release_algorithm_seconds_per_image": release,
        "num": args.num,
        "ref": args.ref,
        "seed": args.seed,
        "timings_from": args.timings_from,
    }
    atomic_write_text(out / "screen.json", json.dumps({**record, "rows": rows}, indent=1) + "\n")
    plot_curves(
        out / "screen.png",
        {r["name"]: ([r["seconds_per_image"]], [r["fid"]]) for r in rows},
        title=f"FID-{args.num} on validation against seconds per image",
        xlabel="s per image (log scale)",
        ylabel="FID",
        logx=True,
        markers=True,
    )
    print(f"wrote {out / 'screen.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
