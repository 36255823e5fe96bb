"""The paper's claims, one verdict each, gathered from the sections' results (nothing measured
here): reproduced / not reproduced / inconclusive, with the comparison, n, seeds and interval
it rests on and the table of the paper it answers (bigr-spec.md §9).

Verdict rules: an FID comparison (orders, bits, variants) follows the orders section (Welch's
interval of the FID difference over seeds on one side of zero, or containing it); a probe
comparison uses Newcombe's interval of the difference of two test top-1 proportions (the same
test images serve both, so the interval is conservative): intermediate vs last block, features
vs raw pixels, and, with the variants, flip prediction's features vs x0 prediction's and a plain
BCE head's (Table 2's ACC1 column) and conditional vs unconditional (Table 4). Uniformity (one
model good at both) is reproduced when the generator's FID meets the embedded model's target and
its features beat raw pixels, not reproduced when neither holds, partly reproduced when one does.
"""

from __future__ import annotations

import math

from .format import fmt
from .sections.orders import verdict
from .sections.probe import top1_difference
from .sections.variants import judge

UNIFORMITY_FID = 12.0  # the generation target set for the embedded model


def _fid_claim(
    claim: str, table: str, entry: dict, base: str, n: int, seeds: int, decide=verdict
) -> dict:
    if "minus_base" not in entry:
        evidence = f"FID {fmt(entry['fid'])} vs {base}; one seed, no interval"
    else:
        evidence = (
            f"FID difference {fmt(entry['minus_base'])} [{fmt(entry['minus_base_low'])}, "
            f"{fmt(entry['minus_base_high'])}] vs {base}; n = {n} per seed, {seeds} seeds"
        )
    return {"claim": claim, "table": table, "evidence": evidence, "verdict": decide(entry)}


def _probe_claim(claim: str, table: str, a: dict, b: dict, names: str, margin: float = 0.0):
    """Claim `top-1 a - top-1 b > -margin`, judged on the difference's interval."""
    d, low, high = top1_difference(a, b)
    if low > -margin:
        outcome = "reproduced"
    elif high < -margin:
        outcome = "not reproduced"
    else:
        outcome = "inconclusive"
    evidence = (
        f"top-1 {names}: {fmt(d)} [{fmt(low)}, {fmt(high)}] points; "
        f"n = {int(a['test_size'])} test images"
    )
    return {"claim": claim, "table": table, "evidence": evidence, "verdict": outcome}


def _order_claims(results: dict) -> list[dict]:
    o = results["orders"]
    base, n, seeds = o["base"], o["floor"]["n"], o["seeds"]
    out = [
        _fid_claim(
            f"`{base}` order beats `{name}` (each at its own best Gumbel temperature)",
            "Table 3",
            entry,
            f"`{base}`",
            n,
            seeds,
        )
        for name, entry in o["own_gumbel"].items()
        if name != base
    ]
    if "threshold" in o["bits"]:
        out.append(
            _fid_claim(
                "Bernoulli-sampled bits beat bits thresholded at 0.5",
                "Table 8",
                o["bits"]["threshold"],
                "Bernoulli bits",
                n,
                seeds,
            )
        )
    return out


def _objective(kind: str) -> str | None:
    """ "x0" or "bce" for a variant trained with that objective instead of bit flips, read off
    `variants.describe`'s words; None for any other kind."""
    if kind.endswith("predicts x0"):
        return "x0"
    if kind.startswith("plain BCE"):
        return "bce"
    return None


FID_CLAIMS = {  # objective -> (claim, table) judged by FID
    "x0": ("predicting bit flips beats predicting x0", "Table 2"),
    "bce": ("the Bernoulli diffusion head beats a plain BCE head", "users' question"),
}
FEATURE_RIVALS = {"x0": "predicting x0", "bce": "a plain BCE head"}  # Table 2's ACC1 column


def _variant_claims(results: dict) -> list[dict]:
    v = results["variants"]
    n, seeds = v["floor"]["n"], v["seeds"]
    base = f"`{v['base']}` (the model's run at that step)" if v.get("base") else "the model"
    out = []
    for label, e in v["variants"].items():
        if e.get("fid") is None:
            continue
        claim, table = FID_CLAIMS.get(
            _objective(e["kind"]), (f"the report's model beats `{label}`", "—")
        )
        out.append(_fid_claim(f"{claim} (variant `{label}`)", table, e, base, n, seeds, judge))
    return out


def _probe_claims(results: dict) -> list[dict]:
    p = results["probe"]
    main = p["models"]["model"]
    chosen, last = main["test"][str(main["chosen"])], main["test"][str(main["last"])]
    out = []
    if main["chosen"] == main["last"]:
        out.append(
            {
                "claim": "an intermediate block's features beat the last block's",
                "table": "Table 10",
                "evidence": f"the last block ({main['last']}) is the best on validation",
                "verdict": "not reproduced",
            }
        )
    else:
        out.append(
            _probe_claim(
                "an intermediate block's features beat the last block's",
                "Table 10",
                chosen,
                last,
                f"block {main['chosen']} (chosen on validation) minus last block {main['last']}",
            )
        )
    pixels = p["baselines"]["raw pixels"]
    out.append(
        _probe_claim(
            "BiGR's features beat raw pixels (both through logistic regression)",
            "§5 (representation)",
            main.get("logistic", chosen),
            pixels,
            f"block {main['chosen']} minus raw pixels",
        )
    )
    kinds = results.get("variants", {}).get("variants", {})
    # the conditional side of Table 4: the variants' base when there is one (the same budget)
    base = results.get("variants", {}).get("base") or "model"
    if base != "model" and base in p["models"]:
        cond = p["models"][base]
        chosen, who = cond["test"][str(cond["chosen"])], f"`{base}`"
    else:
        who = "conditional"
    for label, m in p["models"].items():
        kind = kinds.get(label, {}).get("kind", "")
        if label in ("model", base) or not kind:
            continue
        objective = _objective(kind)
        if objective:
            claim = _probe_claim(
                f"predicting bit flips gives better features than {FEATURE_RIVALS[objective]} "
                "(ACC1)",
                "Table 2",
                chosen,
                m["test"][str(m["chosen"])],
                f"{who} minus `{label}`, each at its validation-chosen block",
            )
        elif kind.startswith("uncond"):
            claim = _uncond_claim(chosen, m, who, label)
        else:
            continue
        if kinds[label].get("budget_differs"):
            claim["verdict"] = judge(kinds[label])
        out.append(claim)
    return out


def _uncond_claim(chosen: dict, m: dict, who: str, label: str) -> dict:
    return _probe_claim(
        "a conditional model's features are nearly as good as an unconditional one's "
        "(within 1 point)",
        "Table 4",
        chosen,
        m["test"][str(m["chosen"])],
        f"{who} minus unconditional (`{label}`), each at its validation-chosen block",
        margin=1.0,
    )


def _uniformity(results: dict, probe: list[dict]) -> dict:
    fid = results["fid"]["model"]["fid"]
    beats_pixels = next(c for c in probe if "raw pixels" in c["claim"])
    good_generation = math.isfinite(fid) and fid <= UNIFORMITY_FID
    if good_generation and beats_pixels["verdict"] == "reproduced":
        outcome = "reproduced"
    elif not good_generation and beats_pixels["verdict"] == "not reproduced":
        outcome = "not reproduced"
    else:
        # one half holds and the other does not, or the probe comparison is undecided
        outcome = (
            "inconclusive"
            if beats_pixels["verdict"] == "inconclusive"
            else "partly reproduced (one of the two)"
        )
    return {
        "claim": "one model is good at both generation and representation",
        "table": "§1 (uniformity)",
        "evidence": (
            f"FID-{results['fid']['model']['n']} {fmt(fid)} (criterion <= {UNIFORMITY_FID:g}); "
            f"probe vs raw pixels: {beats_pixels['verdict']}"
        ),
        "verdict": outcome,
    }


def claims(results: dict) -> list[dict]:
    """Every claim the given section results can judge."""
    out = []
    if "orders" in results:
        out += _order_claims(results)
    if "variants" in results:
        out += _variant_claims(results)
    if "probe" in results:
        probe = _probe_claims(results)
        out += probe
        if "fid" in results:
            out.append(_uniformity(results, probe))
    return out


def markdown(results: dict) -> list[str]:
    found = claims(results)
    if not found:
        return []
    lines = [
        "## The paper's claims at this scale",
        "",
        "Each verdict is read off the sections below (rules in "
        "`experiments/fashion/study/claims.py`): "
        "*reproduced* when the interval of the difference lies on the claim's side, *not "
        "reproduced* when it lies on the other side, *inconclusive* when it straddles.",
        "",
        "| claim | paper | evidence [95 %] | verdict |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c['claim']} | {c['table']} | {c['evidence']} | **{c['verdict']}** |" for c in found
    ]
    return [*lines, ""]
