"""The generator's validation curve: FID of each measured step (RUN/curve/stepN-fid.json,
written by a clean run's generator stage) beside the training loss and wall time at that step,
with the shipped generator measured the same way (RUN/curve/shipped-fid.json) as a yardstick.

    python -m experiments.fashion.curve_table --run-dir DIR --log RUN/generator/log.jsonl \
        --out TABLE.md

Writes TABLE.md, TABLE.json and TABLE.png (FID against steps) beside it. Run it at any time:
it reads the points measured so far. From four points on it also fits FID = floor + scale x
(step / 1000)^-power and says where the curve flattens and when it would reach the shipped
generator's FID (and `--goal`, if given): an extrapolation, labelled as one.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from bigr.outputs import atomic_write_text
from bigr.plots import plot_curves

from .pilot_table import measure, read_log, seconds_per_step

POINT = re.compile(r"step(\d+)-fid\.json")


def loss_near(log: list[dict], step: int, window: int = 250) -> float:
    """Mean logged loss over the `window` steps up to `step` (per-step losses are noisy)."""
    near = [r["loss"] for r in log if step - window < r["step"] <= step]
    return statistics.fmean(near) if near else float("nan")


def points(run_dir: Path, log: list[dict], rate: float) -> list[dict]:
    """One row per measured step, in step order (`rate`: the run's seconds per step)."""
    rows = []
    for path in (run_dir / "curve").glob("step*-fid.json"):
        match = POINT.fullmatch(path.name)
        if not match:
            continue
        step, fid = int(match.group(1)), json.loads(path.read_text())
        rows.append(
            {
                "step": step,
                "hours": step * rate / 3600,
                "loss": loss_near(log, step),
                "fid": fid["fid"],
                "precision": fid.get("precision"),
                "recall": fid.get("recall"),
                "num_samples": fid.get("num_samples"),
                "num_reference": fid.get("num_reference"),
                "features": fid.get("features", "inception"),
            }
        )
    return sorted(rows, key=lambda r: r["step"])


POWERS = tuple(round(0.05 * k, 2) for k in range(2, 61))  # 0.1 ... 3.0


@dataclass(frozen=True)
class Fit:
    """FID = floor + scale * (step / 1000) ** -power, least squares over the measured points."""

    floor: float
    scale: float
    power: float
    sse: float

    def at(self, step: float) -> float:
        return self.floor + self.scale * (step / 1000) ** -self.power

    def steps_to(self, fid: float) -> float | None:
        """The step at which the fitted curve comes down to `fid`; None below its floor."""
        if fid <= self.floor:
            return None
        return 1000 * (self.scale / (fid - self.floor)) ** (1 / self.power)


def fit_curve(steps: list[int], fids: list[float]) -> Fit | None:
    """The best decreasing power law over a grid of powers (floor and scale solved exactly for
    each); None with fewer than four points or when no decreasing law fits."""
    if len(steps) < 4:
        return None
    best, my = None, statistics.fmean(fids)
    for power in POWERS:
        x = [(s / 1000) ** -power for s in steps]
        mx = statistics.fmean(x)
        var = sum((v - mx) ** 2 for v in x)
        scale = sum((v - mx) * (y - my) for v, y in zip(x, fids, strict=True)) / var
        if scale <= 0:
            continue
        floor = my - scale * mx
        sse = sum((floor + scale * v - y) ** 2 for v, y in zip(x, fids, strict=True))
        if best is None or sse < best.sse:
            best = Fit(floor, scale, power, sse)
    return best


def projection(fit: Fit, rows: list[dict], yardstick: dict | None, goal: float | None) -> dict:
    """`fit` (over `rows`) as a record, with its floor's leave-one-out range (from five points)
    and the steps at which it reaches the shipped generator's FID and the goal."""
    steps, fids = [r["step"] for r in rows], [r["fid"] for r in rows]
    floors = []
    if len(rows) >= 5:
        for i in range(len(rows)):
            other = fit_curve(steps[:i] + steps[i + 1 :], fids[:i] + fids[i + 1 :])
            if other is not None:
                floors.append(other.floor)
    record = asdict(fit) | {
        "floor_leave_one_out": [min(floors), max(floors)] if floors else None,
        "goal": goal,
        "steps_to_goal": None if goal is None else fit.steps_to(goal),
        "shipped_fid": None if yardstick is None else yardstick["fid"],
        "steps_to_shipped": None if yardstick is None else fit.steps_to(yardstick["fid"]),
    }
    return record


def _steps_text(steps: float | None, last: int, rate: float) -> str:
    if steps is None:
        return "never reached: it lies below the fitted floor"
    if steps <= last:
        return f"reached by step {steps:,.0f} (within the measured range)"
    return f"reached at about step {steps:,.0f} ({steps * rate / 3600:.0f} hours of this machine)"


def projection_text(fit: dict, last: int, rate: float, what: str) -> list[str]:
    text = (
        f"A least-squares fit over the points, {what} = {fit['floor']:.2f} + "
        f"{fit['scale']:.2f} x (step / 1000)^-{fit['power']:.2f}, puts the floor this run is "
        f"heading for at {fit['floor']:.2f}."
    )
    if fit["floor_leave_one_out"]:
        low, high = fit["floor_leave_one_out"]
        text += f" Leaving out one point at a time moves it between {low:.2f} and {high:.2f}."
    lines = ["", "## Where it flattens", "", text]
    bullets = []
    if fit["shipped_fid"] is not None:
        bullets.append(
            f"- the shipped generator's {fit['shipped_fid']:.2f}: "
            f"{_steps_text(fit['steps_to_shipped'], last, rate)};"
        )
    if fit["goal"] is not None:
        bullets.append(
            f"- the goal, {fit['goal']:.2f}: {_steps_text(fit['steps_to_goal'], last, rate)}."
        )
    if bullets:
        lines += ["", "Past the last measured step these are extrapolations, not measurements:"]
    return lines + bullets


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict], yardstick: dict | None, rate: float, fit: dict | None = None) -> str:
    n = rows[0]["num_samples"] if rows else (yardstick or {}).get("num_samples")
    what = measure(rows[0] if rows else yardstick)
    lines = [
        "# Generator validation curve",
        "",
        f"{what} of the EMA weights, {n} samples against the validation images, one seed, the "
        "pilot's recipe; loss = mean training loss over the 250 steps up to the point; hours = "
        f"steps x the run's median {rate:.2f} s/step (this machine).",
        "",
        "| step | hours | loss | FID | precision | recall |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']:,} | {r['hours']:.1f} | {r['loss']:.4f} | {r['fid']:.2f} | "
            f"{_num(r['precision'], 3)} | {_num(r['recall'], 3)} |"
        )
    if yardstick is not None:
        lines += [
            "",
            f"The shipped generator, measured the same way (same tokenizer, recipe, n and seed): "
            f"FID {yardstick['fid']:.2f}, precision {_num(yardstick.get('precision'), 3)}, "
            f"recall {_num(yardstick.get('recall'), 3)}.",
        ]
    if fit is not None and rows:
        what = "FID" if measure(rows[0]) == "FID" else "distance"
        lines += projection_text(fit, rows[-1]["step"], rate, what)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.fashion.curve_table")
    p.add_argument("--run-dir", required=True, help="the pipeline's run folder")
    p.add_argument("--log", required=True, help="the generator run's log.jsonl")
    p.add_argument("--out", required=True, help="the table (.md); .json and .png beside it")
    p.add_argument("--goal", type=float, help="an FID on the curve's scale to project the fit to")
    args = p.parse_args(argv)
    run_dir, out = Path(args.run_dir), Path(args.out)
    log = read_log(Path(args.log), steps=10**9)
    rate = seconds_per_step(log)
    rows = points(run_dir, log, rate)
    shipped = run_dir / "curve" / "shipped-fid.json"
    yardstick = json.loads(shipped.read_text()) if shipped.is_file() else None
    if not rows and yardstick is None:
        print(f"curve_table: error: no measured points in {run_dir / 'curve'}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    law = fit_curve([r["step"] for r in rows], [r["fid"] for r in rows])
    fit = None if law is None else projection(law, rows, yardstick, args.goal)
    atomic_write_text(out, markdown(rows, yardstick, rate, fit))
    record = {"points": rows, "shipped": yardstick, "seconds_per_step": rate, "fit": fit}
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=1) + "\n")
    series = {"this run": ([r["step"] for r in rows], [r["fid"] for r in rows])}
    if yardstick is not None and rows:
        ends = [rows[0]["step"], rows[-1]["step"]]
        series["shipped generator"] = (ends, [yardstick["fid"]] * 2)
    if law is not None:  # drawn to twice the last measured step
        last = rows[-1]["step"]
        xs = [rows[0]["step"] + (2 * last - rows[0]["step"]) * i / 50 for i in range(51)]
        series["power-law fit"] = (xs, [law.at(x) for x in xs])
    plot_curves(out.with_suffix(".png"), series, title="FID on validation images",
                ylabel="FID", markers=True, dashed=["power-law fit"])  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
