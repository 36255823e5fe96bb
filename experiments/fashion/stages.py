"""The pipeline's stages: what each one runs, for a budget (`FULL` made the shipped pair,
`SMOKE` checks every stage in minutes), and what it leaves behind.

Each command is written as the command line a person would type, with `{name}` slots filled
from the run (paths and budget values), so the printed plan reads like a shell script.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHIPPED = ROOT / "src" / "bigr" / "assets" / "fashion"
# Generator sizes the size pilot compares (`--set` flags on the bigr-fashion preset); "base" is
# the shipped generator's (128 wide, 8 blocks, 2.57M parameters).
SIZES = {
    "base": "",
    "w192": "--set dim=192 --set heads=6 --set head.dim=192",
    "w256": "--set dim=256 --set heads=8 --set head.dim=256",
}
VARIANT_CHANGE = {
    "x0": "--set head.predict_flip=false",
    "bce": "--set head.predict_flip=false --set head.direct=true",
    "uncond": "--set class_dropout=1",
}


@dataclass(frozen=True, kw_only=True)
class Budget:
    """How much each stage trains and measures."""

    fit: str = "fashion-mnist:fit"
    val: str = "fashion-mnist:val"
    tokenizer_steps: int = 8000
    tokenizer_restart: int = 6000  # the shipped run's restart (perceptual images change there)
    tokenizer_batch: int = 32
    tokenizer_warmup: int = 300
    perceptual_start: int = 4800
    perceptual_images: int = 8
    tokenizer_every: int = 500  # eval and checkpoint interval
    eval_images: int = 256
    finetune_steps: int = 1500
    finetune_warmup: int = 50
    finetune_every: int = 250
    select_images: int = 2000
    generator_steps: int = 15000
    generator_batch: int = 256
    generator_warmup: int = 300
    warm_start: int = 4210  # the shipped run restarted from its exported EMA here
    variant_steps: int = 3500  # the variants stop here on the generator's schedule
    size: str = "base"  # the generator size the generator stage trains (a key of SIZES)
    # w256 (17 h for the full 15,000 steps on the 2-core CPU, measured) is left out: its long
    # run would not fit the hours available; w192 (12.3 h) is the larger candidate
    pilot_sizes: tuple[str, ...] = ("w192", "base")
    pilot_steps: int = 2000  # each candidate's first steps on the full schedule
    pilot_schedule: int = 15000  # the schedule the pilot runs start (`generator_steps` may differ)
    pilot_fid_num: int = 1000
    # the shipped pair's recommended recipe, spelled out (pilot models have no recipe.json)
    pilot_recipe: str = (
        "--recipe release --steps 16 --order random --guidance 1.5 --gumbel 0 --head-steps 25"
    )
    checkpoint_every: int = 250
    sample_every: int = 2000
    # a clean run's generator stage measures FID on validation images every `curve_every`
    # steps after the variants' stop (and at the end), with the pilot's recipe; 0: never
    curve_every: int = 2500
    curve_num: int = 2000
    compile: bool = True
    tune_num: int = 1000
    tune_batch: int = 250
    tune_sweep: str = (
        "--sweep-guidance 1.25,1.5,2,3 --sweep-gumbel 0.1,0.2,0.3,0.5,1 --sweep-steps 8,12,16 "
        "--sweep-head-steps 25,50 --recipe release --order entropy --gumbel 0.2 --guidance 2 "
        "--steps 12 --head-steps 25"
    )
    fast_sweep: str = (
        "--fast 10 --sweep-guidance 1.5,2,3 --sweep-gumbel 0.1,0.2,0.3 --batch-size 100"
    )
    fid_num: int = 10000
    fid_batch: int = 250
    features: str = "inception"  # "pixels" (not FIDs) only to check the pipeline quickly
    report: str = (
        "--num-sweep 2000 --num-orders 1000 --seeds 3 --num-speed 10000 --speed-batch 50 "
        "--speed-repeats 2 --steps-sweep 4,8,12 --head-sweep 10,25,50"
    )


FULL = Budget()
SMOKE = Budget(
    fit="fashion-mnist:fit[:64]",
    val="fashion-mnist:val[:32]",
    tokenizer_steps=4,
    tokenizer_restart=2,
    tokenizer_batch=4,
    tokenizer_warmup=1,
    perceptual_start=1,
    perceptual_images=2,
    tokenizer_every=2,
    eval_images=4,
    finetune_steps=2,
    finetune_warmup=1,
    finetune_every=2,
    select_images=8,
    generator_steps=6,
    generator_batch=8,
    generator_warmup=1,
    warm_start=4,
    variant_steps=2,
    pilot_sizes=("base", "w192"),
    pilot_steps=2,
    pilot_schedule=6,
    pilot_fid_num=8,
    pilot_recipe="--recipe release --steps 2 --head-steps 2",
    checkpoint_every=2,
    sample_every=0,
    curve_every=4,
    curve_num=8,
    compile=False,
    tune_num=4,
    tune_batch=4,
    tune_sweep="--sweep-guidance 1.5 --sweep-gumbel 0.2 --sweep-steps 2 --sweep-head-steps 2 "
    "--recipe release --steps 2 --head-steps 2",
    fast_sweep="--fast 1 --sweep-guidance 1.5 --sweep-gumbel 0.2 --sweep-steps 2 "
    "--sweep-head-steps 2 --sweep-head-steps-last 1 --sweep-uncond-every 2 "
    "--sweep-reveal-certain 0.5",
    fid_num=8,
    fid_batch=8,
    features="pixels",
    report="--num-fid 8 --num-sweep 4 --num-orders 4 --seeds 2 --gumbel-sweep 0,0.3 "
    "--num-speed 4 --speed-batch 4 --speed-repeats 1 --speed-bootstrap 2 --steps-sweep 2 "
    "--head-sweep 2 --probe-train 48 --probe-val 16 --probe-test 16 --probe-epochs 1 "
    "--inpaint-images 4 --edit-images 2 --batch-size 4 "
    "--selection-data fashion-mnist:val[:32] --steps 2 --head-steps 2 "
    # every section but speed, a timing benchmark (its code is tested on its own)
    "--sections tokenizer,fid,sweeps,orders,probe,inpaint,edits,variants",
)


@dataclass(frozen=True)
class Run:
    """One invocation's choices: where, how much, on which device and pair."""

    dir: Path
    budget: Budget
    device: str = "cpu"
    history: str = "shipped"  # "shipped": the shipped pair's two restarts; "clean": none
    pair: str = "run"  # the pair tune/fid/report use: "run" (this run's) or "shipped"
    nice: int = 10

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    @property
    def shipped(self) -> bool:
        return self.pair == "shipped"

    @property
    def model(self) -> Path:
        return SHIPPED / "model" if self.shipped else self.path("pair", "model")

    @property
    def tokenizer(self) -> Path:
        return SHIPPED / "tokenizer" if self.shipped else self.path("pair", "tokenizer")

    @property
    def report_dir(self) -> Path:
        return HERE / "report" if self.shipped else self.path("report")

    @property
    def tables_dir(self) -> Path:
        return HERE / "training" if self.shipped else self.path("tables")

    def generator_dir(self, size: str | None = None) -> Path:
        """The run folder of the generator of `size` (default: the budget's)."""
        size = size or self.budget.size
        return self.path("generator" if size == "base" else f"generator-{size}")

    def variant_dirs(self) -> dict[str, Path]:
        """label -> model folder of the flip base and each variant, all at `variant_steps`."""
        steps = self.budget.variant_steps
        root = HERE / "models" / "variants" if self.shipped else self.path("variants")
        return {f"{v}@{steps}": root / f"{v}-{steps}" for v in ("flip", *VARIANT_CHANGE)}

    def slots(self) -> dict[str, object]:
        """What `{name}` in a command template may name."""
        b = self.budget
        return {
            **{k: getattr(b, k) for k in b.__dataclass_fields__},
            "run": self.dir,
            "device": self.device,
            "compile": "--compile" if b.compile else "",
            "model": self.model,
            "tokenizer": self.tokenizer,
            "report_dir": self.report_dir,
            "size_flags": SIZES[b.size],
        }


Command = tuple[str, ...]  # ("bigr", ARGS...) or ("python", "-m", MODULE, ARGS...)


def command(template: str, run: Run, **extra: object) -> Command:
    """The template split like a shell line; a token `{name}` becomes the run's value (one
    argument, whatever it contains; an empty value drops out, a list gives one argument per
    item, a budget field holding several flags is split into them), and `{name}` inside a
    token is substituted as text."""
    slots = {**run.slots(), **extra}
    out: list[str] = []
    for token in shlex.split(template):
        if token.startswith("{") and token.endswith("}") and token.count("{") == 1:
            value = slots[token[1:-1]]
            if isinstance(value, (list, tuple)):
                out += map(str, value)
            elif isinstance(value, str) and value.startswith("--"):
                out += shlex.split(value)  # flags kept as one string in the budget
            elif value != "":
                out.append(str(value))
        else:
            out.append(token.format(**slots))
    return tuple(out)


TOKENIZER = (
    "bigr train-tokenizer --data {fit} --eval-data {val} --preset bae-fashion "
    "--set code_bits=32 --set res_blocks=2 --lr-schedule cosine --perceptual-resolution 64 "
    "--disc-start 1000000000 --eval-images {eval_images} --export-weights raw --log-every 50 "
    "--batch-size {tokenizer_batch} --device {device} --resume"
)
GENERATOR = (
    "bigr train --codes {run}/codes --preset bigr-fashion --set code_bits=32 --out {out} "
    "--tokenizer {run}/tokenizer-fp16 --steps {generator_steps} --batch-size {generator_batch} "
    "--lr 1e-3 --warmup {generator_warmup} --lr-schedule cosine --min-lr 1e-5 --ema-decay 0.999 "
    "--checkpoint-every {checkpoint_every} --sample-every {sample_every} --log-every 25 "
    "--per-sample-mask --precision fp32 {compile} --device {device} --resume {size_flags}"
)
EXPORT = "bigr export {source} --out {out} --dtype float16"


def _tokenizer(run: Run) -> list[Command]:
    train = (
        f"{TOKENIZER} --out {{run}}/tokenizer --steps {{tokenizer_steps}} --lr 1e-3 "
        "--warmup {tokenizer_warmup} --min-lr 1e-5 --perceptual-weight 0.1 "
        "--perceptual-start {perceptual_start} --eval-every {tokenizer_every} "
        "--checkpoint-every {tokenizer_every}"
    )
    images = " --perceptual-images {perceptual_images}"
    phases = [train + images]
    if run.history == "shipped":  # the perceptual term on the whole batch until the restart
        phases = [train + " --stop-at {tokenizer_restart}", train + images]
    export = _export(run, run.path("tokenizer", "model"), run.path("tokenizer-fp16"))
    return [*(command(p, run) for p in phases), export]


def _finetune(run: Run) -> list[Command]:
    train = (
        f"{TOKENIZER} --init {{run}}/tokenizer-fp16 --freeze-encoder --codes threshold "
        "--out {run}/finetune --steps {finetune_steps} --lr 2e-5 --disc-lr 1e-4 "
        "--warmup {finetune_warmup} --min-lr 1e-6 --perceptual-weight 1.0 "
        "--perceptual-images {finetune_images} --eval-every {finetune_every} "
        "--checkpoint-every {finetune_every}"
    )
    images = 2 * run.budget.perceptual_images
    export = _export(run, run.path("finetune", "model"), run.path("finetune-fp16"))
    return [command(train, run, finetune_images=images), export]


def _select(run: Run) -> list[Command]:
    return [
        command(
            "python -m experiments.fashion.select_tokenizer --data {val} --num {select_images} "
            "--out {run}/selection --device {device} --features {features} "
            "base={run}/tokenizer-fp16 finetune={run}/finetune-fp16",
            run,
        )
    ]


def _codes(run: Run) -> list[Command]:
    return [
        command(
            "bigr tokenize --tokenizer {run}/tokenizer-fp16 --data {fit} --out {run}/codes "
            "--deterministic --flips --batch-size 256 --device {device}",
            run,
        )
    ]


def _train(
    run: Run, out: Path, extra: str = "", size: str | None = None, steps: int | None = None
) -> Command:
    """The generator's training command for `out` (`steps`: the schedule's length, default the
    budget's `generator_steps`)."""
    return command(
        f"{GENERATOR} {extra}", run, out=out, size_flags=SIZES[size or run.budget.size],
        generator_steps=steps or run.budget.generator_steps,
    )  # fmt: skip


def _export(run: Run, source: Path, out: Path) -> Command:
    return command(EXPORT, run, source=source, out=out)


def _pilot(run: Run) -> list[Command]:
    """Each candidate size's first `pilot_steps` on the full schedule (the chosen one's
    generator stage goes on from there), its EMA's FID on validation images, then the table."""
    commands = []
    for size in run.budget.pilot_sizes:
        model = run.path("pilot", f"{size}-model")
        commands += [
            _train(run, run.generator_dir(size), "--stop-at {pilot_steps}", size=size,
                   steps=run.budget.pilot_schedule),
            _export(run, run.generator_dir(size) / "model", model),
            *_val_fid(run, model, run.path("pilot", f"{size}-samples"),
                      run.path("pilot", f"{size}-fid.json")),
        ]  # fmt: skip
    # an average with decay 0.999 still holds 0.999^2000 = 13.5 % of the initial weights at
    # step 2,000: each size's training weights are measured too (once every size has trained)
    for size in run.budget.pilot_sizes:
        model = run.path("pilot", f"{size}-raw-model")
        source = run.generator_dir(size) / "model"
        commands += [
            command(EXPORT + " --weights raw", run, source=source, out=model),
            *_val_fid(run, model, run.path("pilot", f"{size}-raw-samples"),
                      run.path("pilot", f"{size}-raw-fid.json")),
        ]  # fmt: skip
    table = (
        "python -m experiments.fashion.pilot_table --run-dir {run} --steps {pilot_steps} "
        "--out {tables}/pilot.md {sizes}"
    )
    sizes = [f"{s}={run.generator_dir(s).name}" for s in run.budget.pilot_sizes]
    return [*commands, command(table, run, tables=run.tables_dir, sizes=sizes)]


def _val_fid(
    run: Run, model: Path, samples: Path, result: Path, num: str = "pilot_fid_num"
) -> list[Command]:
    """Sample `model` with the pilot's recipe (the run's tokenizer; the budget field `num`
    images) and score the samples against the validation images, into `result`."""
    return [
        command(
            "bigr sample-fid --model {model} --tokenizer {run}/tokenizer-fp16 "
            f"--num-samples {{{num}}} --batch-size {{fid_batch}} --out {{samples}} "
            "{pilot_recipe} {compile} --device {device}",
            run, model=model, samples=samples,
        ),
        # the validation images' features are the same for every model: computed once per n
        command(
            "bigr fid {samples} --ref {val} --out {result} --device {device} "
            f"--features {{features}} --ref-stats {{run}}/refs/val-{{{num}}}.npz",
            run, samples=samples, result=result,
        ),
    ]  # fmt: skip


def _generator(run: Run) -> list[Command]:
    first = run.generator_dir()
    base = run.variant_dirs()[f"flip@{run.budget.variant_steps}"]
    steps = [
        _train(run, first, "--stop-at {variant_steps}"),
        _export(run, first / "model", base),  # the variants' equal-budget base
    ]
    if run.history == "shipped":  # stopped at warm_start, restarted from the exported EMA
        warm, again = run.path("generator-warm-start"), run.path("generator-restarted")
        steps += [
            _train(run, first, "--stop-at {warm_start}"),
            _export(run, first / "model", warm),
            _train(run, again, f"--init {shlex.quote(str(warm))}"),
            _export(run, again / "model", run.path("generator-fp16")),
        ]
    else:  # measured on validation images as it goes, the shipped generator beside it
        final = run.path("generator-fp16")
        steps = _curve_point(run, SHIPPED / "model", "shipped") + steps
        for stop in curve_points(run.budget):
            model = run.path("curve", f"step{stop}-model")
            steps += [
                _train(run, first, f"--stop-at {stop}"),
                _export(run, first / "model", model),
                *_curve_point(run, model, f"step{stop}"),
                _curve_table(run),  # the table so far, after every point
            ]
        steps += [_train(run, first), _export(run, first / "model", final)]
        if run.budget.curve_every:
            steps += [*_curve_point(run, final, f"step{run.budget.generator_steps}"),
                      _curve_table(run)]  # fmt: skip
    return steps


def _curve_table(run: Run) -> Command:
    table = (
        "python -m experiments.fashion.curve_table --run-dir {run} --log {log} "
        "--out {tables}/generator_curve.md"
    )
    return command(table, run, log=run.generator_dir() / "log.jsonl", tables=run.tables_dir)


def curve_points(budget: Budget) -> list[int]:
    """The steps before the end at which a clean run's generator is measured: multiples of
    `curve_every` after the variants' stop."""
    if not budget.curve_every:
        return []
    every, end = budget.curve_every, budget.generator_steps
    return [s for s in range(every, end, every) if s > budget.variant_steps]


def _curve_point(run: Run, model: Path, name: str) -> list[Command]:
    """FID of `curve_num` samples of `model` on validation images: RUN/curve/NAME-fid.json."""
    if not run.budget.curve_every:
        return []
    samples, result = run.path("curve", f"{name}-samples"), run.path("curve", f"{name}-fid.json")
    return _val_fid(run, model, samples, result, num="curve_num")


def _variants(run: Run) -> list[Command]:
    commands = []
    for name, change in VARIANT_CHANGE.items():
        out = run.path(f"variant-{name}")
        target = run.variant_dirs()[f"{name}@{run.budget.variant_steps}"]
        commands += [
            _train(run, out, f"{change} --stop-at {{variant_steps}}"),
            _export(run, out / "model", target),
        ]
    return commands


def _pair(run: Run) -> list[Command]:
    chosen = json.loads(run.path("selection", "chosen.json").read_text())["tokenizer"]
    return [
        _export(run, run.path("generator-fp16"), run.path("pair", "model")),
        _export(run, Path(chosen), run.path("pair", "tokenizer")),
    ]


def _tune(run: Run) -> list[Command]:
    common = (
        "bigr tune-recipe --model {model} --tokenizer {tokenizer} --num {tune_num} --ref {val} "
        "--batch-size {tune_batch} {compile} --device {device} --features {features} --write"
    )
    keep = "python -m experiments.fashion.keep_tables {sweep} {tables} {names} --model {model}"
    tables = run.tables_dir
    return [
        command(f"{common} --out {{run}}/tune {{tune_sweep}}", run),
        command(keep + " --recipe recommended", run, sweep=run.path("tune"), tables=tables,
                names=["tune_points.jsonl", "tuning.md", "tuning.json"]),
        command(f"{common} --out {{run}}/tune-fast {{fast_sweep}}", run),
        command(keep + " --recipe fast", run, sweep=run.path("tune-fast"), tables=tables,
                names=["tune_fast_points.jsonl", "tuning_fast.md", "tuning_fast.json"]),
    ]  # fmt: skip


def _fid(run: Run) -> list[Command]:
    return [
        command(
            "bigr sample-fid --model {model} --tokenizer {tokenizer} --recipe recommended "
            "--num {fid_num} --batch-size {fid_batch} --out {run}/fid-samples {compile} "
            "--device {device}",
            run,
        ),
        command(
            "bigr fid {run}/fid-samples --ref fashion-mnist:test --ref-num {ref_num} "
            "--out {report_dir}/fid10k.json --device {device} --features {features}",
            run,
            ref_num=min(run.budget.fid_num, 10000),
        ),
    ]


def _report(run: Run) -> list[Command]:
    variants = ""
    labels = run.variant_dirs()
    if all((d / "config.json").is_file() for d in labels.values()):
        variants = f"--variant-base flip@{run.budget.variant_steps}"
        for label, directory in labels.items():
            variants += f" --variant {shlex.quote(f'{label}={directory}')}"
    name = "bigr:fashion" if run.shipped else "pipeline pair"
    return [
        command(
            "python -m experiments.fashion.study --out {report_dir} --model {model} "
            f"--tokenizer {{tokenizer}} --name {shlex.quote(name)} {{report}} {{compile}} "
            f"--device {{device}} --features {{features}} {variants}",
            run,
        )
    ]


@dataclass(frozen=True)
class Stage:
    name: str
    what: str
    commands: Callable[[Run], list[Command]]  # computed when the stage runs
    outputs: Callable[[Run], list[Path]]
    trains: bool = False  # runs at the low priority of `--nice`


def _safetensors(*parts: str) -> Callable[[Run], list[Path]]:
    return lambda run: [run.path(*parts, "model.safetensors")]


STAGES = (
    Stage("tokenizer", "train the tokenizer, export it (fp16)", _tokenizer,
          _safetensors("tokenizer-fp16"), trains=True),
    Stage("finetune", "fine-tune the tokenizer's decoder (codes kept)", _finetune,
          _safetensors("finetune-fp16"), trains=True),
    Stage("select", "choose the decoder on validation images", _select,
          lambda r: [r.path("selection", "chosen.json")]),
    Stage("codes", "tokenize the training images and their flips", _codes,
          lambda r: [r.path("codes")]),
    Stage("pilot", "short runs of candidate generator sizes, their FID on validation", _pilot,
          lambda r: [r.tables_dir / "pilot.md"], trains=True),
    Stage("generator", "train the generator, export its EMA (fp16)", _generator,
          _safetensors("generator-fp16"), trains=True),
    Stage("variants", "train the equal-budget variants", _variants,
          lambda r: [d / "model.safetensors" for d in r.variant_dirs().values()], trains=True),
    Stage("export", "the model pair: generator + chosen tokenizer", _pair,
          lambda r: [r.model / "model.safetensors", r.tokenizer / "model.safetensors"]),
    Stage("tune", "choose the recommended and fast recipes on validation", _tune,
          lambda r: [r.model / "recipe.json"]),
    Stage("fid", "FID-10k of the recommended recipe on the test split", _fid,
          lambda r: [r.report_dir / "fid10k.json"]),
    Stage("report", "every report section", _report, lambda r: [r.report_dir / "report.md"]),
)  # fmt: skip
NAMES = tuple(s.name for s in STAGES)
TRAINING = (
    "tokenizer", "finetune", "select", "codes", "pilot", "generator", "variants", "export"
)  # fmt: skip
