"""Training that would succeed at nothing is stopped with one line: a diverged loss (nothing
exported), weights that never move, an EMA that never moves, a resume onto another
architecture, damaged code shards. Clipping 0 means no clipping."""

import json

import pytest
import torch

from bigr.cli import main
from bigr.train.generator import TrainConfig
from helpers import TRAIN_ARGS, random_codes


@pytest.fixture(scope="module")
def codes(tmp_path_factory):
    return random_codes(tmp_path_factory.mktemp("codes"))


def _train(codes, out, *extra: str) -> list[str]:
    return ["train", "--codes", str(codes), "--out", str(out), *TRAIN_ARGS, "--steps", "6",
            "--checkpoint-every", "3", *extra]  # fmt: skip


def _fails_with(argv, message, capsys) -> str:
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err
    assert code != 0
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    assert errors[0].lstrip().startswith("bigr train")  # the progress bar ended its line first
    return errors[0]


def test_a_diverging_run_stops_before_exporting_anything(codes, tmp_path, capsys):
    out = tmp_path / "run"
    line = _fails_with(_train(codes, out, "--lr", "1e6"), "the run diverged", capsys)
    assert "learning rate 1e+06" in line and "--lr" in line
    assert not (out / "model").exists() and not (out / "state.pt").exists()


def test_weights_that_never_move_are_not_a_finished_run(codes, tmp_path, capsys):
    out = tmp_path / "run"
    _fails_with(_train(codes, out, "--lr", "1e-30"), "did not change in 3 steps", capsys)
    assert not (out / "model").exists()


def test_clipping_zero_means_no_clipping(codes, tmp_path, capsys):
    assert main(_train(codes, tmp_path / "run", "--grad-clip", "0", "--lr", "1e-3")) == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").open()]
    assert len(log) == 6  # clipping to 0 would have frozen the weights: refused as a no-op run
    assert max(r["grad_norm"] for r in log) > 0


def test_an_ema_that_never_moves_is_refused(codes, tmp_path, capsys):
    _fails_with(_train(codes, tmp_path / "run", "--ema-decay", "1"), "in [0, 1)", capsys)
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        TrainConfig(ema_decay=1.0)


def test_resuming_onto_another_architecture_names_the_fields(codes, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train(codes, out, "--stop-at", "3")) == 0
    capsys.readouterr()
    state = (out / "state.pt").read_bytes()
    line = _fails_with(
        _train(codes, out, "--resume", "--set", "dim=32", "--set", "depth=3"), "another", capsys
    )
    assert "depth: 2 there, 3 now" in line and "dim: 64 there, 32 now" in line
    assert (out / "state.pt").read_bytes() == state  # untouched


def test_a_damaged_code_shard_is_named(codes, tmp_path, capsys):
    import shutil

    damaged = tmp_path / "codes"
    shutil.copytree(codes, damaged)
    shard = sorted(damaged.glob("shard-*.codes.npy"))[0]
    shard.write_bytes(shard.read_bytes()[:200])
    line = _fails_with(_train(damaged, tmp_path / "run"), "damaged or truncated shard", capsys)
    assert shard.name in line and "bigr tokenize" in line


def test_two_runs_into_one_folder_the_second_is_refused(codes, tmp_path, capsys):
    from bigr.outputs import run_lock

    out = tmp_path / "run"
    with run_lock(out):  # another process's training holds the folder
        _fails_with(_train(codes, out), "another process is writing this folder", capsys)
    assert not (out / "log.jsonl").exists()


def test_a_diverging_tokenizer_run_stops_before_exporting_anything(tmp_path):
    from bigr.config import PRESETS
    from bigr.data import ImageFolderDataset
    from bigr.data.images import save_image
    from bigr.train.guards import TrainingError
    from bigr.train.tokenizer import TokenizerTrainConfig, train_tokenizer

    g = torch.Generator().manual_seed(0)
    for i in range(8):
        save_image(torch.rand(3, 16, 16, generator=g), tmp_path / "img" / f"{i}.png")
    data = ImageFolderDataset(tmp_path / "img", 16)
    train = TokenizerTrainConfig(steps=6, batch_size=4, lr=1e8, checkpoint_every=3,
                                 perceptual_weight=0.0)  # fmt: skip
    with pytest.raises(TrainingError, match=r"step \d: loss nan: the run diverged"):
        train_tokenizer(PRESETS["bae-tiny"], data, tmp_path / "run", train, progress=False)
    assert not (tmp_path / "run" / "model").exists()


def test_a_batch_over_the_free_memory_is_refused_before_training(codes, tmp_path, capsys,
                                                                   monkeypatch):  # fmt: skip
    from bigr import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 1024**2)
    line = _fails_with(_train(codes, tmp_path / "run"), "--grad-accum", capsys)
    assert "a micro-batch of 16 needs at least" in line
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_a_step_that_is_not_finite_is_skipped_on_the_device_and_named_later():
    from bigr.checkpoint import EMA
    from bigr.train.guards import DivergenceWatch, TrainingError

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    ema = EMA(model, 0.5)
    watch = DivergenceWatch(torch.device("cpu"))

    def step(number: int, inputs: torch.Tensor) -> None:
        loss = model(inputs).square().sum()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        finite = watch.observe(number, loss.detach(), norm)
        opt.found_inf = watch.skip  # as the trainer does
        opt.step()
        ema.update(model, finite)
        opt.zero_grad(set_to_none=True)

    step(1, torch.ones(1, 3))
    watch.check(lambda s: 0.1)  # all finite so far
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {k: v.clone() for k, v in opt.state[model.weight].items()}
    average = {k: v.clone() for k, v in ema.shadow.items()}
    step(2, torch.full((1, 3), float("nan")))
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(moments[k], v) for k, v in opt.state[model.weight].items())
    assert all(torch.equal(average[k], v) for k, v in ema.shadow.items())
    step(3, torch.ones(1, 3))  # a finite step after it applies as usual
    assert not torch.equal(weights["weight"], model.weight)
    with pytest.raises(TrainingError, match=r"step 2: loss nan and gradient norm nan: the run"):
        watch.check(lambda s: 0.1)
