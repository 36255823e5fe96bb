"""`bigr plan`: its fixed bytes are the tensors a training step really holds, and its
activations per sample, extended from copies cut to 1 and 2 blocks, are what the full-depth
model saves for backward."""

import dataclasses

import pytest
import torch

from bigr import PRESETS, BiGR
from bigr.checkpoint import EMA
from bigr.cli import main
from bigr.plan import plan, saved_bytes
from bigr.train.generator import param_groups

DEEPER = dataclasses.replace(PRESETS["bigr-tiny"], depth=5)


def test_fixed_bytes_are_what_one_training_step_holds():
    torch.manual_seed(0)
    model = BiGR(DEEPER).train()
    ema = EMA(model, 0.99)
    opt = torch.optim.AdamW(param_groups(model, 0.02), lr=1e-3)
    codes = torch.randint(0, 2, (4, 16, 16)).float()
    model(codes, torch.arange(4))["loss"].backward()
    opt.step()
    ema.update(model)
    held = sum(p.numel() * 4 for p in model.parameters())  # weights
    held += sum(p.grad.numel() * p.grad.element_size() for p in model.parameters())
    held += sum(
        t.numel() * t.element_size()
        for state in opt.state.values()
        for key, t in state.items()
        if key != "step"  # a scalar per tensor
    )
    held += sum(t.numel() * t.element_size() for t in ema.shadow.values())
    assert plan(DEEPER).fixed == held


def test_activations_from_two_blocks_match_the_full_depth():
    torch.manual_seed(0)
    full = BiGR(dataclasses.replace(DEEPER, resid_dropout=0.0, ffn_dropout=0.0))
    for checkpointed in (False, True):
        measured = saved_bytes(full, 2, checkpointed) - saved_bytes(full, 1, checkpointed)
        predicted = getattr(plan(DEEPER), "per_sample_checkpointed" if checkpointed
                            else "per_sample")  # fmt: skip
        assert predicted == pytest.approx(measured, rel=0.02), checkpointed
    p = plan(DEEPER)
    assert p.per_sample_checkpointed < 0.5 * p.per_sample


def test_largest_batch_and_sharding():
    p = plan(DEEPER)
    memory = p.fixed + p.buffers + 10 * p.per_sample
    assert p.largest_batch(memory, 1, fsdp=False, checkpointed=False) == 10
    assert p.largest_batch(memory, 4, fsdp=True, checkpointed=False) > 10  # a quarter of fixed
    assert p.largest_batch(p.fixed // 2, 1, fsdp=False, checkpointed=True) == 0


def test_the_command_prints_a_table(capsys):
    assert main(["plan", "--preset", "bigr-tiny", "--gpus", "2", "--batch-size", "16",
                 "--memory", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "| largest batch per GPU, checkpointed |" in out and "8 per GPU" in out
