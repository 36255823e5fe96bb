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
