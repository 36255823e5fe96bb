"""The generator's validation curve table: points read from the run folder in step order, the
loss near each, the shipped yardstick, and a refusal when nothing was measured."""

import json

from experiments.fashion import curve_table


def _write_run(tmp_path, points: dict[int, float], shipped: float | None = None):
    (tmp_path / "curve").mkdir(parents=True, exist_ok=True)
    for step, fid in points.items():
        record = {"fid": fid, "precision": 0.7, "recall": 0.4, "num_samples": 2000}
        (tmp_path / "curve" / f"step{step}-fid.json").write_text(json.dumps(record))
    if shipped is not None:
        record = {"fid": shipped, "precision": 0.6, "recall": 0.3, "num_samples": 2000}
        (tmp_path / "curve" / "shipped-fid.json").write_text(json.dumps(record))
    log = tmp_path / "log.jsonl"
    rows = [{"step": s, "loss": 1.0 / s, "seconds": 2.0 * s} for s in range(25, 15001, 25)]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return log


def test_points_come_in_step_order_with_the_loss_and_hours_at_each(tmp_path):
    log = _write_run(tmp_path, {10000: 22.0, 5000: 25.0, 7500: 23.5}, shipped=24.0)
    out = tmp_path / "tables" / "curve.md"
    code = curve_table.main(["--run-dir", str(tmp_path), "--log", str(log), "--out", str(out)])
    assert code == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert [p["step"] for p in record["points"]] == [5000, 7500, 10000]
    assert [p["fid"] for p in record["points"]] == [25.0, 23.5, 22.0]
    first = record["points"][0]
    assert abs(first["hours"] - 5000 * 2.0 / 3600) < 1e-9  # 2 s per step in the log
    expected = sum(1.0 / s for s in range(4775, 5001, 25)) / 10  # the 250 steps up to 5,000
    assert abs(first["loss"] - expected) < 1e-12
    text = out.read_text()
    assert "| 7,500 |" in text and "FID 24.00" in text
    assert out.with_suffix(".png").stat().st_size > 0


def test_a_run_with_nothing_measured_is_refused(tmp_path, capsys):
    log = _write_run(tmp_path, {})
    code = curve_table.main(["--run-dir", str(tmp_path), "--log", str(log),
                             "--out", str(tmp_path / "c.md")])  # fmt: skip
    assert code == 2 and "no measured points" in capsys.readouterr().err


def test_distances_on_other_features_are_not_called_fids(tmp_path):
    log = _write_run(tmp_path, {5000: 3.0})
    record = json.loads((tmp_path / "curve" / "step5000-fid.json").read_text())
    (tmp_path / "curve" / "step5000-fid.json").write_text(
        json.dumps(record | {"features": "pixels"})
    )
    out = tmp_path / "c.md"
    assert curve_table.main(["--run-dir", str(tmp_path), "--log", str(log), "--out", str(out)]) == 0
    assert "Fréchet distance on pixels (not an FID)" in out.read_text()
