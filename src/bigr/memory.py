"""Memory before it is allocated: the free memory of a device and a lower estimate of what a
sampling batch needs, so that a batch that cannot fit is refused with one line naming the
largest one that would, instead of ending in an allocator error (or the machine swapping)."""

from __future__ import annotations

import torch

GIB = 1024**3


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory on `device` (CUDA: the driver's count; CPU: Linux's MemAvailable); None
    where it cannot be known."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def sampling_bytes(config, batch: int, guided: bool, element_size: int = 4) -> int:
    """A lower estimate of the working set of one unmasking step of `batch` images: the
    backbone's widest activations (SwiGLU's hidden layer and its inputs) and the transcoder's,
    for both guidance branches when `guided`. Weights and the allocator's slack come on top."""
    rows = batch * (2 if guided else 1) * (config.num_tokens + config.class_tokens)
    backbone = rows * config.dim * 8  # residual, normed input, 2 x SwiGLU hidden (~2.7 dim)
    head = rows * config.head.dim * 4
    return (backbone + head) * element_size


def check_sampling_fits(config, batch: int, guided: bool, device: torch.device | str) -> None:
    """Refuse a batch whose estimated working set exceeds the free memory, naming the batch
    size that fits."""
    free = available_bytes(device)
    if free is None:
        return
    need = sampling_bytes(config, batch, guided)
    if need <= free:
        return
    per_image = max(1, sampling_bytes(config, 1, guided))
    fits = max(0, free // per_image)
    raise MemoryError(
        f"sampling {batch} images at once needs at least {need / GIB:.1f} GiB on {device}, "
        f"but {free / GIB:.1f} GiB is free; sample at most {fits} at once (a smaller --num or "
        "--batch-size)"
    )


def training_bytes(config, micro_batch: int, parameters: int, sharded_over: int = 1) -> int:
    """A lower estimate of one rank's training memory: fp32 weights, gradients, AdamW's two
    moments and the EMA (divided over `sharded_over` ranks under FSDP), plus the activations
    a micro-batch keeps for the backward pass (at least 34 bytes per token and width per block
    at 16 bits, Korthikanti et al. 2022, doubled for float32; attention without its L x L term,
    as fused kernels keep none)."""
    fixed = parameters * 4 * 5 // max(1, sharded_over)
    tokens = micro_batch * (config.num_tokens + config.class_tokens)
    activations = tokens * config.dim * config.depth * 34 * 2
    head = tokens * config.head.dim * config.head.depth * 34 * 2
    return fixed + activations + head


def check_training_fits(config, micro_batch: int, parameters: int, device, sharded_over=1):
    """Refuse a micro-batch whose estimated memory exceeds what is free, before training."""
    free = available_bytes(device)
    if free is None:
        return
    need = training_bytes(config, micro_batch, parameters, sharded_over)
    if need <= free:
        return
    base = training_bytes(config, 0, parameters, sharded_over)
    per_sample = max(1, training_bytes(config, 1, parameters, sharded_over) - base)
    fits = max(0, (free - base) // per_sample)
    raise MemoryError(
        f"a micro-batch of {micro_batch} needs at least {need / GIB:.1f} GiB on {device}, but "
        f"{free / GIB:.1f} GiB is free; at most {fits} per rank fit (raise --grad-accum, lower "
        "--batch-size, or shard with --fsdp)"
    )
