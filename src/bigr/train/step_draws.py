"""The random draws of a training step, made for the whole global batch from generators seeded
by (seed, step), so that any step's batch is known without replaying the ones before it and
every split of the batch over ranks and accumulation steps sees the same numbers.

Owns: `batch_indices` (the images of a step; the tokenizer trainer uses it too), `StepDraws`
and `draw_step` (codes variants, masks, dropped labels, diffusion times and noise of the
generator's step).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .. import distributed
from ..config import BiGRConfig
from ..data.shards import CodeShards
from ..model import sample_training_mask

if TYPE_CHECKING:
    from .generator import TrainConfig


def batch_indices(step: int, batch: int, count: int, seed: int) -> Tensor:
    """Global-batch image indices of `step`: consecutive slices of one random permutation per
    epoch, so any step's batch is known without replaying earlier ones."""
    positions = torch.arange(step * batch, (step + 1) * batch)
    epochs, offsets = positions // count, positions % count
    out = torch.empty(batch, dtype=torch.long)
    for epoch in epochs.unique().tolist():
        rows = epochs == epoch
        out[rows] = epoch_permutation(count, seed, epoch)[offsets[rows]]
    return out


@functools.lru_cache(maxsize=2)  # the current epoch and the next: a step may span both
def epoch_permutation(count: int, seed: int, epoch: int) -> Tensor:
    """The order of the images in `epoch`: drawn once per epoch, not once per step (for
    ImageNet a 1.28M-long permutation took about 60 ms of every step on one CPU thread)."""
    return torch.randperm(count, generator=distributed.generator("cpu", seed, "epoch", epoch))


@dataclass
class StepDraws:
    """Everything random about one global batch (rows = samples)."""

    indices: Tensor  # (B,)
    variants: Tensor  # (B,)
    mask: Tensor  # (B, L) bool
    drop: Tensor  # (B,) bool: label replaced by the null class
    t: Tensor  # (B, L) diffusion time in 1..T
    noise: Tensor  # (B, L, K) uniforms deciding the noisy bits


def draw_step(step: int, config: BiGRConfig, train: TrainConfig, data: CodeShards) -> StepDraws:
    g = distributed.generator("cpu", train.seed, "step", step)
    b, l, k = train.batch_size, config.num_tokens, config.code_bits
    indices = batch_indices(step, b, len(data), train.seed)
    return StepDraws(
        indices=indices,
        variants=data.random_variants(b, generator=g),
        mask=sample_training_mask(b, l, per_sample=train.per_sample_mask, generator=g),
        drop=torch.rand(b, generator=g) < config.class_dropout,
        t=torch.randint(1, config.head.diffusion_steps + 1, (b, l), generator=g),
        noise=torch.rand(b, l, k, generator=g),
    )
