"""The generator's validation curve: FID of each measured step (RUN/curve/stepN-fid.json,
written by a clean run's generator stage) beside the training loss and wall time at that step,
with the shipped generator measured the same way (RUN/curve/shipped-fid.json) as a yardstick.

    python -m experiments.fashion.curve_table --run-dir DIR --log RUN/generator/log.jsonl \
        --out TABLE.md

Writes TABLE.md, TABLE.json and TABLE.png (FID against steps) beside it. Run it at any time:
it reads the points measured so far.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
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


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict], yardstick: dict | None, rate: float) -> str:
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
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.fashion.curve_table")
    p.add_argument("--run-dir", required=True, help="the pipeline's run folder")
    p.add_argument("--log", required=True, help="the generator run's log.jsonl")
    p.add_argument("--out", required=True, help="the table (.md); .json and .png beside it")
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
    atomic_write_text(out, markdown(rows, yardstick, rate))
    record = {"points": rows, "shipped": yardstick, "seconds_per_step": rate}
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=1) + "\n")
    series = {"this run": ([r["step"] for r in rows], [r["fid"] for r in rows])}
    if yardstick is not None and rows:
        ends = [rows[0]["step"], rows[-1]["step"]]
        series["shipped generator"] = (ends, [yardstick["fid"]] * 2)
    plot_curves(out.with_suffix(".png"), series, title="FID on validation images",
                ylabel="FID", markers=True)  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
