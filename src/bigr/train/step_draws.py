"""The random draws of a training step, made for the whole global batch from generators seeded
by (seed, step), so that any step's batch is known without replaying the ones before it and
every split of the batch over ranks and accumulation steps sees the same numbers.

Owns: `batch_indices` (the images of a step; the tokenizer trainer uses it too), `StepDraws`
and `draw_step` (codes variants, masks, dropped labels, diffusion times and noise of the
generator's step, for the rows a rank trains).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .. import distributed, schedules
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


# How a step's draws are made (stored with a run's settings, so a resumed run keeps its own):
# 1, the whole global batch from one generator per step (runs started before scheme 2);
# 2, blocks of ROW_BLOCK rows from one generator each, so a rank draws only the blocks of its
# own rows (the numbers of a row still do not depend on the world size).
DRAW_SCHEMES = (1, 2)
ROW_BLOCK = 16


@dataclass
class StepDraws:
    """Everything random about the rows [start, start + len(indices)) of one global batch."""

    start: int
    indices: Tensor  # (R,)
    variants: Tensor  # (R,)
    mask: Tensor  # (R, L) bool
    drop: Tensor  # (R,) bool: label replaced by the null class
    t: Tensor  # (R, L) diffusion time in 1..T
    noise: Tensor  # (R, L, K) uniforms deciding the noisy bits
    masked: int  # masked tokens in the whole global batch (the loss normalizer)

    def local(self, rows: slice) -> slice:
        """Global rows `rows` as positions in these draws."""
        if rows.start < self.start or rows.stop > self.start + len(self.indices):
            raise IndexError(f"rows {rows.start}..{rows.stop} were not drawn")
        return slice(rows.start - self.start, rows.stop - self.start)


def draw_step(
    step: int,
    config: BiGRConfig,
    train: TrainConfig,
    data: CodeShards,
    rows: slice | None = None,
) -> StepDraws:
    """The draws of `step` for the global rows `rows` (default: all), by the run's scheme
    (`train.draw_scheme`; scheme 1 draws the whole batch whatever `rows` asks)."""
    b = train.batch_size
    rows = slice(0, b) if rows is None else rows
    if train.draw_scheme == 1:
        return _whole_batch(step, config, train, data)
    l = config.num_tokens
    g = distributed.generator("cpu", train.seed, "step", step)
    # mask sizes for the whole batch first (B integers): the loss normalizer needs their sum
    sizes = torch.randint(0, l, (b if train.per_sample_mask else 1,), generator=g)
    counts = torch.tensor([schedules.training_mask_count(s, l) for s in sizes.tolist()])
    counts = counts.expand(b)
    first, last = rows.start // ROW_BLOCK, -(-rows.stop // ROW_BLOCK)
    blocks = [_block(step, block, b, config, train, data) for block in range(first, last)]
    offset = slice(rows.start - first * ROW_BLOCK, rows.stop - first * ROW_BLOCK)
    variants, order, drop, t, noise = (
        torch.cat(parts)[offset] for parts in zip(*blocks, strict=True)
    )
    ranks = order.argsort(dim=1).argsort(dim=1)
    return StepDraws(
        start=rows.start,
        indices=batch_indices(step, b, len(data), train.seed)[rows],
        variants=variants,
        mask=ranks < counts[rows].view(-1, 1),
        drop=drop,
        t=t,
        noise=noise,
        masked=int(counts.sum()),
    )


def _block(
    step: int, block: int, batch: int, config: BiGRConfig, train: TrainConfig, data: CodeShards
) -> tuple[Tensor, ...]:
    """Variants, mask-order noise, dropped labels, times and bit noise of one row block."""
    g = distributed.generator("cpu", train.seed, "step", step, "rows", block)
    n = min(ROW_BLOCK, batch - block * ROW_BLOCK)
    l, k = config.num_tokens, config.code_bits
    return (
        data.random_variants(n, generator=g),
        torch.rand(n, l, generator=g),
        torch.rand(n, generator=g) < config.class_dropout,
        torch.randint(1, config.head.diffusion_steps + 1, (n, l), generator=g),
        torch.rand(n, l, k, generator=g),
    )


def _whole_batch(step: int, config: BiGRConfig, train: TrainConfig, data: CodeShards) -> StepDraws:
    """Scheme 1: the whole global batch from one generator."""
    g = distributed.generator("cpu", train.seed, "step", step)
    b, l, k = train.batch_size, config.num_tokens, config.code_bits
    indices = batch_indices(step, b, len(data), train.seed)
    variants = data.random_variants(b, generator=g)  # the order of the draws is the scheme
    mask = sample_training_mask(b, l, per_sample=train.per_sample_mask, generator=g)
    return StepDraws(
        start=0,
        indices=indices,
        variants=variants,
        mask=mask,
        drop=torch.rand(b, generator=g) < config.class_dropout,
        t=torch.randint(1, config.head.diffusion_steps + 1, (b, l), generator=g),
        noise=torch.rand(b, l, k, generator=g),
        masked=int(mask.sum()),
    )
