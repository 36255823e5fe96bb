"""The report's speed section (recipes timed against the release's algorithm, FID with bootstrap
intervals, the Pareto front) and the resumable sample sets it relies on."""

import json
from pathlib import Path

import pytest

from bigr.evaluation import image_sets
from bigr.sampler import SamplerConfig
from experiments.fashion.study import ReportConfig, run_report
from experiments.fashion.study import context as report_context
from experiments.fashion.study.context import Context
from experiments.fashion.study.sections.speed import RELEASE_ALGORITHM, pareto
from helpers import PixelFeatures
from helpers import class_image_folder as _dataset


def test_pareto_keeps_the_points_nothing_beats_on_both_axes():
    points = {"slow good": (2.0, 10.0), "fast bad": (0.1, 30.0), "dominated": (2.5, 12.0)}
    points["tie"] = (2.0, 10.0)  # equal on both: neither beats the other
    assert pareto(points) == {"slow good", "fast bad", "tie"}


def _speed_config(data: str, **changes) -> ReportConfig:
    """A tiny speed-section config: the release's recipe against one fast recipe."""
    fast = SamplerConfig(steps=2, head_steps=2, guidance=2.0, gumbel=0.0, order="entropy")
    settings = dict(
        recipe=SamplerConfig(steps=4, head_steps=5, guidance=2.0, gumbel=0.0),
        speed_recipes=(("fast", fast),),
        num_fid=12,
        speed_batch=4,
        speed_repeats=2,
        speed_bootstrap=5,
        batch_size=6,
        reference=data,
        train_data=data,
    )
    return ReportConfig(**{**settings, **changes})


def _run_speed(model, tokenizer, out, config) -> Path:
    return run_report(
        model,
        tokenizer,
        out,
        config,
        extractor=PixelFeatures(),
        sections=("speed",),
        progress=False,
    )


def test_speed_section_times_recipes_against_the_release_algorithm(
    tmp_path, random_bigr, tiny_tokenizer
):
    data = _dataset(tmp_path / "data")
    config = _speed_config(data)
    recommended = SamplerConfig(steps=3, head_steps=3, guidance=2.0, gumbel=0.0)
    config = _speed_config(
        data, speed_recipes=(("recommended", recommended), *config.speed_recipes)
    )
    out = tmp_path / "report"
    path = _run_speed(random_bigr, tiny_tokenizer, out, config)
    result = json.loads((out / "results" / "speed.json").read_text())
    rows = result["recipes"]
    # the release's recipe is always the baseline
    assert list(rows) == ["release", "recommended", "fast"]
    release = rows["release"]["recipe"]
    assert (release["steps"], release["head_steps"], release["guidance"]) == (20, 100, 3.0)
    assert len(result["release_algorithm_seconds_all"]) == 2
    for row in rows.values():
        assert row["n"] == 12 and len(row["seconds_all"]) == 2
        assert row["seconds_per_image"] == min(row["seconds_all"])
        assert row["speedup_vs_release_algorithm"] == pytest.approx(
            result["release_algorithm_seconds_per_image"] / row["seconds_per_image"]
        )
        # the work done per second, as a share of the matmul rate of the same run
        assert row["matmul_share"] == pytest.approx(
            row["gflop_per_image"] / row["seconds_per_image"] / result["matmul_gflops"]
        )
    # fewer steps, less work: 2 x 2 against 3 x 3 against 20 x 100
    work = [rows[name]["gflop_per_image"] for name in ("fast", "recommended", "release")]
    assert work == sorted(work) and work[0] > 0
    f = rows["fast"]
    for other in ("release", "recommended"):
        assert f[f"fid_minus_{other}"] == pytest.approx(f["fid"] - rows[other]["fid"])
        low, high = f[f"fid_minus_{other}_low"], f[f"fid_minus_{other}_high"]
        assert low <= f[f"fid_minus_{other}"] <= high
    assert "fid_minus_recommended" not in rows["recommended"]
    assert f["meets_goal"] == (
        f["speedup_vs_release_algorithm"] >= 40 and f["fid_minus_release_low"] <= 0
    )
    assert f["beats_recommended"] == (
        f["fid_minus_recommended_high"] < 0
        and f["seconds_per_image"] <= rows["recommended"]["seconds_per_image"]
    )
    # 2 x 2 steps against 20 x 100: the fast recipe is on the front
    assert f["pareto"] and f["speedup_vs_release_recipe"] > 1
    text = path.read_text()
    assert "Speed against quality per recipe" in text and RELEASE_ALGORITHM not in rows
    assert (out / "speed_recipes.png").is_file()


def test_a_cut_off_speed_section_resumes_from_the_recipes_it_measured(
    tmp_path, random_bigr, tiny_tokenizer, monkeypatch
):
    data = _dataset(tmp_path / "data")
    config = _speed_config(
        data, num_fid=8, speed_batch=2, speed_repeats=1, speed_bootstrap=4, batch_size=4
    )
    out = tmp_path / "report"

    def run():
        _run_speed(random_bigr, tiny_tokenizer, out, config)
        return json.loads((out / "results" / "speed.json").read_text())

    drawn = []
    real = report_context.generate

    def counting(model, tokenizer, sampler, count, **kwargs):
        drawn.append((sampler.steps, count))
        return real(model, tokenizer, sampler, count, **kwargs)

    monkeypatch.setattr(report_context, "generate", counting)
    first = run()
    assert drawn == [(20, 8), (2, 8)]
    kept = [json.loads(f.read_text()) for f in (out / "results" / "sets").glob("*.json")]
    assert sorted(len(k["entry"]["bootstrap"]) for k in kept) == [4, 4]
    # the section is cut off after the release recipe's set: the fast recipe's set, its codes
    # and the section's result are lost; a rerun draws only the fast recipe's samples again
    fast_set = next(
        f for f in (out / "results" / "sets").glob("*.json") if "speed_fast" in f.read_text()
    )
    fast_set.unlink()
    (out / "results" / "speed.json").unlink()
    for codes in (out / "codes").iterdir():
        for f in codes.iterdir():
            f.unlink()
    drawn.clear()
    again = run()
    assert drawn == [(2, 8)]
    for name in ("release", "fast"):
        assert again["recipes"][name]["fid"] == pytest.approx(first["recipes"][name]["fid"])
    low, high = (
        again["recipes"]["fast"][k] for k in ("fid_minus_release_low", "fid_minus_release_high")
    )
    assert (low, high) == pytest.approx(
        (
            first["recipes"]["fast"]["fid_minus_release_low"],
            first["recipes"]["fast"]["fid_minus_release_high"],
        )
    )


def test_a_larger_set_extends_a_smaller_one_drawn_before_it(
    tmp_path, random_bigr, tiny_tokenizer, monkeypatch
):
    config = _speed_config(_dataset(tmp_path / "data"), batch_size=4)
    ctx = Context(random_bigr, tiny_tokenizer, PixelFeatures(), config, tmp_path / "r", False)
    ctx.weights = "w"
    calls = []
    real = image_sets.sample_codes

    def counting(model, labels, *args, **kwargs):
        calls.append(labels.tolist())
        return real(model, labels, *args, **kwargs)

    monkeypatch.setattr(image_sets, "sample_codes", counting)
    ctx.sample_fid(config.recipe, 6, "small")
    assert len(calls) == 2
    calls.clear()
    large = ctx.sample_fid(config.recipe, 12, "large")
    # batch 0 is reused; batch 1 held 2 images in the small set and is drawn anew with 4
    classes = random_bigr.config.num_classes
    assert calls == [[i % classes for i in range(4, 8)], [i % classes for i in range(8, 12)]]
    fresh = Context(random_bigr, tiny_tokenizer, PixelFeatures(), config, tmp_path / "f", False)
    fresh.weights = "w"
    assert fresh.sample_fid(config.recipe, 12, "large")["fid"] == pytest.approx(large["fid"])
    assert len(calls) == 5  # the fresh report drew all three batches itself
