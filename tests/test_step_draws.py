"""A training step's draws: any split of the global batch into row ranges (ranks, micro-batches)
draws the numbers the whole batch would have, and a run keeps the draw scheme it started with."""

import dataclasses
import itertools

import pytest
import torch

from bigr import distributed
from bigr.config import PRESETS
from bigr.data.shards import CodeShards
from bigr.model import sample_training_mask
from bigr.train.generator import TrainConfig, train_generator
from bigr.train.step_draws import ROW_BLOCK, batch_indices, draw_step
from helpers import random_codes, train_state

FIELDS = ("indices", "variants", "mask", "drop", "t", "noise")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return CodeShards(random_codes(tmp_path_factory.mktemp("codes") / "codes"))


@pytest.mark.parametrize("per_sample", [False, True])
def test_row_ranges_draw_what_the_whole_batch_draws(data, per_sample):
    config = PRESETS["bigr-tiny"]
    batch = 3 * ROW_BLOCK + 5  # a last block that is not full
    train = TrainConfig(batch_size=batch, per_sample_mask=per_sample, seed=3)
    whole = draw_step(7, config, train, data)
    cuts = [0, 5, ROW_BLOCK, ROW_BLOCK + 1, 2 * ROW_BLOCK + 9, batch]  # ranks of any size
    parts = [draw_step(7, config, train, data, slice(a, b)) for a, b in itertools.pairwise(cuts)]
    for field in FIELDS:
        joined = torch.cat([getattr(p, field) for p in parts])
        assert torch.equal(joined, getattr(whole, field)), field
    # every part knows the whole batch's masked count (the loss normalizer), exactly
    assert {p.masked for p in parts} == {whole.masked} == {int(whole.mask.sum())}
    counts = whole.mask.sum(1)
    assert (counts >= 1).all() and (len(counts.unique()) > 1) == per_sample
    assert not torch.equal(whole.noise, draw_step(8, config, train, data).noise)
    part = parts[3]  # rows ROW_BLOCK + 1 .. 2 ROW_BLOCK + 9
    assert part.local(slice(ROW_BLOCK + 2, 2 * ROW_BLOCK)) == slice(1, ROW_BLOCK - 1)
    with pytest.raises(IndexError):
        part.local(slice(0, 4))


def test_scheme_one_draws_the_whole_batch_from_one_generator(data):
    config = PRESETS["bigr-tiny"]
    train = TrainConfig(batch_size=24, draw_scheme=1, seed=1)
    draws = draw_step(5, config, train, data, slice(8, 16))  # rows ignored: the whole batch
    g = distributed.generator("cpu", 1, "step", 5)
    b, l, k = 24, config.num_tokens, config.code_bits
    assert draws.start == 0 and torch.equal(draws.indices, batch_indices(5, b, len(data), 1))
    assert torch.equal(draws.variants, data.random_variants(b, generator=g))
    assert torch.equal(draws.mask, sample_training_mask(b, l, generator=g))
    assert torch.equal(draws.drop, torch.rand(b, generator=g) < config.class_dropout)
    steps = config.head.diffusion_steps
    assert torch.equal(draws.t, torch.randint(1, steps + 1, (b, l), generator=g))
    assert torch.equal(draws.noise, torch.rand(b, l, k, generator=g))


def test_a_run_started_before_draw_schemes_resumes_with_its_own(data, tmp_path):
    config = PRESETS["bigr-tiny"]
    train = TrainConfig(steps=4, batch_size=16, lr=1e-3, checkpoint_every=100, draw_scheme=1)
    quiet = dict(progress=False, device="cpu")
    train_generator(config, data, tmp_path / "straight", train, **quiet)
    train_generator(
        config, data, tmp_path / "new", dataclasses.replace(train, draw_scheme=2), **quiet
    )
    run = tmp_path / "old"
    train_generator(config, data, run, dataclasses.replace(train, stop_at=2), **quiet)
    state = train_state(run)
    del state["train"]["draw_scheme"]  # as written before schemes were recorded
    torch.save(state, run / "state.pt")
    train_generator(
        config, data, run, dataclasses.replace(train, draw_scheme=2), resume=True, **quiet
    )
    old, straight, new = (train_state(tmp_path / n) for n in ("old", "straight", "new"))
    assert old["step"] == 4 and old["train"]["draw_scheme"] == 1
    assert all(torch.equal(straight["model"][k], old["model"][k]) for k in old["model"])
    assert not all(torch.equal(new["model"][k], old["model"][k]) for k in old["model"])
