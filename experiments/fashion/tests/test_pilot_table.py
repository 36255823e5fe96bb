"""The size pilot's table: per size its parameters, time per step from its log, the loss at
the end and the FID of both the moving average and the training weights."""

import json

import torch

from bigr.config import PRESETS
from bigr.model import BiGR, count_parameters
from experiments.fashion import pilot_table


def _size(run, name: str, seconds_per_step: float, fid: float, raw_fid: float | None):
    torch.manual_seed(0)
    model = BiGR(PRESETS["bigr-tiny"])
    model.save_pretrained(run / "pilot" / f"{name}-model")
    (run / "pilot" / f"{name}-fid.json").write_text(json.dumps({"fid": fid, "num_samples": 1000}))
    if raw_fid is not None:
        record = {"fid": raw_fid, "precision": 0.5, "recall": 0.25, "num_samples": 1000}
        (run / "pilot" / f"{name}-raw-fid.json").write_text(json.dumps(record))
    folder = run / f"generator-{name}"
    folder.mkdir(parents=True)
    rows = [{"step": s, "loss": 0.3 - s / 10000, "seconds": seconds_per_step * s}
            for s in range(25, 2001, 25)]  # fmt: skip
    rows.append({"step": 2025, "loss": 9.0, "seconds": 0.0})  # after the pilot: left out
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return count_parameters(model)


def test_the_table_reports_each_sizes_cost_loss_and_both_fids(tmp_path):
    params = _size(tmp_path, "a", 2.0, 130.0, 60.0)
    _size(tmp_path, "b", 3.0, 140.0, None)  # raw weights not measured (yet)
    out = tmp_path / "tables" / "pilot.md"
    args = ["--run-dir", str(tmp_path), "--steps", "2000", "--out", str(out)]
    assert pilot_table.main([*args, "a=generator-a", "b=generator-b"]) == 0
    rows = {r["size"]: r for r in json.loads(out.with_suffix(".json").read_text())}
    assert rows["a"]["parameters"] == params
    assert abs(rows["a"]["seconds_per_step"] - 2.0) < 1e-9
    assert rows["a"]["steps"] == 2000  # the step after the pilot is not read
    tail = [0.3 - s / 10000 for s in range(25, 2001, 25)][-16:]  # the last fifth of 80 lines
    assert abs(rows["a"]["loss"] - sum(tail) / len(tail)) < 1e-12
    assert rows["a"]["raw_fid"] == 60.0 and rows["b"]["raw_fid"] is None
    text = out.read_text()
    assert "| a |" in text and "| 130.00 | 60.00 | 0.500 / 0.250 |" in text
    assert "| 140.00 | n/a | n/a |" in text
    hours_a = 2.0 * 15000 / 3600
    assert f"| {hours_a:.1f} |" in text
    assert out.with_name("pilot_hours.png").stat().st_size > 0
