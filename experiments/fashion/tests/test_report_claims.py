"""The claims table: one verdict per paper claim, read off section results."""

from experiments.fashion.study.claims import claims, markdown
from experiments.fashion.study.sections.probe import top1_difference

X0, BCE = "Bernoulli diffusion, predicts x0", "plain BCE head, no diffusion"


def _fid_entry(fid, minus=None, low=None, high=None):
    entry = {"fid": fid, "fids": [fid, fid]}
    if minus is not None:
        entry |= {"minus_base": minus, "minus_base_low": low, "minus_base_high": high}
    return entry


def _probe_entry(top1, n=10_000):
    return {"top1": top1, "test_size": n}


def _results(chosen=3, last=7, chosen_top1=88.0, last_top1=85.0, pixels=84.0, fid=10.0):
    return {
        "orders": {
            "base": "entropy",
            "seeds": 3,
            "floor": {"n": 2000},
            "own_gumbel": {
                "entropy": _fid_entry(12.0),
                "random": _fid_entry(15.0, 3.0, 1.0, 5.0),  # entropy clearly better
                "raster": _fid_entry(11.0, -1.0, -2.0, -0.5),  # raster clearly better
                "confidence": _fid_entry(12.2, 0.2, -1.0, 1.4),  # a draw
            },
            "bits": {"bernoulli": _fid_entry(12.0), "threshold": _fid_entry(30.0, 18, 15, 21)},
        },
        "variants": {
            "floor": {"n": 2000},
            "seeds": 3,
            "variants": {
                "x0": {**_fid_entry(14.0, 2.0, 0.5, 3.5), "kind": X0},
                "bce": {**_fid_entry(13.0, 1.0, -0.5, 2.5), "kind": BCE},
                "uncond": {"fid": None, "kind": "unconditional (no labels)"},
            },
        },
        "probe": {
            "models": {
                "model": {
                    "chosen": chosen,
                    "last": last,
                    "test": {
                        str(last): _probe_entry(last_top1),
                        str(chosen): _probe_entry(chosen_top1),
                    },
                },
                "uncond": {"chosen": 2, "last": 7, "test": {"2": _probe_entry(87.9)}},
                "x0": {"chosen": 5, "last": 7, "test": {"5": _probe_entry(87.5)}},
                "bce": {"chosen": 6, "last": 7, "test": {"6": _probe_entry(84.0)}},
            },
            "baselines": {"raw pixels": _probe_entry(pixels)},
        },
        "fid": {"model": {"fid": fid, "n": 10_000}},
    }


def test_each_claim_gets_the_verdict_its_interval_supports():
    found = {c["claim"]: c for c in claims(_results())}
    by_start = lambda text: next(c for k, c in found.items() if k.startswith(text))  # noqa: E731
    assert by_start("`entropy` order beats `random`")["verdict"] == "reproduced"
    assert by_start("`entropy` order beats `raster`")["verdict"] == "not reproduced"
    assert by_start("`entropy` order beats `confidence`")["verdict"] == "inconclusive"
    assert by_start("Bernoulli-sampled bits")["table"] == "Table 8"
    x0 = by_start("predicting bit flips beats predicting x0")
    assert x0["verdict"] == "reproduced" and x0["table"] == "Table 2"
    assert by_start("the Bernoulli diffusion head beats")["verdict"] == "inconclusive"
    # 88 vs 85 % of 10,000 test images: a 3-point gap, far outside the interval's width
    assert by_start("an intermediate block")["verdict"] == "reproduced"
    assert by_start("BiGR's features beat")["verdict"] == "reproduced"
    # conditional 88.0 vs unconditional 87.9: the interval stays above -1 point
    table4 = by_start("a conditional model's features")
    assert table4["table"] == "Table 4" and table4["verdict"] == "reproduced"
    assert by_start("one model is good at both")["verdict"] == "reproduced"
    # Table 2's accuracy side: 88.0 vs 87.5 is a draw at n = 10,000; 88.0 vs 84.0 is not
    x0_features = by_start("predicting bit flips gives better features than predicting x0")
    assert x0_features["verdict"] == "inconclusive" and x0_features["table"] == "Table 2"
    assert (
        by_start("predicting bit flips gives better features than a plain BCE head")["verdict"]
        == "reproduced"
    )
    assert not any("uncond" in c["claim"] and "variant" in c["claim"] for c in found.values())


def test_the_last_block_winning_and_a_weak_generator_are_not_reproduced():
    found = {c["claim"]: c for c in claims(_results(chosen=7, fid=40.0, chosen_top1=80.0))}
    inter = next(c for k, c in found.items() if k.startswith("an intermediate block"))
    assert inter["verdict"] == "not reproduced" and "best on validation" in inter["evidence"]
    pixels = next(c for k, c in found.items() if k.startswith("BiGR's features beat"))
    assert pixels["verdict"] == "not reproduced"  # 80 vs 84 %
    both = next(c for k, c in found.items() if k.startswith("one model is good at both"))
    assert both["verdict"] == "not reproduced"


def test_no_results_no_claims_table():
    assert claims({}) == [] and markdown({}) == []
    table = markdown(_results())
    assert table[0] == "## The paper's claims at this scale" and "**reproduced**" in "".join(table)


def test_variant_claims_use_the_equal_budget_base_and_refuse_unequal_budgets():
    results = _results()
    results["variants"]["base"] = "flip@3500"
    results["variants"]["variants"]["x0"] |= {"budget_differs": True, "trained_steps": 9}
    results["variants"]["variants"]["x0"]["base_steps"] = 7
    base = {"chosen": 4, "last": 7, "test": {"4": _probe_entry(80.0)}}
    results["probe"]["models"]["flip@3500"] = base
    found = {c["claim"]: c for c in claims(results)}
    x0 = next(c for k, c in found.items() if k.startswith("predicting bit flips beats"))
    assert x0["verdict"] == "not comparable (9 vs 7 steps)" and "`flip@3500`" in x0["evidence"]
    # Table 4 at the same budget: 80.0 (base) vs 87.9 (unconditional) is far below -1 point
    table4 = next(c for k, c in found.items() if k.startswith("a conditional model's"))
    assert table4["verdict"] == "not reproduced" and "`flip@3500` minus" in table4["evidence"]
    uncond = results["variants"]["variants"]["uncond"]
    uncond |= {"budget_differs": True, "trained_steps": 15000, "base_steps": 3500}
    table4 = next(c for c in claims(results) if c["claim"].startswith("a conditional model's"))
    assert table4["verdict"] == "not comparable (15000 vs 3500 steps)"


def test_probe_evidence_counts_test_images_as_a_whole_number():
    results = _results()
    for entry in results["probe"]["models"]["model"]["test"].values():
        entry["test_size"] = float(entry["test_size"])  # as a probe result stores it
    found = [c for c in claims(results) if c["table"] == "Table 10"]
    assert "n = 10000 test images" in found[0]["evidence"]


def test_top1_difference_is_in_points_and_its_interval_narrows_with_more_test_images():
    d, low, high = top1_difference(_probe_entry(88.0), _probe_entry(85.0))
    assert abs(d - 3.0) < 1e-9 and 2.0 < low < d < high < 4.0
    _, low_small, high_small = top1_difference(_probe_entry(88.0, 500), _probe_entry(85.0, 500))
    assert low_small < low and high_small > high and low_small < 0  # 500 images: a draw
