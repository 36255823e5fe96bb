"""Capacity planning for training: how much of a GPU a configuration needs, before renting one.

Owns: the fixed bytes per GPU (float32 weights, gradients, AdamW's two moments and the EMA;
sharded over the GPUs under FSDP; buffers such as the rotary tables), the activations a
training sample keeps for the backward pass, *measured* rather than modelled: one forward and
backward of a copy of the model cut to two blocks (the real widths, so it runs on a CPU even
for the largest presets), counting the bytes of every tensor autograd saves, then extended to
the full depth, with and without activation checkpointing; and from those, the largest
per-GPU micro-batch that fits a memory size.

Leaves to others: the training loop (`bigr.train`), which applies the refusal of a batch that
cannot fit on the machine at hand (`bigr.memory`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch.autograd.graph import saved_tensors_hooks

from .config import BiGRConfig
from .model import BiGR, count_parameters

GIB = 1024**3
BYTES_PER_PARAMETER = {"weights": 4, "gradients": 4, "adamw": 8, "ema": 4}
PROBE_DEPTH = 2


@dataclass(frozen=True)
class Plan:
    parameters: int
    buffers: int  # bytes (not sharded)
    per_sample: int  # activation bytes kept for backward, per training sample
    per_sample_checkpointed: int
    fixed: int  # weights + gradients + AdamW + EMA, bytes, unsharded

    def fixed_per_gpu(self, gpus: int, fsdp: bool) -> int:
        return (self.fixed // gpus if fsdp else self.fixed) + self.buffers

    def largest_batch(self, memory: int, gpus: int, fsdp: bool, checkpointed: bool) -> int:
        """Samples per GPU that fit `memory` bytes (0: not even the fixed part fits)."""
        free = memory - self.fixed_per_gpu(gpus, fsdp)
        per = self.per_sample_checkpointed if checkpointed else self.per_sample
        return max(0, free // per) if free > 0 else 0


def saved_bytes(model: BiGR, batch: int, checkpointed: bool) -> int:
    """Bytes of the tensors autograd keeps between one training forward and its backward."""
    config = model.config
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 2, (batch, config.num_tokens, config.code_bits), generator=g).float()
    condition = (
        torch.randn(batch, config.text_dim, generator=g)
        if config.text_dim
        else torch.zeros(batch, dtype=torch.long)
    )
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not t.is_meta:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    model.transformer.checkpoint_blocks = checkpointed
    model.train()
    try:
        with saved_tensors_hooks(pack, lambda t: t):
            model(codes, condition, generator=g)["loss"].backward()
    finally:
        model.transformer.checkpoint_blocks = False
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)  # weights are counted apart


def _probe_activations(config: BiGRConfig, checkpointed: bool) -> int:
    """Per-sample activation bytes at the full depth, from copies cut to 1 and 2 blocks (the
    per-block part is their difference; the rest is the embedding and the head)."""
    sizes = []
    for depth in (1, PROBE_DEPTH):
        torch.manual_seed(0)
        cut = dataclasses.replace(config, depth=depth, resid_dropout=0.0, ffn_dropout=0.0)
        model = BiGR(cut)
        sizes.append(saved_bytes(model, 2, checkpointed) - saved_bytes(model, 1, checkpointed))
        del model
    per_block = (sizes[1] - sizes[0]) / (PROBE_DEPTH - 1)
    return round(sizes[0] + per_block * (config.depth - 1))


def plan(config: BiGRConfig) -> Plan:
    with torch.device("meta"):
        meta = BiGR(config)
    parameters = count_parameters(meta)
    buffers = sum(b.numel() * b.element_size() for b in meta.buffers())
    return Plan(
        parameters=parameters,
        buffers=buffers,
        per_sample=_probe_activations(config, checkpointed=False),
        per_sample_checkpointed=_probe_activations(config, checkpointed=True),
        fixed=parameters * sum(BYTES_PER_PARAMETER.values()),
    )


def table(name: str, p: Plan, gpus: int, batch: int, memory: int) -> str:
    """The plan as the markdown `bigr plan` prints."""
    per_gpu = -(-batch // gpus)
    mib = 1024**2

    def accum(fsdp: bool, checkpointed: bool) -> str:
        fits = p.largest_batch(memory, gpus, fsdp, checkpointed)
        return "does not fit" if fits == 0 else str(-(-per_gpu // fits))

    fixed = [f"{p.fixed_per_gpu(gpus, fsdp) / GIB:.2f} GiB" for fsdp in (False, True)]
    act = f"{p.per_sample / mib:.1f} MiB"
    act_ck = f"{p.per_sample_checkpointed / mib:.1f} MiB"
    rows = [
        ("fixed per GPU (weights, gradients, AdamW, EMA, buffers)", *fixed),
        ("activations per sample", act, act),
        ("activations per sample, checkpointed", act_ck, act_ck),
    ]
    for checkpointed, suffix in ((False, ""), (True, ", checkpointed")):
        fits = [str(p.largest_batch(memory, gpus, fsdp, checkpointed)) for fsdp in (False, True)]
        rows.append((f"largest batch per GPU{suffix}", *fits))
    for checkpointed, suffix in ((False, ""), (True, ", checkpointed")):
        needed = [accum(fsdp, checkpointed) for fsdp in (False, True)]
        rows.append((f"--grad-accum for {per_gpu} per GPU{suffix}", *needed))
    lines = [
        f"## {name}: {p.parameters / 1e6:,.1f}M parameters; global batch {batch} on {gpus} GPUs "
        f"of {memory / GIB:.0f} GiB ({per_gpu} per GPU)",
        "",
        "| | DDP | FSDP |",
        "|---|---:|---:|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
        "Activations measured in float32 on copies cut to 1 and 2 blocks (bf16 autocast keeps "
        "most of them at half the size); the allocator's slack and the data come on top.",
    ]
    return "\n".join(lines) + "\n"
