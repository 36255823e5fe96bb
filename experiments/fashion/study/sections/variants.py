"""Generators trained otherwise (paper Table 2 and the users' question about the diffusion):
FID-`num_sweep` over the report's seeds with the recipe, each against the report's model.

A variant is a model directory trained by `bigr train` with the same data, steps and seed
policy as the report's model except for what its configuration changes: predicting x0 instead
of bit flips (`head.predict_flip=false`), a plain BCE head with no diffusion (`head.direct`),
or no labels at all (`class_dropout=1`: an unconditional model, compared only by its features in
the probe section, paper Table 4). Each conditional variant is sampled with the recommended
recipe at the same seeds as the report's model; its FID minus the model's comes with Welch's
95 % interval, and the claim "the report's model (flip prediction with Bernoulli diffusion)
beats this variant" is reproduced, not reproduced or inconclusive as in the orders section.

`variant_base` names one variant to compare the others with instead of the report's model: a
checkpoint of the report's own training at the variants' budget (every run the same command,
stopped at one step by `bigr train --stop-at`), so that an equal-budget comparison costs a
fraction of the full schedule. A variant whose recorded step count differs from its base's is
shown but judged "not comparable": budgets must match.
"""

from __future__ import annotations

import json
from pathlib import Path

from bigr.model import BiGR

from ..config import FID_SETTINGS, ReportConfig
from ..context import Context, slug
from ..format import fmt, precision_recall_cells, shows_precision_recall
from .orders import seeded, verdict, versus

SETTINGS = (*FID_SETTINGS, "num_sweep", "variants", "variant_base", "model_steps", "seeds")
FLIPS = "Bernoulli diffusion, predicts bit flips"

# Written after the orders section when the report has no variants section.
NOT_GIVEN = [
    "Flip prediction vs predicting x0: the shipped generator was trained with flip "
    "prediction only (as released); no variant was given to this report "
    "(`--variant LABEL=DIR`), so no number is given.",
    "",
]


def describe(model: BiGR) -> str:
    """What a variant's training target is, read off its configuration."""
    c = model.config
    if c.unconditional:
        return "unconditional (no labels)"
    if c.head.direct:
        return "plain BCE head, no diffusion"
    return "Bernoulli diffusion, predicts " + ("bit flips" if c.head.predict_flip else "x0")


def judge(entry: dict) -> str:
    """The claim "the base beats this variant": the orders section's verdict when both were
    trained for the same number of steps, else "not comparable"."""
    if entry.get("budget_differs"):
        return f"not comparable ({entry['trained_steps']} vs {entry['base_steps']} steps)"
    return verdict(entry)


def compute(ctx: Context) -> dict:
    cfg, n = ctx.config, ctx.config.num_sweep
    device = ctx.model.transformer.mask_token.device
    entries, details = {}, {}
    if not cfg.variant_base:  # else the base variant is sampled with the others below
        model_entry = seeded(ctx, cfg.recipe, _grid_name(""), count=n)
        entries["model"] = {**model_entry, "kind": describe(ctx.model)}
    for label, directory in cfg.variants:
        model = BiGR.from_pretrained(directory, device=device).eval()
        if (model.config.code_bits, model.config.grid_size) != (
            ctx.model.config.code_bits,
            ctx.model.config.grid_size,
        ):
            raise ValueError(f"variant {label!r} ({directory}) does not match the tokenizer")
        extra = json.loads((Path(directory) / "config.json").read_text()).get("extra", {})
        details[label] = {
            "directory": str(directory),
            "kind": describe(model),
            "trained_steps": extra.get("trained_steps"),
        }
        if label == cfg.variant_base and details[label]["kind"] != FLIPS:
            raise ValueError(
                f"the variant base {label!r} must be trained as the report's model (bit flips "
                f"with Bernoulli diffusion), not {details[label]['kind']}"
            )
        if not model.config.unconditional:  # an unconditional model: compared by features
            entries[label] = seeded(ctx, cfg.recipe, _grid_name(label), model=model, count=n)
    base = cfg.variant_base or "model"
    versus(entries, base)
    base_steps = details[base]["trained_steps"] if cfg.variant_base else cfg.model_steps
    for label, detail in details.items():
        steps = detail["trained_steps"]
        if label != base and base_steps and steps and steps != base_steps:
            detail.update(budget_differs=True, base_steps=base_steps)
        if label in entries:
            entries[label].update(detail)
    if not cfg.variant_base:
        entries["model"]["trained_steps"] = cfg.model_steps or None
    return {
        "floor": ctx.floor(n, cfg.seed + 1),
        "seeds": cfg.seeds,
        "base": cfg.variant_base,  # "" = the report's model
        "model": entries[base],
        "variants": {
            label: entries.get(label, {**details[label], "fid": None})
            for label, _ in cfg.variants
            if label != cfg.variant_base
        },
    }


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    v = result
    n = v["floor"]["n"]
    m = v["model"]
    base = f"`{v['base']}`" if v.get("base") else "this report's model"
    budget = (
        f"The base {base} is a checkpoint of the report's own training, stopped at the "
        "variants' step count with `bigr train --stop-at` (the same LR schedule), so that "
        "every row had the same budget. "
        if v.get("base")
        else ""
    )
    pr = shows_precision_recall((m, *v["variants"].values()))
    lines = [
        f"## Training variants (paper Table 2): FID ({n} samples per seed, {v['seeds']} seeds)",
        "",
        "Each variant was trained by `bigr train` with the same data, steps and seed policy "
        "as the report's model except for what its row names, and is sampled here with the "
        f"recommended recipe at the same seeds. {budget}Real-data floor at the same n: FID "
        f"{fmt(v['floor']['fid'])}.",
        "",
        f"| model | training target | steps | FID, mean of seeds [95 %] | minus {base} [95 %] "
        f"| claim: {base} is better |" + (" precision | recall |" if pr else ""),
        "|---" * (8 if pr else 6) + "|",
        _row(v["base"] or "this report's model", m, "—", "(base)", pr),
    ]
    for label, e in v["variants"].items():
        if e.get("fid") is None:
            lines.append(
                f"| {label} | {e['kind']} | {e.get('trained_steps') or '?'} | not sampled: "
                "compared by its features (probe section) | | |" + (" | |" if pr else "")
            )
            continue
        diff = (
            f"{fmt(e['minus_base'])} [{fmt(e['minus_base_low'])}, {fmt(e['minus_base_high'])}]"
            if "minus_base" in e
            else "n/a"
        )
        lines.append(_row(label, e, diff, judge(e), pr))
    sampled = [v["base"]] + [k for k, e in v["variants"].items() if e.get("fid") is not None]
    lines += ["", "The first 100 samples of seed 0 per model, in the table's order:", ""]
    own = "this report's model"
    lines += [f"![{label or own}](samples/{_grid_name(label)}_seed0.png)" for label in sampled]
    lines += [""]
    return lines


def _grid_name(label: str) -> str:
    """The stem of a model's sample grids (`seeded` names them after its sets); "" is the
    report's own model."""
    return f"variant_{slug(label)}" if label else "variants_model"


def _row(label: str, e: dict, diff: str, claim: str, pr: bool) -> str:
    ci = "" if e.get("low") is None else f" [{fmt(e['low'])}, {fmt(e['high'])}]"
    row = (
        f"| {label} | {e['kind']} | {e.get('trained_steps') or '—'} | {fmt(e['fid'])}{ci} "
        f"| {diff} | {claim} |"
    )
    return row + (precision_recall_cells(e) if pr else "")
