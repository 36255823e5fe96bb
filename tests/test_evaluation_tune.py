import json

import pytest

from bigr.evaluation.tune import TuneConfig, axes, tune_recipe, write_recipe
from bigr.recipes import recipe
from bigr.sampler import SamplerConfig
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
    tmp_path, random_bigr, tiny_tokenizer
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
    assert SamplerConfig(**result["best"]) == SamplerConfig(**points[final["best"]]["sampler"])
    assert all(p["n"] == 8 for p in points.values())
    assert (out / "tuning.md").read_text().count("**yes**") == len(result["axes"])

    # a rerun measures nothing new: every point comes from points.jsonl
    lines = (out / "points.jsonl").read_text().count("\n")
    again = tune_recipe(random_bigr, tiny_tokenizer, PixelFeatures(), out, cfg, BASE, log=print)
    assert again["best"] == result["best"]
    assert (out / "points.jsonl").read_text().count("\n") == lines

    model_dir = tmp_path / "model"
    random_bigr.save_pretrained(model_dir)
    write_recipe(model_dir, result, "tuning.md")
    assert recipe("recommended", model_dir) == SamplerConfig(**result["best"])
    saved = json.loads((model_dir / "recipe.json").read_text())["selection"]
    assert saved["reference"] == reference and saved["samples_per_point"] == 8


def test_tune_config_refuses_empty_axes():
    with pytest.raises(ValueError, match="guidance"):
        TuneConfig(guidance=()).validate()
    with pytest.raises(ValueError, match="num"):
        TuneConfig(num=1).validate()
