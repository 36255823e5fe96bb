"""Unmasking order (entropy, confidence, random, raster) and Bernoulli vs thresholded bits, with
seeds and intervals (the paper's Tables 3 and 8).

Every point is measured `seeds` times (sample draws seeded seed, seed + 1, ...) against the test
reference: the mean FID with its 95 % Student-t interval, and the difference from the `entropy`
order (or from Bernoulli bits) with Welch's interval. Orders are compared twice: at the recipe's
Gumbel temperature (one shared value), and each certainty order (`entropy`, `confidence`) at its
own best temperature, chosen among `gumbel_sweep` by FID against `selection_data` (held-out
training images, never the test split). `random` and `raster` ignore the temperature. A claim
is *reproduced* when its difference interval lies on its side of zero, *not reproduced* when it
lies on the other side, *inconclusive* when it contains zero.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bigr.evaluation.intervals import difference_interval, mean_interval

from ..config import FID_SETTINGS, ReportConfig
from ..context import Context
from ..format import fmt, precision_recall_cells, shows_precision_recall

SETTINGS = (*FID_SETTINGS, "orders_count", "orders", "seeds", "gumbel_sweep", "selection_data")
TEMPERATURE_ORDERS = ("entropy", "confidence")  # orders whose scores Gumbel noise perturbs


def seeded(ctx: Context, sampler, name: str, *, model=None, count: int | None = None) -> dict:
    """One point over the report's seeds: per-seed FIDs and their mean interval (`count`
    samples per seed, default `orders_count`; `model` default the report's)."""
    cfg = ctx.config
    count = count or cfg.orders_count
    runs = [
        ctx.sample_fid(sampler, count, f"{name}_seed{s}", model=model, seed=s)
        for s in range(cfg.seed, cfg.seed + cfg.seeds)
    ]
    fids = [r["fid"] for r in runs]
    est = mean_interval(fids) if len(fids) > 1 else None
    return {
        "gumbel": sampler.gumbel,
        "fids": fids,
        "fid": sum(fids) / len(fids),
        "low": None if est is None else est.low,
        "high": None if est is None else est.high,
        "precision": sum(r.get("precision", float("nan")) for r in runs) / len(runs),
        "recall": sum(r.get("recall", float("nan")) for r in runs) / len(runs),
        "n": count,
    }


def _best_gumbel(ctx: Context, order: str) -> dict:
    """FID against the selection split for each temperature of the sweep; the best one."""
    cfg = ctx.config
    fids = {
        g: ctx.sample_fid(
            dataclasses.replace(cfg.recipe, order=order, gumbel=g),
            cfg.orders_count,
            f"select_{order}_g{g}",
            reference=cfg.selection_data,
        )["fid"]
        for g in cfg.gumbel_sweep
    }
    return {"fids": {str(g): f for g, f in fids.items()}, "best": min(fids, key=fids.get)}


def versus(entries: dict, base: str) -> None:
    """Adds to each entry its difference from `base` (FID - FID of base) with Welch's interval."""
    for name, e in entries.items():
        if name == base or len(e["fids"]) < 2:
            continue
        d = difference_interval(e["fids"], entries[base]["fids"])
        e["minus_base"], e["minus_base_low"], e["minus_base_high"] = d.estimate, d.low, d.high


def compute(ctx: Context) -> dict:
    cfg = ctx.config
    recipe = cfg.recipe
    shared = {
        o: seeded(ctx, dataclasses.replace(recipe, order=o), f"order_{o}") for o in cfg.orders
    }
    selection = {o: _best_gumbel(ctx, o) for o in cfg.orders if o in TEMPERATURE_ORDERS}
    own = {
        o: (
            seeded(
                ctx, dataclasses.replace(recipe, order=o, gumbel=selection[o]["best"]), f"own_{o}"
            )
            if o in selection
            else dict(shared[o])  # a copy: its difference is from this table's base
        )
        for o in cfg.orders
    }
    bits = {
        b: seeded(ctx, dataclasses.replace(recipe, bits=b), f"bits_{b}")
        for b in ("bernoulli", "threshold")
    }
    base = "entropy" if "entropy" in cfg.orders else cfg.orders[0]
    for table in (shared, own):
        versus(table, base)
    versus(bits, "bernoulli")
    return {
        "floor": ctx.floor(cfg.orders_count, cfg.seed + 1),
        "base": base,
        "seeds": cfg.seeds,
        "selection_data": cfg.selection_data,
        "orders": shared,
        "own_gumbel": own,
        "selection": selection,
        "bits": bits,
    }


def verdict(entry: dict) -> str:
    """'reproduced' if the base beats this entry (difference interval above zero), 'not
    reproduced' if this entry beats the base, else 'inconclusive'."""
    low, high = entry.get("minus_base_low"), entry.get("minus_base_high")
    if low is None:
        return "inconclusive (one seed)"
    if low > 0:
        return "reproduced"
    if high < 0:
        return "not reproduced"
    return "inconclusive"


def comparison_table(table: dict, base: str, what: str) -> list[str]:
    """Header and one row per entry; precision and recall only when the sets measured them."""
    pr = shows_precision_recall(table.values())
    head = "| | Gumbel | FID, mean of seeds [95 %] | minus base [95 %] | claim: base is better |"
    lines = [head + (" precision | recall |" if pr else ""), "|---" * (7 if pr else 5) + "|"]
    for name, e in table.items():
        ci = "" if e["low"] is None else f" [{fmt(e['low'])}, {fmt(e['high'])}]"
        if name == base:
            diff, claim = "—", "(base)"
        else:
            diff = (
                f"{fmt(e['minus_base'])} [{fmt(e['minus_base_low'])}, {fmt(e['minus_base_high'])}]"
                if "minus_base" in e
                else "n/a"
            )
            claim = verdict(e)
        row = f"| {what} `{name}` | {fmt(e['gumbel'])} | {fmt(e['fid'])}{ci} | {diff} | {claim} |"
        lines.append(row + (precision_recall_cells(e) if pr else ""))
    return lines


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    o = result
    base = o["base"]
    n = o["floor"]["n"]
    lines = [
        "## Unmasking order and bit sampling (paper Tables 3 and 8)",
        "",
        f"n = {n} samples per seed, {o['seeds']} seeds; real-data floor at the same n: FID "
        f"{fmt(o['floor']['fid'])}. Base: `{base}` order (orders), Bernoulli bits (bits).",
        "",
        "At one shared Gumbel temperature (the recipe's):",
        "",
        *comparison_table(o["orders"], base, "order"),
        "",
        f"Each certainty order at its own best temperature (chosen on `{o['selection_data']}`, "
        "not the test split):",
        "",
        *comparison_table(o["own_gumbel"], base, "order"),
        "",
    ]
    for order, sel in o["selection"].items():
        sweep = ", ".join(f"{g}: {fmt(f)}" for g, f in sel["fids"].items())
        lines.append(f"- `{order}` selection FIDs by temperature: {sweep} -> {sel['best']}")
    lines += ["", "Bits drawn from the head's probabilities vs thresholded at 0.5:", ""]
    lines += comparison_table(o["bits"], "bernoulli", "bits")
    lines += [""]
    return lines
