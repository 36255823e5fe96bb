"""The study's pipeline: every stage on the smoke budget, stamps, skipping, refusal of changed
settings, and a stage cut off part-way going on from the command it was in."""

import json

import pytest

from bigr.data import has_fashion_mnist
from experiments.fashion import pipeline
from experiments.fashion.stages import FULL, NAMES, SMOKE, STAGES, Run, Stage, command

needs_data = pytest.mark.skipif(not has_fashion_mnist(), reason="needs dataset-fashion-mnist")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The whole pipeline on the smoke budget, run once for the module (a few minutes)."""
    run_dir = tmp_path_factory.mktemp("smoke")
    code = pipeline.main(["--run-dir", str(run_dir), "--smoke", "--nice", "0"])
    return run_dir, code


@needs_data
def test_smoke_runs_every_stage_and_leaves_a_pair_with_recipes_and_a_report(smoke_run):
    run_dir, code = smoke_run
    assert code == 0
    for name in NAMES:
        stamp = json.loads((run_dir / "stages" / f"{name}.json").read_text())
        assert stamp["commands"], name
        assert not (run_dir / "stages" / f"{name}.partial.json").exists()
    recipes = json.loads((run_dir / "pair" / "model" / "recipe.json").read_text())
    assert {"recommended", "fast"} <= set(recipes["recipes"])
    tables = {name: entry["table"] for name, entry in recipes["selection"].items()}
    assert tables == {
        "recommended": str(run_dir / "tables" / "tuning.md"),
        "fast": str(run_dir / "tables" / "tuning_fast.md"),
    }
    report = (run_dir / "report" / "report.md").read_text()
    assert "pooled pixels" in report  # the smoke budget says its distances are not FIDs
    assert json.loads((run_dir / "selection" / "chosen.json").read_text())["name"] in {
        "base",
        "finetune",
    }
    for label in ("flip@2", "x0@2", "bce@2", "uncond@2"):
        assert label in report


@needs_data
def test_a_second_call_skips_every_finished_stage(smoke_run, capsys):
    run_dir, code = smoke_run
    assert code == 0
    capsys.readouterr()
    assert pipeline.main(["--run-dir", str(run_dir), "--smoke"]) == 0
    out = capsys.readouterr().out
    assert out.count("done before, skipped") == len(NAMES)
    assert "$ " not in out  # no command ran


@needs_data
def test_other_settings_in_the_same_run_folder_are_refused(smoke_run, capsys):
    run_dir, code = smoke_run
    assert code == 0
    capsys.readouterr()
    assert pipeline.main(["--run-dir", str(run_dir), "--smoke", "--history", "clean"]) == 2
    err = capsys.readouterr().err
    assert "finished before with other commands" in err and "--run-dir" in err


def test_a_stage_cut_off_part_way_goes_on_from_the_command_it_was_in(tmp_path):
    marks, flag = tmp_path / "marks.txt", tmp_path / "fail-once"
    flag.touch()
    append = "import sys; open(sys.argv[1], 'a').write(sys.argv[2])"
    fail_once = (
        "import os, sys; p = sys.argv[1]; e = os.path.exists(p); "
        "os.remove(p) if e else None; sys.exit(1 if e else 0)"
    )
    stage = Stage(
        "demo",
        "three commands",
        lambda run: [
            ("python", "-c", append, str(marks), "a"),
            ("python", "-c", fail_once, str(flag)),
            ("python", "-c", append, str(marks), "b"),
        ],
        lambda run: [marks],
    )
    run = Run(dir=tmp_path / "run", budget=SMOKE)
    with pytest.raises(pipeline.StageFailed, match="exited with 1"):
        pipeline.run_stage(run, stage, print)
    assert marks.read_text() == "a"
    partial = json.loads((tmp_path / "run" / "stages" / "demo.partial.json").read_text())
    assert len(partial) == 1
    pipeline.run_stage(run, stage, print)
    assert marks.read_text() == "ab"  # the first command did not run again
    state = pipeline.stage_state(run, stage, stage.commands(run))
    assert state == "done"


def test_the_plan_names_only_the_run_folder_and_the_repository(tmp_path, capsys):
    run = tmp_path / "plan"
    assert pipeline.main(["--run-dir", str(run), "--list"]) == 0
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines() if line.startswith("    ")]
    assert any(line.startswith("bigr train-tokenizer") for line in lines)
    assert any(line.startswith("bigr train ") and "--stop-at 4210" in line for line in lines)
    for line in lines:
        for token in line.split():
            if token.startswith("/"):
                assert token.startswith(str(run)), token


def test_unknown_stages_and_a_shipped_pair_without_stages_are_refused(tmp_path, capsys):
    assert pipeline.main(["--run-dir", str(tmp_path), "nope"]) == 2
    assert "unknown stages" in capsys.readouterr().err
    assert pipeline.main(["--run-dir", str(tmp_path), "--pair", "shipped"]) == 2
    assert "name the stages" in capsys.readouterr().err
    assert pipeline.main(["--run-dir", str(tmp_path), "--pair", "shipped", "generator"]) == 2
    assert pipeline.main(["--pair", "shipped", "report"]) == 2  # no run folder given


def test_command_templates_keep_each_value_one_argument(tmp_path):
    run = Run(dir=tmp_path / "a folder with spaces", budget=FULL)
    cmd = command("bigr export {run}/x --out {out} {compile} {tune_sweep}", run, out=tmp_path)
    assert cmd[:2] == ("bigr", "export")
    assert cmd[2] == f"{run.dir}/x" and cmd[4] == str(tmp_path)
    assert cmd[5] == "--compile" and "--sweep-guidance" in cmd
    no_compile = Run(dir=tmp_path, budget=SMOKE)
    assert "--compile" not in command("bigr x {compile}", no_compile)


def test_the_shipped_history_restarts_where_the_shipped_runs_did(tmp_path):
    shipped = {s.name: s for s in STAGES}
    run = Run(dir=tmp_path, budget=FULL)
    tokenizer = shipped["tokenizer"].commands(run)
    assert (
        "--stop-at" in tokenizer[0] and tokenizer[0][tokenizer[0].index("--stop-at") + 1] == "6000"
    )
    assert "--perceptual-images" not in tokenizer[0]  # the whole batch until the restart
    generator = [c for c in shipped["generator"].commands(run) if c[1] == "train"]
    assert [c[c.index("--stop-at") + 1] for c in generator[:2]] == ["3500", "4210"]
    assert "--init" in generator[2]
    clean = Run(dir=tmp_path, budget=FULL, history="clean")
    assert not any("--init" in c for c in shipped["generator"].commands(clean))


def test_a_clean_generator_run_is_measured_on_validation_as_it_goes(tmp_path):
    stage = {s.name: s for s in STAGES}["generator"]
    clean = Run(dir=tmp_path, budget=FULL, history="clean")
    commands = stage.commands(clean)
    trains = [c for c in commands if c[1] == "train"]
    stops = [c[c.index("--stop-at") + 1] if "--stop-at" in c else "end" for c in trains]
    assert stops == ["3500", "5000", "7500", "10000", "12500", "end"]
    fids = [c[c.index("--out") + 1] for c in commands if c[1] == "fid"]
    names = [p.rsplit("/", 1)[1] for p in fids]
    steps = (5000, 7500, 10000, 12500, 15000)
    assert names == ["shipped-fid.json"] + [f"step{s}-fid.json" for s in steps]
    # each point samples the model exported at its own step, scored on validation images
    samples = [c for c in commands if c[1] == "sample-fid"]
    assert samples[1][samples[1].index("--model") + 1].endswith("curve/step5000-model")
    assert all(c[c.index("--ref") + 1] == FULL.val for c in commands if c[1] == "fid")
    assert commands[-1][:3] == ("python", "-m", "experiments.fashion.curve_table")
    # the shipped history keeps the commands that made the shipped pair: no curve
    shipped = stage.commands(Run(dir=tmp_path, budget=FULL))
    assert not any(c[1] in ("fid", "sample-fid") for c in shipped)


def test_a_longer_generator_schedule_leaves_the_pilot_runs_as_they_were(tmp_path, capsys):
    args = ["--run-dir", str(tmp_path), "--history", "clean", "--list"]
    assert pipeline.main([*args, "pilot", "generator"]) == 0
    default = capsys.readouterr().out
    assert pipeline.main([*args, "--generator-steps", "22500", "pilot", "generator"]) == 0
    longer = capsys.readouterr().out
    pilot_default = default.split("\ngenerator ")[0]
    pilot = [line for line in pilot_default.splitlines() if "bigr train" in line]
    assert pilot and all(line in longer for line in pilot)  # the pilot's commands unchanged
    generator = longer.split("\ngenerator ")[1]
    assert "--steps 22500" in generator and "--steps 15000" not in generator
    assert "step22500-fid.json" in generator and "step20000-fid.json" in generator
    assert pipeline.main([*args, "--generator-steps", "100"]) == 2
    assert "must be at least the pilot's 2000 steps" in capsys.readouterr().err
