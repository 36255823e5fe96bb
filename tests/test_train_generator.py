import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bigr import schedules
from bigr.cli import main
from bigr.config import PRESETS
from bigr.model import BiGR
from bigr.train.generator import param_groups
from bigr.train.step_draws import batch_indices
from helpers import TRAIN_ARGS, random_codes, train_cli, train_state

ARGS = TRAIN_ARGS


@pytest.fixture(scope="module")
def codes(tmp_path_factory):
    return random_codes(tmp_path_factory.mktemp("codes") / "codes")


_train, _state = train_cli, train_state


def _train_here(*args: str) -> None:
    """`bigr train ARGS` in this process on one thread, as `train_cli` runs it in a fresh one
    (OMP_NUM_THREADS=1): the two give bit-identical weights, and this skips an interpreter."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", *args]) == 0
    finally:
        torch.set_num_threads(threads)


def _state_at_init():
    torch.manual_seed(0)
    return BiGR(PRESETS["bigr-tiny"]).state_dict()


def test_killed_run_resumes_to_the_uninterrupted_weights(codes, tmp_path):
    common = ["--codes", str(codes), *ARGS, "--steps", "30", "--checkpoint-every", "2"]
    # checkpoints only at the end: how often a run saves must not change its weights
    _train_here(*common, "--checkpoint-every", "30", "--out", str(tmp_path / "straight"))
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


def test_stop_at_pauses_on_the_full_schedule_and_resumes_to_the_uninterrupted_weights(
    codes, tmp_path, capsys
):
    common = ["--codes", str(codes), *ARGS, "--steps", "8", "--checkpoint-every", "100"]
    common += ["--lr-schedule", "cosine", "--warmup", "2"]  # an LR that depends on --steps
    _train_here(*common, "--out", str(tmp_path / "straight"))
    run = tmp_path / "chunked"
    _train_here(*common, "--stop-at", "3", "--out", str(run))
    assert "stopped at step 3 of 8" in capsys.readouterr().out
    assert _state(run)["step"] == 3  # checkpointed at the stop, not only every 100 steps
    model = json.loads((run / "model" / "config.json").read_text())
    assert model["extra"]["trained_steps"] == 3
    lrs = [json.loads(r)["lr"] for r in (run / "log.jsonl").read_text().splitlines()]
    straight = [
        json.loads(r)["lr"] for r in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()
    ]
    assert lrs == straight[:3]  # the 8-step schedule, not one squeezed into 3 steps
    _train_here(*common, "--out", str(run), "--resume")
    a, b = _state(tmp_path / "straight"), _state(run)
    assert b["step"] == 8
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])


def test_a_state_saved_with_the_old_preview_field_names_still_resumes(codes, tmp_path):
    # state.pt keeps the run's training config as a record (a resume takes the command line's);
    # runs saved before the rename store `sample_steps` / `sample_guidance` there
    common = ["--codes", str(codes), *ARGS, "--steps", "4", "--checkpoint-every", "100"]
    _train_here(*common, "--out", str(tmp_path / "straight"))
    run = tmp_path / "old"
    _train_here(*common, "--stop-at", "2", "--out", str(run))
    state = _state(run)
    assert {"preview_steps", "preview_guidance"} <= set(state["train"])
    renamed = {"preview_steps": "sample_steps", "preview_guidance": "sample_guidance"}
    state["train"] = {renamed.get(k, k): v for k, v in state["train"].items()}
    torch.save(state, run / "state.pt")
    _train_here(*common, "--out", str(run), "--resume")
    a, b = _state(tmp_path / "straight"), _state(run)
    assert b["step"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert b["train"] == a["train"]  # rewritten with the new names
    assert "sample_steps" not in b["train"]


def test_stop_at_past_the_schedule_is_refused(codes, tmp_path, capsys):
    args = ["train", "--codes", str(codes), *ARGS, "--steps", "4", "--stop-at", "5"]
    assert main([*args, "--out", str(tmp_path / "r")]) != 0
    assert "stop_at (5) must be at most steps (4)" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_sigterm_saves_the_step_it_finished_and_the_run_resumes_from_it(codes, tmp_path):
    run = tmp_path / "run"
    common = ["--codes", str(codes), *ARGS, "--checkpoint-every", "100000"]
    proc = _train(*common, "--steps", "100000", "--out", str(run), wait=False)
    deadline = time.time() + 120
    while time.time() < deadline:  # a few logged steps, no periodic checkpoint yet
        log = run / "log.jsonl"
        if log.is_file() and log.read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    step = _state(run)["step"]
    assert 3 <= step < 100000
    assert BiGR.from_pretrained(run / "model").config == PRESETS["bigr-tiny"]
    _train_here(*common, "--steps", str(step + 2), "--out", str(run), "--resume")
    rows = [json.loads(r) for r in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, step + 3))  # nothing lost, nothing twice


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
    _train_here(*common, "--out", str(tmp_path / "straight"))
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
def test_a_corrupt_state_is_refused_not_silently_restarted(codes, tmp_path, content, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.pt").write_bytes(content)
    args = ["train", "--codes", str(codes), *ARGS, "--steps", "2", "--out", str(run), "--resume"]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "not a readable training state" in err and "Traceback" not in err
    assert (run / "state.pt").read_bytes() == content  # nothing overwritten
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


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


def test_a_warm_start_continues_from_an_export_at_its_step_with_the_lr_rewarmed(
    codes, tmp_path, capsys
):
    from bigr.train.generator import TrainConfig, warm_lr

    common = ["--codes", str(codes), *ARGS, "--warmup", "4", "--checkpoint-every", "100"]
    # in this process: nothing here compares weights across processes
    train = ["train", *common]
    assert main([*train, "--steps", "6", "--ema-decay", "0", "--out", str(tmp_path / "first")]) == 0
    first = tmp_path / "first" / "model"
    warm = tmp_path / "warm"
    assert main([*train, "--steps", "9", "--init", str(first), "--out", str(warm)]) == 0
    log = [json.loads(r) for r in (warm / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [7, 8, 9]  # the data order and schedule go on
    config = TrainConfig(steps=9, lr=1e-3, warmup_steps=4, rewarm_from=6)
    assert [r["lr"] for r in log] == [warm_lr(s, config) for s in (6, 7, 8)]
    assert log[0]["lr"] == pytest.approx(1e-3 / 4)
    # the warm run starts from the export: its EMA (decay 0.9999) barely moved off it
    start = BiGR.from_pretrained(first).state_dict()
    ema = _state(warm)["ema"]
    assert max((ema[k] - start[k]).abs().max().item() for k in ema) < 1e-5
    scratch = _state_at_init()  # and the export is not the untrained model
    assert max((start[k] - scratch[k]).abs().max().item() for k in ema) > 1e-3
    # an export past the requested steps is refused
    capsys.readouterr()
    assert main([*train, "--steps", "5", "--init", str(first), "--out", str(tmp_path / "bad")]) != 0
    assert "--steps must be more" in capsys.readouterr().err


@pytest.mark.parametrize(
    "changes, check",
    [
        (["head.predict_flip=false"], lambda c: not c.head.predict_flip and not c.head.direct),
        (["head.predict_flip=false", "head.direct=true"], lambda c: c.head.direct),
        (["class_dropout=1"], lambda c: c.unconditional and c.num_classes == 10),
    ],
    ids=["x0", "plain BCE", "unconditional"],
)
def test_the_training_variants_train_and_export_their_change(codes, tmp_path, changes, check):
    """The three variants of reports/fashion/training/variants_run.sh, on the tiny preset."""
    sets = [arg for change in changes for arg in ("--set", change)]
    out = tmp_path / "variant"
    args = ["train", "--codes", str(codes), *ARGS, "--steps", "2", *sets, "--out", str(out)]
    assert main(args) == 0
    model = BiGR.from_pretrained(out / "model")
    assert check(model.config)
    log = [json.loads(r) for r in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(r["loss"] > 0 for r in log)


def test_activation_checkpointing_gives_the_same_run(codes, tmp_path):
    common = [*TRAIN_ARGS, "--codes", str(codes), "--steps", "3", "--checkpoint-every", "3"]
    assert main(["train", *common, "--out", str(tmp_path / "plain")]) == 0
    assert main(["train", *common, "--out", str(tmp_path / "ckpt"),
                 "--activation-checkpointing"]) == 0  # fmt: skip
    plain, ckpt = train_state(tmp_path / "plain"), train_state(tmp_path / "ckpt")
    for name, value in plain["model"].items():
        assert torch.allclose(value, ckpt["model"][name], atol=1e-6), name


def test_activation_checkpointing_keeps_only_block_inputs_for_backward():
    """Saved-for-backward bytes of one training forward, with and without recomputation."""
    from torch.autograd.graph import saved_tensors_hooks

    torch.manual_seed(0)
    model = BiGR(PRESETS["bigr-tiny"]).train()
    codes = torch.randint(0, 2, (8, 16, 16)).float()
    labels = torch.randint(0, 10, (8,))

    def saved_bytes(recompute: bool) -> int:
        model.transformer.checkpoint_blocks = recompute
        total = [0]

        def pack(t):
            total[0] += t.numel() * t.element_size()
            return t

        with saved_tensors_hooks(pack, lambda t: t):
            model(codes, labels)["loss"].backward()
        return total[0]

    assert saved_bytes(True) < 0.6 * saved_bytes(False)


def test_tensorboard_receives_the_logged_scalars(codes, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = tmp_path / "board"
    assert main(["train", *TRAIN_ARGS, "--codes", str(codes), "--steps", "3",
                 "--out", str(tmp_path / "run"), "--tensorboard", str(board)]) == 0  # fmt: skip
    events = EventAccumulator(str(board))
    events.Reload()
    losses = [e.value for e in events.Scalars("train/loss")]
    logged = [json.loads(line)["loss"] for line in (tmp_path / "run" / "log.jsonl").open()]
    assert losses == pytest.approx(logged, rel=1e-6)
    assert {"train/acc", "train/lr", "train/grad_norm"} <= set(events.Tags()["scalars"])


def test_export_of_the_raw_weights_takes_the_runs_state_not_its_average(codes, tmp_path, capsys):
    run = tmp_path / "run"
    _train_here("--codes", str(codes), *ARGS, "--steps", "3", "--out", str(run))
    state = _state(run)
    assert main(["export", str(run / "model"), "--out", str(tmp_path / "raw"),
                 "--weights", "raw", "--dtype", "float32"]) == 0  # fmt: skip
    assert main(["export", str(run / "model"), "--out", str(tmp_path / "ema"),
                 "--dtype", "float32"]) == 0  # fmt: skip
    raw, ema = BiGR.from_pretrained(tmp_path / "raw"), BiGR.from_pretrained(tmp_path / "ema")
    for name, value in raw.state_dict().items():
        assert torch.equal(value, state["model"][name])
    moved = [n for n, _ in raw.named_parameters()
             if not torch.equal(raw.state_dict()[n], ema.state_dict()[n])]  # fmt: skip
    assert moved  # the average lags the weights after 3 steps
    meta = json.loads((tmp_path / "raw" / "config.json").read_text())["extra"]
    assert meta["weights"] == "raw" and meta["trained_steps"] == 3
    # a model folder with no training state beside it: a clear refusal, nothing written
    capsys.readouterr()
    assert main(["export", str(tmp_path / "ema"), "--out", str(tmp_path / "x"),
                 "--weights", "raw"]) != 0  # fmt: skip
    assert "needs a training run's state.pt" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
