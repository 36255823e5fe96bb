"""Multi-process training under torchrun with gloo: DDP, gradient accumulation and FSDP give the
one-process weights, and a sharded run resumes. One file, so its torchruns never overlap."""

import json

import pytest
import torch

from bigr.config import PRESETS
from bigr.model import BiGR
from helpers import TRAIN_ARGS, max_diff, random_codes, train_cli, train_state

STEPS = 4


@pytest.fixture(scope="module")
def codes(tmp_path_factory):
    return random_codes(tmp_path_factory.mktemp("codes") / "codes")


@pytest.fixture(scope="module")
def one_process(codes, tmp_path_factory):
    """The reference: one process, STEPS steps."""
    run = tmp_path_factory.mktemp("one") / "one"
    train_cli(*_common(codes), "--steps", str(STEPS), "--out", str(run))
    return run


def _common(codes):
    return ["--codes", str(codes), *TRAIN_ARGS, "--checkpoint-every", "2"]


def test_two_gloo_processes_and_accumulation_match_one_process(codes, one_process, tmp_path):
    common = [*_common(codes), "--steps", str(STEPS)]
    train_cli(*common, "--out", str(tmp_path / "two"), torchrun=2)
    train_cli(*common, "--out", str(tmp_path / "accum"), "--grad-accum", "4")
    one, two, accum = (train_state(r) for r in (one_process, tmp_path / "two", tmp_path / "accum"))
    assert max_diff(one["model"], two["model"]) < 1e-5
    assert max_diff(one["model"], accum["model"]) < 1e-5
    torch.manual_seed(0)
    init = BiGR(PRESETS["bigr-tiny"]).state_dict()
    assert max_diff(one["model"], init) > 1e-3  # training moved the weights
    losses = [
        [json.loads(line)["loss"] for line in (r / "log.jsonl").read_text().splitlines()]
        for r in (one_process, tmp_path / "two")
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_fsdp_on_two_gloo_processes_stops_resumes_and_matches_one_process(
    codes, one_process, tmp_path
):
    # a sharded run stopped at step 2 and resumed (optimizer and EMA state re-sharded)
    part = tmp_path / "part"
    train_cli(*_common(codes), "--steps", "2", "--out", str(part), "--fsdp", torchrun=2)
    assert train_state(part)["step"] == 2
    train_cli(
        *_common(codes), "--steps", str(STEPS), "--out", str(part), "--fsdp", "--resume", torchrun=2
    )
    one, sharded = train_state(one_process), train_state(part)
    assert max_diff(one["model"], sharded["model"]) < 1e-5
    assert max_diff(one["ema"], sharded["ema"]) < 1e-5
    assert BiGR.from_pretrained(part / "model").config == PRESETS["bigr-tiny"]


SPY = """
import json, os, sys
sys.path.insert(0, {tests!r})
from test_train_memory import live_tensor_bytes
from bigr.cli import main
from bigr.train import generator

records, step_fn = {{}}, generator.train_step

def spy(step, *args, **kwargs):
    records[step] = live_tensor_bytes()
    return step_fn(step, *args, **kwargs)

generator.train_step = spy
# a checkpoint's snapshot lives while its background write is in flight: written at once here,
# so that what is measured is what stays after the write
generator.BackgroundWriter.submit = lambda self, write: write()
code = main(sys.argv[2:])
with open(f"{{sys.argv[1]}}.{{os.environ['RANK']}}.json", "w") as f:
    json.dump(records, f)
sys.exit(code)
"""


def test_fsdp_holds_no_gathered_checkpoint_or_resume_state(codes, tmp_path):
    """Live tensor bytes on each rank at the start of each step: the same after every
    checkpoint, and in a resumed run what an uninterrupted one holds (within 1 %)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "spy.py"
    script.write_text(SPY.format(tests=str(Path(__file__).parent)))

    def run(name: str, *extra: str) -> list[dict[int, int]]:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(script), str(tmp_path / name), "train",
               *_common(codes), "--steps", "8", "--fsdp", *extra]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return [
            {int(k): v for k, v in json.loads((tmp_path / f"{name}.{r}.json").read_text()).items()}
            for r in range(2)
        ]

    fresh = run("fresh", "--out", str(tmp_path / "a"))
    run("part", "--out", str(tmp_path / "b"), "--stop-at", "4")
    resumed = run("resumed", "--out", str(tmp_path / "b"), "--resume")
    for rank in range(2):
        for step in (3, 5, 7):  # after the checkpoints at steps 2, 4 and 6
            assert fresh[rank][step] == fresh[rank][1], (rank, step)
        for step in (5, 7):  # the resumed run is steady across its checkpoints too
            assert resumed[rank][step] == resumed[rank][4], (rank, step)
        # and holds what the uninterrupted run holds, up to how the re-sharded optimizer state
        # is padded (the resume state itself would be the model, EMA and moments again)
        assert abs(resumed[rank][4] - fresh[rank][4]) <= 0.01 * fresh[rank][4], rank


def test_one_process_ddp_and_fsdp_resume_each_other(codes, tmp_path):
    """One process to step 2, FSDP on two processes to step 4, one process (with --fsdp: a
    group of one) to the end: the weights of the uninterrupted run."""
    common = [*_common(codes), "--steps", "6"]
    train_cli(*common, "--out", str(tmp_path / "straight"))
    mixed = tmp_path / "mixed"
    train_cli(*common, "--out", str(mixed), "--stop-at", "2")
    train_cli(*common, "--out", str(mixed), "--resume", "--fsdp", "--stop-at", "4", torchrun=2)
    train_cli(*common, "--out", str(mixed), "--resume", "--fsdp")
    straight, resumed = train_state(tmp_path / "straight"), train_state(mixed)
    assert max_diff(straight["model"], resumed["model"]) < 1e-6
    assert max_diff(straight["ema"], resumed["ema"]) < 1e-6
    assert all(isinstance(name, str) for name in resumed["opt"]["state"])  # keyed by name


def test_a_state_with_the_optimizer_keyed_by_position_still_resumes(codes, tmp_path):
    """States written before the optimizer was saved by parameter name resume as before."""
    from bigr.train.generator_run import positional_optimizer_state

    common = [*_common(codes), "--steps", "4"]
    train_cli(*common, "--out", str(tmp_path / "straight"))
    old = tmp_path / "old"
    train_cli(*common, "--out", str(old), "--stop-at", "2")
    state = train_state(old)
    names = [n for g in state["opt"]["param_groups"] for n in g["params"]]
    state["opt"] = positional_optimizer_state(state["opt"], names)
    torch.save(state, old / "state.pt")
    train_cli(*common, "--out", str(old), "--resume")
    assert max_diff(train_state(tmp_path / "straight")["model"], train_state(old)["model"]) < 1e-6


def test_fsdp_modes_and_the_bf16_policy_on_two_gloo_processes(codes, one_process, tmp_path):
    """Hybrid sharding (a node of two) gives the one-process weights; grad-op sharding with
    bf16 gathers trains to nearly the same losses."""
    common = [*_common(codes), "--steps", str(STEPS), "--fsdp"]
    train_cli(*common, "--out", str(tmp_path / "hybrid"), "--fsdp-mode", "hybrid", torchrun=2)
    one = train_state(one_process)
    assert max_diff(one["model"], train_state(tmp_path / "hybrid")["model"]) < 1e-5
    train_cli(*common, "--out", str(tmp_path / "bf16"), "--fsdp-mode", "grad-op",
              "--fsdp-precision", "bf16", torchrun=2)  # fmt: skip
    losses = [
        [json.loads(line)["loss"] for line in (r / "log.jsonl").read_text().splitlines()]
        for r in (one_process, tmp_path / "bf16")
    ]
    assert losses[1] == pytest.approx(losses[0], rel=2e-2)
    weights = train_state(tmp_path / "bf16")["model"].values()
    assert all(w.dtype == torch.float32 for w in weights if w.is_floating_point())  # fp32 master
