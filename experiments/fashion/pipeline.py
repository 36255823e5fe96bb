"""The Fashion-MNIST study from nothing to a model pair and its report: one ordered pipeline.

    python -m experiments.fashion.pipeline --run-dir DIR [STAGE ...] [--smoke] [--device cpu]

Stages, in order (`--list` prints them with their commands):

    tokenizer  train the 8x8 x 32-bit binary autoencoder on fashion-mnist:fit, export it (fp16)
    finetune   fine-tune its decoder (encoder frozen, so every image keeps its codes)
    select     choose between the two decoders on fashion-mnist:val (rFID and PSNR)
    codes      tokenize fashion-mnist:fit (+ horizontal flips) with the frozen encoder
    pilot      the first 2,000 steps of each candidate generator size, their FID-1k on
               fashion-mnist:val and a table (experiments/fashion/training/pilot.md)
    generator  train the generator on those codes; export its EMA weights (fp16); with
               --history clean, FID-2k on fashion-mnist:val every 2,500 steps from step 5,000
               beside the shipped generator's, and a table (RUN/tables/generator_curve.md)
    variants   the equal-budget training variants (x0 prediction, plain BCE, unconditional)
    export     the pair: the generator and the chosen tokenizer, side by side
    tune       choose the recommended and the fast sampling recipes on fashion-mnist:val
    fid        FID-10k of the recommended recipe against the test split
    report     every report section (FID, speed, orders, probe, inpainting, edits, variants)

Everything a stage writes goes under the run folder (`--run-dir`, or the environment variable
BIGR_RUN_DIR); a finished stage leaves `DIR/stages/NAME.json` with the commands it ran, and a
later call skips it while those commands are unchanged (a changed setting is refused: use
another run folder). An interrupted stage resumes where it stopped: the trainers continue from
their checkpoints (`--resume`), sample sets and report sections from what they kept. Training
runs at low priority (`--nice`), so other work on the machine goes on.

The full budget is the schedule that produced the pair shipped in the package, including its
two interruptions (`--history shipped`, the default): the tokenizer restarted at step 6,000
with the perceptual term on 8 images per step instead of the whole batch, and the generator
restarted at step 4,210 from its exported EMA weights (fresh optimizer, learning rate
re-warmed). `--history clean` runs both uninterrupted. `--size` picks the generator size the
generator stage trains (default: the shipped one); it goes on from that size's pilot run, on a
schedule of `--generator-steps` (default 15,000; the pilot runs keep theirs). On
the project's 2-core CPU the full budget takes about 30 hours (generator ~13 h, variants ~5 h,
report ~9 h, and the pilot ~3 h); `--smoke` runs every stage on a tiny budget in a few minutes,
to check the pipeline, not to measure anything.

`--pair shipped` points the stages after training (tune, fid, report) at the pair shipped in
the package and writes their results where the repository keeps them (experiments/fashion/
report, training/), so `--pair shipped report` re-renders the committed report from its cached
results in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .stages import FULL, NAMES, ROOT, SIZES, SMOKE, STAGES, TRAINING, Command, Run, Stage


def argv_of(command: Command) -> list[str]:
    """The process arguments of a command: `bigr ...` and `python MODULE ...` run with this
    interpreter (so the run uses the environment the pipeline runs in)."""
    if command[0] == "bigr":
        return [sys.executable, "-m", "bigr", *command[1:]]
    return [sys.executable, *command[1:]]  # ("python", "-m", MODULE, ...)


def stamp_path(run: Run, stage: Stage) -> Path:
    return run.path("stages", f"{stage.name}.json")


def shown(command: Command) -> str:
    """A command as a user would type it, with the run folder's path kept."""
    return " ".join(shlex.quote(part) for part in command)


def stage_state(run: Run, stage: Stage, commands: list[Command]) -> str:
    """'done' (stamped with these commands, outputs present), 'changed' (stamped with other
    commands) or 'todo'."""
    path = stamp_path(run, stage)
    if not path.is_file():
        return "todo"
    stamp = json.loads(path.read_text())
    if stamp.get("commands") != [list(c) for c in commands]:
        return "changed"
    return "done" if all(p.exists() for p in stage.outputs(run)) else "todo"


def run_stage(run: Run, stage: Stage, log: Callable[[str], None]) -> float:
    """Run a stage's commands in order (each must exit 0), then stamp it; seconds taken. Each
    finished command is recorded at once, so a stage cut off part-way goes on from the command
    it was in (which resumes itself) and never repeats one that finished (e.g. an export of a
    checkpoint that later commands have moved past)."""
    commands = [list(c) for c in stage.commands(run)]
    path, partial = stamp_path(run, stage), stamp_path(run, stage).with_suffix(".partial.json")
    done = json.loads(partial.read_text()) if partial.is_file() else []
    if done != commands[: len(done)]:
        done = []  # another plan: start over (each command still resumes from its own state)
    t0 = time.perf_counter()
    # this checkout's package and study, whatever else is installed
    pythonpath = [str(ROOT / "src"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    niceness = functools.partial(os.nice, run.nice) if stage.trains and run.nice else None
    for command in commands[len(done) :]:
        log(f"$ {shown(tuple(command))}")
        code = subprocess.call(argv_of(tuple(command)), cwd=ROOT, env=env, preexec_fn=niceness)
        if code != 0:
            raise StageFailed(stage.name, shown(tuple(command)), code)
        done.append(command)
        _write_json(partial, done)
    seconds = time.perf_counter() - t0
    _write_json(path, {"commands": commands, "seconds": seconds, "finished": time.time()})
    partial.unlink(missing_ok=True)
    return seconds


def _write_json(path: Path, value) -> None:
    """`value` as JSON at `path`, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


class StageFailed(RuntimeError):
    def __init__(self, stage: str, command: str, code: int) -> None:
        super().__init__(
            f"stage {stage}: `{command}` exited with {code}; fix the cause and run the "
            "pipeline again: finished stages are skipped and this one resumes"
        )
        self.code = code


def chosen_stages(names: list[str], pair: str) -> list[Stage]:
    if not names and pair == "shipped":
        raise ValueError("with --pair shipped, name the stages to run (tune, fid, report)")
    names = names or list(NAMES)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown stages {unknown}; the stages are {', '.join(NAMES)}")
    if pair == "shipped" and set(names) & set(TRAINING):
        raise ValueError(
            "--pair shipped runs only tune, fid and report (the shipped pair is already trained)"
        )
    return [s for s in STAGES if s.name in names]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.fashion.pipeline",
        description="The Fashion-MNIST study, from nothing to a model pair and its report. "
        "Finished stages are skipped; an interrupted one resumes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "stages",
        nargs="*",
        metavar="STAGE",
        help=f"stages to run ({', '.join(NAMES)}); default: all",
    )
    p.add_argument(
        "--run-dir",
        default=os.environ.get("BIGR_RUN_DIR"),
        help="run folder for everything the stages write (env BIGR_RUN_DIR)",
    )
    p.add_argument(
        "--device",
        default=os.environ.get("BIGR_DEVICE", "cpu"),
        help="torch device for every command (env BIGR_DEVICE)",
    )
    p.add_argument(
        "--smoke", action="store_true", help="a tiny budget: checks every stage in minutes"
    )
    p.add_argument(
        "--history",
        choices=["shipped", "clean"],
        default="shipped",
        help="shipped: the shipped pair's schedule with its two restarts; clean: none",
    )
    p.add_argument(
        "--pair",
        choices=["run", "shipped"],
        default="run",
        help="the pair tune/fid/report use: this run's, or the one in the package",
    )
    p.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="base",
        help="generator size the generator stage trains (the pilot stage compares them)",
    )
    p.add_argument(
        "--generator-steps",
        type=int,
        help="length of the generator stage's schedule (default 15,000, the shipped run's; "
        "the pilot runs keep theirs and the generator stage goes on from the chosen one)",
    )
    p.add_argument("--nice", type=int, default=10, help="niceness of the training stages")
    p.add_argument("--list", action="store_true", help="print the stages, their state and commands")
    return p


def _budget(args: argparse.Namespace):
    budget = dataclasses.replace(SMOKE if args.smoke else FULL, size=args.size)
    if args.generator_steps is not None:
        if args.generator_steps < budget.pilot_steps:
            raise ValueError(
                f"--generator-steps ({args.generator_steps}) must be at least the pilot's "
                f"{budget.pilot_steps} steps"
            )
        budget = dataclasses.replace(budget, generator_steps=args.generator_steps)
    return budget


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.run_dir:
        print("pipeline: error: give --run-dir DIR (or set BIGR_RUN_DIR)", file=sys.stderr)
        return 2
    try:
        budget = _budget(args)
    except ValueError as err:
        print(f"pipeline: error: {err}", file=sys.stderr)
        return 2
    run = Run(
        dir=Path(args.run_dir).resolve(),
        budget=budget,
        device=args.device,
        history=args.history,
        pair=args.pair,
        nice=args.nice,
    )
    if args.smoke and args.pair == "shipped":
        print(
            "pipeline: error: --smoke writes only into the run folder; use --pair run",
            file=sys.stderr,
        )
        return 2
    try:
        stages = chosen_stages(args.stages, args.pair)
    except ValueError as err:
        print(f"pipeline: error: {err}", file=sys.stderr)
        return 2
    run.dir.mkdir(parents=True, exist_ok=True)
    (run.dir / "budget.json").write_text(
        json.dumps(dataclasses.asdict(run.budget), indent=2) + "\n"
    )

    def log(line: str) -> None:
        print(line, flush=True)
        with open(run.path("pipeline.log"), "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    for stage in stages:
        try:
            commands = stage.commands(run)
        except FileNotFoundError:  # it reads an earlier stage's output
            commands = None
        state = "waits" if commands is None else stage_state(run, stage, commands)
        if args.list:
            print(f"{stage.name:10s} {state:8s} {stage.what}")
            for command in commands or []:
                print(f"    {shown(command)}")
            continue
        if state == "done":
            log(f"== {stage.name}: done before, skipped")
            continue
        if state == "changed":
            print(
                f"pipeline: error: stage {stage.name} finished before with other commands "
                f"(see {stamp_path(run, stage)}); use another --run-dir for other settings",
                file=sys.stderr,
            )
            return 2
        log(f"== {stage.name}: {stage.what}")
        try:
            seconds = run_stage(run, stage, log)
        except StageFailed as err:
            log(f"pipeline: error: {err}")
            return 1
        except KeyboardInterrupt:
            log(f"pipeline: interrupted in stage {stage.name}; run again to resume")
            return 130
        log(f"== {stage.name}: finished in {seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
