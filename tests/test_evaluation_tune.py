import copy
import dataclasses
import json

import pytest
import torch

from bigr.evaluation.tune import TuneConfig, axes, choose, tune_recipe, write_recipe
from bigr.recipes import recipe
from bigr.sampler import SamplerConfig
from bigr.sampler_plan import sampler_from_record
from helpers import PixelFeatures, class_image_folder

BASE = SamplerConfig(steps=2, head_steps=2, guidance=2.0, gumbel=0.0, order="confidence")


def _config(reference: str) -> TuneConfig:
    return TuneConfig(
        num=8,
        reference=reference,
        guidance=(1.0, 2.0),
        guidance_schedules=("constant",),
        guidance_windows=((0.0, 0.5),),
        orders=("entropy", "random"),
        gumbel=(0.0, 1.0),
        gumbel_schedules=("constant", "down"),
        steps=(1, 2),
        head_steps=(2,),
        batch_size=4,
    )


def test_order_axis_gives_noise_only_to_the_certainty_orders():
    cfg = TuneConfig(orders=("entropy", "random", "raster"), gumbel=(0.0, 0.5))
    order_axis = dict(axes(cfg))["order x gumbel"]
    got = sorted((c.order, c.gumbel) for c in order_axis(BASE))
    assert got == [("entropy", 0.0), ("entropy", 0.5), ("random", 0.0), ("raster", 0.0)]


def test_sweep_keeps_the_best_point_of_each_axis_resumes_and_writes_the_recipe(
    tmp_path, random_bigr, tiny_tokenizer, monkeypatch
):
    reference = class_image_folder(tmp_path / "val")
    cfg = _config(reference)
    out = tmp_path / "tune"
    logged: list[str] = []
    result = tune_recipe(
        random_bigr, tiny_tokenizer, PixelFeatures(), out, cfg, BASE, log=logged.append
    )
    points = {p["key"]: p for p in result["points"]}
    for axis in result["axes"]:
        fids = [points[k]["fid"] for k in axis["points"]]
        assert points[axis["best"]]["fid"] == min(fids), axis["axis"]
    final = result["axes"][-1]
    assert result["best_point"]["key"] == final["best"]
    best = points[final["best"]]["sampler"]
    assert sampler_from_record(result["best"]) == sampler_from_record(best)
    assert all(p["n"] == 8 for p in points.values())
    assert (out / "tuning.md").read_text().count("**yes**") == len(result["axes"])

    # a rerun measures nothing new: every point comes from points.jsonl, and the reference's
    # statistics from the folder (the reference images are not read again)
    lines = (out / "points.jsonl").read_text().count("\n")
    assert len(list(out.glob("reference_*.npz"))) == 1

    def unread(*args, **kwargs):
        raise AssertionError("the reference was read again")

    with monkeypatch.context() as patch:
        patch.setattr("bigr.evaluation.image_sets.real_images", unread)
        again = tune_recipe(random_bigr, tiny_tokenizer, PixelFeatures(), out, cfg, BASE, log=print)
    assert again["best"] == result["best"]
    assert (out / "points.jsonl").read_text().count("\n") == lines

    # other weights never reuse those points: the folder refuses them before sampling anything
    other = copy.deepcopy(random_bigr)
    with torch.no_grad():
        next(other.parameters()).add_(0.5)
    with pytest.raises(ValueError, match="other weights"):
        tune_recipe(other, tiny_tokenizer, PixelFeatures(), out, cfg, BASE, log=print)
    assert (out / "points.jsonl").read_text().count("\n") == lines

    model_dir = tmp_path / "model"
    random_bigr.save_pretrained(model_dir)
    write_recipe(model_dir, result, "tuning.md")
    assert recipe("recommended", model_dir) == sampler_from_record(result["best"])
    saved = json.loads((model_dir / "recipe.json").read_text())["selection"]["recommended"]
    assert saved["reference"] == reference and saved["samples_per_point"] == 8

    # a sweep within a speed budget no point meets keeps the fastest point of every axis, and
    # is stored as a second recipe beside the first, each with its own evidence
    fast_cfg = dataclasses.replace(
        cfg, head_steps_last=(1,), uncond_every=(2,), max_seconds_per_image=1e-12
    )
    fast = tune_recipe(
        random_bigr, tiny_tokenizer, PixelFeatures(), tmp_path / "fast", fast_cfg, BASE, log=print
    )
    points = {p["key"]: p for p in fast["points"]}
    for axis in fast["axes"]:
        seconds = [points[k]["seconds_per_image"] for k in axis["points"]]
        assert points[axis["best"]]["seconds_per_image"] == min(seconds), axis["axis"]
    write_recipe(model_dir, fast, name="fast")
    assert recipe("fast", model_dir) == sampler_from_record(fast["best"])
    assert recipe("recommended", model_dir) == sampler_from_record(result["best"])
    saved = json.loads((model_dir / "recipe.json").read_text())["selection"]
    assert set(saved) == {"recommended", "fast"} and "at most 1e-12 s" in saved["fast"]["method"]


def test_tune_config_refuses_empty_axes():
    with pytest.raises(ValueError, match="guidance"):
        TuneConfig(guidance=()).validate()
    with pytest.raises(ValueError, match="num"):
        TuneConfig(num=1).validate()


def test_choose_takes_the_best_fid_within_the_speed_budget():
    rows = [
        {"fid": 10.0, "seconds_per_image": 2.0},
        {"fid": 12.0, "seconds_per_image": 0.5},
        {"fid": 15.0, "seconds_per_image": 0.1},
    ]
    assert choose(rows) == rows[0]
    assert choose(rows, 1.0) == rows[1]
    assert choose(rows, 0.01) == rows[2]  # nothing is fast enough: the fastest


def test_speed_axes_come_after_the_head_steps_and_keep_the_current_value():
    cfg = TuneConfig(head_steps_last=(2, 5), uncond_every=(3,), reveal_certain=())
    names = [name for name, _ in axes(cfg)]
    assert names.index("head-step ramp") == names.index("head steps") + 1
    assert "unconditional reuse" in names and "entropy-driven steps" not in names
    ramp = dict(axes(cfg))["head-step ramp"](BASE)
    assert [c.head_steps_last for c in ramp] == [0, 2, 5]
    assert TuneConfig().max_seconds_per_image is None
    # within a speed budget the cost axes come first, and again at the end
    budget = [name for name, _ in axes(dataclasses.replace(cfg, max_seconds_per_image=1.0))]
    assert budget[:4] == ["unmasking steps", "head steps", "head-step ramp", "unconditional reuse"]
    assert budget[-4:] == [f"{name} (again)" for name in budget[:4]]
    assert budget.index("guidance") == 4
    with pytest.raises(ValueError, match="max_seconds_per_image"):
        TuneConfig(max_seconds_per_image=0.0).validate()


def test_the_fast_flag_budgets_the_sweep_by_the_release_algorithm(
    tmp_path, random_bigr, tiny_tokenizer, monkeypatch
):
    import bigr.evaluation.inception as inception
    import bigr.evaluation.tune as tune
    from bigr.cli import main
    from bigr.commands.evaluate import FAST_AXES
    from bigr.model import save_tokenizer

    random_bigr.save_pretrained(tmp_path / "m")
    save_tokenizer(tiny_tokenizer, tmp_path / "t")
    seen = {}

    def fake_tune(model, tokenizer, extractor, out, cfg, base, **kwargs):
        seen["cfg"] = cfg
        return {"config": dataclasses.asdict(cfg), "best": dataclasses.asdict(base), "points": []}

    monkeypatch.setattr(inception, "InceptionFeatures", PixelFeatures)
    monkeypatch.setattr(tune, "tune_recipe", fake_tune)
    monkeypatch.setattr(tune, "release_seconds_per_image", lambda *a: 2.0)
    monkeypatch.setattr(tune, "write_recipe", lambda d, r, t, name: seen.setdefault("name", name))
    argv = ["tune-recipe", "--model", str(tmp_path / "m"), "--tokenizer", str(tmp_path / "t")]
    argv += ["--out", str(tmp_path / "o"), "--fast", "10", "--sweep-steps", "3,5", "--write"]
    assert main(argv) == 0
    cfg = seen["cfg"]
    assert cfg.max_seconds_per_image == pytest.approx(0.2)  # 2 s/image / 10
    assert cfg.steps == (3, 5)  # an explicit sweep wins over the fast axes
    assert cfg.head_steps_last == FAST_AXES["head_steps_last"] and seen["name"] == "fast"


def test_the_release_timing_is_measured_once_per_batch_size(tmp_path, random_bigr, monkeypatch):
    import bigr.official.release_sampler as release
    from bigr.evaluation.tune import release_seconds_per_image

    first = release_seconds_per_image(random_bigr, 2, tmp_path)
    assert first > 0 and (tmp_path / "release_timing.json").is_file()

    def never(*args, **kwargs):
        raise AssertionError("timed again")

    monkeypatch.setattr(release, "release_sample_codes", never)
    assert release_seconds_per_image(random_bigr, 2, tmp_path) == first
    with pytest.raises(AssertionError, match="timed again"):  # another batch size: measured
        release_seconds_per_image(random_bigr, 3, tmp_path)
