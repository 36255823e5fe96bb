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


def test_the_fit_recovers_a_power_law_and_projects_steps_to_a_value():
    steps = [5000, 7500, 10000, 12500, 15000]
    fids = [12.0 + 40.0 * (s / 1000) ** -0.5 for s in steps]
    fit = curve_table.fit_curve(steps, fids)
    assert abs(fit.floor - 12.0) < 1e-6 and abs(fit.scale - 40.0) < 1e-6
    assert fit.power == 0.5
    target = 12.0 + 40.0 * 40.0**-0.5  # the law's value at step 40,000
    assert abs(fit.steps_to(target) - 40000) < 1e-3
    assert fit.steps_to(11.0) is None  # below the floor: never


def test_no_fit_from_three_points_or_from_a_rising_curve():
    assert curve_table.fit_curve([5000, 7500, 10000], [30.0, 28.0, 27.0]) is None
    assert curve_table.fit_curve([5000, 7500, 10000, 12500], [20.0, 21.0, 22.5, 24.0]) is None


def test_the_table_says_where_the_curve_flattens_and_when_it_reaches_the_goal(tmp_path):
    steps = [5000, 7500, 10000, 12500, 15000]
    law = {s: 15.0 + 60.0 * (s / 1000) ** -1.0 for s in steps}
    log = _write_run(tmp_path, law, shipped=law[10000])
    out = tmp_path / "curve.md"
    args = ["--run-dir", str(tmp_path), "--log", str(log), "--out", str(out), "--goal", "17"]
    assert curve_table.main(args) == 0
    fit = json.loads(out.with_suffix(".json").read_text())["fit"]
    assert abs(fit["floor"] - 15.0) < 1e-6
    assert all(abs(f - 15.0) < 1e-6 for f in fit["floor_leave_one_out"])
    assert abs(fit["steps_to_shipped"] - 10000) < 1e-3
    assert abs(fit["steps_to_goal"] - 30000) < 1e-3  # 15 + 60 / 30 = 17
    text = out.read_text()
    assert "## Where it flattens" in text and "floor this run is heading for at 15.00" in text
    assert "about step 30,000 (17 hours of this machine)" in text  # 2 s/step in the log
    assert "by step 10,000 (within the measured range)" in text


def test_the_floor_range_comes_from_fits_that_each_leave_one_point_out():
    steps = [5000, 7500, 10000, 12500, 15000]
    fids = [15.0 + 60.0 * (s / 1000) ** -1.0 for s in steps]
    fids[2] += 0.5  # one noisy point: the fit without it is the exact law again
    rows = [{"step": s, "fid": f} for s, f in zip(steps, fids, strict=True)]
    law = curve_table.fit_curve(steps, fids)
    record = curve_table.projection(law, rows, None, None)
    low, high = record["floor_leave_one_out"]
    assert low < high
    assert min(abs(low - 15.0), abs(high - 15.0)) < 1e-6
