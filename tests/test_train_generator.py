import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from bigr import schedules
from bigr.config import PRESETS
from bigr.model import BiGR
from bigr.shards import ShardMeta, write_codes
from bigr.train.draws import batch_indices
from bigr.train.generator import param_groups

ARGS = ["--preset", "bigr-tiny", "--batch-size", "16", "--lr", "1e-3", "--log-every", "1"]


@pytest.fixture(scope="module")
def codes(tmp_path_factory):
    """64 images of random 16-bit codes on a 4x4 grid, two stochastic variants each."""
    d = tmp_path_factory.mktemp("codes") / "codes"
    g = torch.Generator().manual_seed(0)
    meta = ShardMeta(
        code_bits=16,
        grid_size=4,
        count=64,
        shard_size=32,
        samples_per_image=2,
        include_flips=False,
        stochastic=True,
        seed=0,
        classes=[str(i) for i in range(10)],
        source="random",
        tokenizer={},
    )
    write_codes(
        d,
        torch.randint(0, 2, (64, 2, 16, 16), generator=g),
        torch.randint(0, 10, (64,), generator=g),
        meta,
    )
    return d


def _train(*args: str, torchrun: int = 0, wait: bool = True):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    head = (
        [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={torchrun}"]
        if torchrun
        else [sys.executable]
    )
    cmd = [*head, "-m", "bigr", "train", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _state(run):
    return torch.load(run / "state.pt", weights_only=True)


def _max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_two_gloo_processes_match_one_process(codes, tmp_path):
    common = ["--codes", str(codes), *ARGS, "--steps", "6", "--checkpoint-every", "6"]
    _train(*common, "--out", str(tmp_path / "one"))
    _train(*common, "--out", str(tmp_path / "two"), torchrun=2)
    _train(*common, "--out", str(tmp_path / "accum"), "--grad-accum", "4")
    one, two, accum = (_state(tmp_path / n) for n in ("one", "two", "accum"))
    assert _max_diff(one["model"], two["model"]) < 1e-5
    assert _max_diff(one["model"], accum["model"]) < 1e-5
    assert _max_diff(one["model"], _state_at_init()) > 1e-3  # training moved the weights
    losses = [
        [json.loads(line)["loss"] for line in (tmp_path / n / "log.jsonl").read_text().splitlines()]
        for n in ("one", "two")
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_fsdp_on_two_gloo_processes_matches_one_process_and_resumes(codes, tmp_path):
    common = ["--codes", str(codes), *ARGS, "--checkpoint-every", "2"]
    _train(*common, "--steps", "4", "--out", str(tmp_path / "one"))
    _train(*common, "--steps", "4", "--out", str(tmp_path / "fsdp"), "--fsdp", torchrun=2)
    # a sharded run stopped at step 2 and resumed (optimizer and EMA state re-sharded)
    _train(*common, "--steps", "2", "--out", str(tmp_path / "part"), "--fsdp", torchrun=2)
    _train(
        *common, "--steps", "4", "--out", str(tmp_path / "part"), "--fsdp", "--resume", torchrun=2
    )
    one, fsdp, part = (_state(tmp_path / n) for n in ("one", "fsdp", "part"))
    for other in (fsdp, part):
        assert _max_diff(one["model"], other["model"]) < 1e-5
        assert _max_diff(one["ema"], other["ema"]) < 1e-5
    assert BiGR.from_pretrained(tmp_path / "fsdp" / "model").config == PRESETS["bigr-tiny"]


def _state_at_init():
    torch.manual_seed(0)
    return BiGR(PRESETS["bigr-tiny"]).state_dict()


def test_killed_run_resumes_to_the_uninterrupted_weights(codes, tmp_path):
    common = ["--codes", str(codes), *ARGS, "--steps", "30", "--checkpoint-every", "2"]
    _train(*common, "--out", str(tmp_path / "straight"))
    run = tmp_path / "killed"
    proc = _train(*common, "--out", str(run), wait=False)
    deadline = time.time() + 120
    while not (run / "state.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _state(run)["step"]
    assert 0 < killed_at < 30  # it really was interrupted
    _train(*common, "--out", str(run), "--resume")
    a, b = _state(tmp_path / "straight"), _state(run)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert (run / "log.jsonl").read_text().count("\n") == 30
    assert BiGR.from_pretrained(run / "model").config == PRESETS["bigr-tiny"]


KILL_MID_WRITE = """
import os, signal, sys, torch
from bigr import checkpoint
real = torch.save
count = [0]
def half_then_die(obj, f, *a, **k):
    count[0] += 1
    if count[0] == 2:  # the second checkpoint: write half of it, then SIGKILL ourselves
        import io
        buffer = io.BytesIO()
        real(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(obj, f, *a, **k)
torch.save = half_then_die
from bigr.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_kill_in_the_middle_of_a_checkpoint_write_still_resumes(codes, tmp_path):
    common = ["--codes", str(codes), *ARGS, "--steps", "6", "--checkpoint-every", "2"]
    _train(*common, "--out", str(tmp_path / "straight"))
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, "-c", KILL_MID_WRITE, "train", *common, "--out", str(run)],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL
    assert _state(run)["step"] == 2  # the half-written second checkpoint never replaced it
    _train(*common, "--out", str(run), "--resume")
    a, b = _state(tmp_path / "straight"), _state(run)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def _pickled_code() -> bytes:
    """A torch file whose pickle names a callable (os.system): loading must not run it."""
    buffer = io.BytesIO()
    torch.save({"step": 1, "call": os.system, "args": ("touch pwned",)}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [b"", b"not a zip file at all", b"PK\x03\x04truncated", _pickled_code()],
    ids=["empty", "text", "zip", "pickled code"],
)
def test_a_corrupt_state_is_refused_not_silently_restarted(codes, tmp_path, content):
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.pt").write_bytes(content)
    cmd = [sys.executable, "-m", "bigr", "train", "--codes", str(codes), *ARGS, "--steps", "2"]
    result = subprocess.run(
        [*cmd, "--out", str(run), "--resume"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "not a readable training state" in result.stderr and "Traceback" not in result.stderr
    assert (run / "state.pt").read_bytes() == content  # nothing overwritten


def test_weight_decay_groups_follow_the_release():
    model = BiGR(PRESETS["bigr-tiny"])
    decay, no_decay = param_groups(model, 0.02)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "transformer.mask_token" in decayed and "transformer.layers.0.ada_gss" in decayed
    assert "transformer.class_embed.weight" in decayed and "transformer.adaln.weight" in decayed
    assert not any(n.startswith("head.") for n in decayed)
    assert not any(n.endswith(".bias") or "norm" in n for n in decayed)
    assert no_decay["weight_decay"] == 0.0


def test_batches_walk_through_epochs_without_repeats():
    seen = torch.cat([batch_indices(s, 10, 25, seed=3) for s in range(5)])  # 2 epochs of 25
    assert sorted(seen[:25].tolist()) == list(range(25)) and sorted(seen[25:].tolist()) == list(
        range(25)
    )
    assert torch.equal(batch_indices(3, 10, 25, seed=3), batch_indices(3, 10, 25, seed=3))


def test_learning_rate_warmup_and_cosine():
    assert schedules.learning_rate(0, 1.0, warmup=4) == 0.25
    assert schedules.learning_rate(10, 1.0, warmup=4) == 1.0
    assert schedules.learning_rate(4, 1.0, warmup=4, total=14, schedule="cosine") == 1.0
    assert schedules.learning_rate(
        14, 1.0, warmup=4, total=14, schedule="cosine", minimum=0.1
    ) == pytest.approx(0.1)


def test_a_warm_start_continues_from_an_export_at_its_step_with_the_lr_rewarmed(codes, tmp_path):
    from bigr.train.generator import TrainConfig, warm_lr

    common = ["--codes", str(codes), *ARGS, "--warmup", "4", "--checkpoint-every", "100"]
    _train(*common, "--steps", "6", "--ema-decay", "0", "--out", str(tmp_path / "first"))
    first = tmp_path / "first" / "model"
    _train(*common, "--steps", "9", "--init", str(first), "--out", str(tmp_path / "warm"))
    log = [json.loads(r) for r in (tmp_path / "warm" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [7, 8, 9]  # the data order and schedule go on
    train = TrainConfig(steps=9, lr=1e-3, warmup_steps=4, rewarm_from=6)
    assert [r["lr"] for r in log] == [warm_lr(s, train) for s in (6, 7, 8)]
    assert log[0]["lr"] == pytest.approx(1e-3 / 4)
    # the warm run starts from the export: its EMA (decay 0.9999) barely moved off it
    start = BiGR.from_pretrained(first).state_dict()
    ema = _state(tmp_path / "warm")["ema"]
    assert max((ema[k] - start[k]).abs().max().item() for k in ema) < 1e-5
    scratch = _state_at_init()  # and the export is not the untrained model
    assert max((start[k] - scratch[k]).abs().max().item() for k in ema) > 1e-3
    # an export past the requested steps is refused
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "bigr",
            "train",
            *common,
            "--steps",
            "5",
            "--init",
            str(first),
            "--out",
            str(tmp_path / "bad"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "--steps must be more" in bad.stderr
