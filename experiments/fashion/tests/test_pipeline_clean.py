"""A clean-history run on the smoke budget through the size pilot and the generator stage:
both pilot sizes scored from their moving average and their training weights, the generator
scored on validation images as it goes beside the shipped generator, and the tables written."""

import json

import pytest

from bigr.data import has_fashion_mnist
from experiments.fashion import pipeline

pytestmark = pytest.mark.skipif(not has_fashion_mnist(), reason="needs dataset-fashion-mnist")


def test_the_pilot_and_the_generators_curve_run_end_to_end(tmp_path):
    args = ["--run-dir", str(tmp_path), "--smoke", "--history", "clean", "--nice", "0"]
    assert pipeline.main([*args, "tokenizer", "codes", "pilot", "generator"]) == 0
    pilot = {r["size"]: r for r in json.loads((tmp_path / "tables" / "pilot.json").read_text())}
    assert set(pilot) == {"base", "w192"}
    assert all(r["fid"] > 0 and r["raw_fid"] > 0 for r in pilot.values())
    for size in pilot:  # the raw export holds the run's training weights at the pilot's stop
        extra = json.loads((tmp_path / "pilot" / f"{size}-raw-model" / "config.json").read_text())
        assert extra["extra"]["weights"] == "raw" and extra["extra"]["trained_steps"] == 2
    curve = json.loads((tmp_path / "tables" / "generator_curve.json").read_text())
    assert [p["step"] for p in curve["points"]] == [4, 6]  # every 4 after the stop at 2, end
    assert curve["shipped"]["fid"] > 0
    assert (tmp_path / "tables" / "generator_curve.png").stat().st_size > 0
    assert (tmp_path / "generator-fp16" / "model.safetensors").is_file()
