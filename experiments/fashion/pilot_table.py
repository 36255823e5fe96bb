"""The size pilot's table and curves: for each candidate generator size, its parameters, wall
time per training step (from its log), the training loss at the end of the pilot (mean of the
last logged fifth, to smooth the per-step noise) and the FID of its EMA weights on validation
images; plus the loss against steps and against hours.

    python -m experiments.fashion.pilot_table --run-dir DIR --steps N --out TABLE.md \
        NAME=RUN_SUBFOLDER ...

Reads DIR/RUN_SUBFOLDER/log.jsonl, DIR/pilot/NAME-model and DIR/pilot/NAME-fid.json (written
by the pipeline's pilot stage); writes TABLE.md, TABLE.json and TABLE.png beside it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import torch

from bigr.config import config_from_json
from bigr.model import build_model, count_parameters
from bigr.outputs import atomic_write_text
from bigr.plots import plot_curves


def read_log(path: Path, steps: int) -> list[dict]:
    """The log's loss lines up to `steps` (a resumed run's log holds each step once)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r and r["step"] <= steps]


def seconds_per_step(rows: list[dict]) -> float:
    """Median wall time per step between consecutive log lines of one process (a resume
    restarts the clock, and the first interval of a process includes compiling)."""
    rates = []
    for a, b in itertools.pairwise(rows):
        gap, dt = b["step"] - a["step"], b.get("seconds", 0) - a.get("seconds", 0)
        if gap > 0 and dt > 0 and a.get("seconds", 0) > 0:
            rates.append(dt / gap)
    return statistics.median(rates[1:] or rates) if rates else float("nan")


def parameters(model_dir: Path) -> int:
    config = config_from_json(json.loads((model_dir / "config.json").read_text()))
    with torch.device("meta"):
        return count_parameters(build_model(config))


def summarise(run_dir: Path, sizes: dict[str, str], steps: int) -> list[dict]:
    rows = []
    for name, folder in sizes.items():
        log = read_log(run_dir / folder / "log.jsonl", steps)
        tail = log[-max(1, len(log) // 5) :]
        fid = json.loads((run_dir / "pilot" / f"{name}-fid.json").read_text())
        raw_path = run_dir / "pilot" / f"{name}-raw-fid.json"
        raw = json.loads(raw_path.read_text()) if raw_path.is_file() else {}
        rows.append(
            {
                "size": name,
                "parameters": parameters(run_dir / "pilot" / f"{name}-model"),
                "steps": log[-1]["step"] if log else 0,
                "seconds_per_step": seconds_per_step(log),
                "loss": statistics.fmean(r["loss"] for r in tail) if tail else float("nan"),
                "fid": fid["fid"],
                "raw_fid": raw.get("fid"),
                "raw_precision": raw.get("precision"),
                "raw_recall": raw.get("recall"),
                "num_samples": fid.get("num_samples"),
                "num_reference": fid.get("num_reference"),
                "features": fid.get("features", "inception"),
                "curve": [(r["step"], r["loss"]) for r in log],
            }
        )
    return rows


def measure(record: dict | None) -> str:
    """What the distances are: FIDs, unless `bigr fid` ran on other features (a quick check)."""
    features = (record or {}).get("features", "inception")
    return "FID" if features == "inception" else f"Fréchet distance on {features} (not an FID)"


def markdown(rows: list[dict], steps: int, hours_for: int) -> str:
    n = rows[0]["num_samples"] if rows else 0
    what = measure(rows[0] if rows else None)
    lines = [
        f"# Generator size pilot: {steps} steps of each size on the same codes",
        "",
        f"{what} of {n} samples against the validation images, one seed, of the moving average "
        "(EMA, decay 0.999: after so few steps it still holds part of the initial weights) "
        "and of the training weights (raw); loss = mean "
        "training loss over the last fifth of the logged steps; time per step measured in the "
        f"run (this machine); hours = projected for {hours_for:,} steps.",
        "",
        "| size | parameters | s/step | hours | loss | FID, EMA | FID, raw | precision / "
        "recall, raw |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        hours = r["seconds_per_step"] * hours_for / 3600
        raw = "n/a" if r.get("raw_fid") is None else f"{r['raw_fid']:.2f}"
        pr = "n/a"
        if r.get("raw_precision") is not None:
            pr = f"{r['raw_precision']:.3f} / {r['raw_recall']:.3f}"
        lines.append(
            f"| {r['size']} | {r['parameters'] / 1e6:.2f}M | {r['seconds_per_step']:.2f} | "
            f"{hours:.1f} | {r['loss']:.4f} | {r['fid']:.2f} | {raw} | {pr} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.fashion.pilot_table")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--steps", type=int, required=True, help="the pilot's steps")
    p.add_argument("--hours-for", type=int, default=15000, help="steps the hours column projects")
    p.add_argument("--out", required=True, help="the table (.md); .json and .png beside it")
    p.add_argument("sizes", nargs="+", metavar="NAME=FOLDER")
    args = p.parse_args(argv)
    sizes = dict(item.split("=", 1) for item in args.sizes)
    rows = summarise(Path(args.run_dir), sizes, args.steps)
    out = Path(args.out)
    atomic_write_text(out, markdown(rows, args.steps, args.hours_for))
    atomic_write_text(out.with_suffix(".json"), json.dumps(rows, indent=1) + "\n")
    by_step = {r["size"]: tuple(zip(*r["curve"], strict=True)) for r in rows if r["curve"]}
    plot_curves(out.with_suffix(".png"), by_step, title="training loss", ylabel="loss")
    by_hour = {
        name: ([s * r["seconds_per_step"] / 3600 for s in x], y)
        for r in rows
        for name, (x, y) in [(r["size"], by_step.get(r["size"], ((), ())))]
    }
    plot_curves(out.with_name(out.stem + "_hours.png"), by_hour, xlabel="hours (projected)",
                title="training loss against wall time", ylabel="loss")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
