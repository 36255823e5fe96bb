"""Sources of randomness for sampling: a seeded `torch.Generator`, or recorded streams.

Every random decision of the sampler and of the Bernoulli head goes through a `Draws` object:
`bernoulli(probs)` (bit = u < p with u uniform, u taken in C order over `probs`) and
`gumbel(shape)`. `TorchDraws` draws from an explicit generator; `RecordedDraws` replays the
uniform and Gumbel streams stored with the official reference data (reference README §6), so
a run that consumes them in the official order reproduces the official bits exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor


class TorchDraws:
    """Draws from an explicit `torch.Generator` (on the device of the tensors it serves)."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def uniform(self, shape: tuple[int, ...], device: torch.device) -> Tensor:
        return torch.rand(shape, device=device, generator=self.generator)

    def bernoulli(self, probs: Tensor) -> Tensor:
        u = torch.rand(probs.shape, device=probs.device, generator=self.generator)
        return (u < probs.float()).to(probs.dtype)

    def gumbel(self, shape: tuple[int, ...], device: torch.device) -> Tensor:
        e = torch.empty(shape, device=device).exponential_(generator=self.generator)
        return -torch.log(e)


class RecordedDraws:
    """Replays recorded streams; keeps a log of every Bernoulli call for inspection."""

    def __init__(self, uniforms: Tensor, gumbels: Tensor | None = None) -> None:
        self.uniforms = uniforms.flatten()
        self.gumbels = gumbels
        self.position = 0
        self.gumbel_position = 0
        self.call_sizes: list[int] = []
        self.call_probs: list[Tensor] = []

    def uniform(self, shape: tuple[int, ...], device: torch.device) -> Tensor:
        n = 1
        for s in shape:
            n *= s
        if self.position + n > self.uniforms.numel():
            raise RuntimeError(
                f"recorded uniform stream exhausted: need {n} more at {self.position} "
                f"of {self.uniforms.numel()}"
            )
        u = self.uniforms[self.position : self.position + n].view(shape).to(device)
        self.position += n
        return u

    def bernoulli(self, probs: Tensor) -> Tensor:
        self.call_sizes.append(probs.numel())
        self.call_probs.append(probs.detach().cpu().clone())
        u = self.uniform(tuple(probs.shape), probs.device)
        return (u < probs).to(probs.dtype)

    def gumbel(self, shape: tuple[int, ...], device: torch.device) -> Tensor:
        if self.gumbels is None or self.gumbel_position >= self.gumbels.shape[0]:
            raise RuntimeError("recorded Gumbel stream exhausted")
        g = self.gumbels[self.gumbel_position]
        if tuple(g.shape) != tuple(shape):
            raise RuntimeError(f"recorded Gumbel draw has shape {tuple(g.shape)}, need {shape}")
        self.gumbel_position += 1
        return g.to(device)


class PositionalDraws:
    """Uniforms keyed by (phase, call, token position), for comparing sampling paths.

    A sampler announces with `rows(positions)` which tokens (flat positions b·L + n) the next
    Bernoulli calls serve; each such phase numbers its calls, and call c of phase p draws the
    uniforms of a table seeded by (seed, p, c) at those positions. So two paths that visit
    different subsets of the tokens (bigr's head on unknown tokens only, the release's on all)
    still draw the same number for the same bit of the same token. Gumbel and order noise come
    from tables seeded by their call count.
    """

    def __init__(self, seed: int, num_positions: int, bits: int) -> None:
        self.seed, self.num_positions, self.bits = seed, num_positions, bits
        self.phase, self.call, self.noise_calls = -1, 0, 0
        self.positions: Tensor | None = None

    def rows(self, positions: Tensor) -> None:
        self.phase += 1
        self.call = 0
        self.positions = positions.flatten().cpu()

    def _table(self, *key: int) -> Tensor:
        g = torch.Generator().manual_seed(hash((self.seed, *key)) % (2**62))
        return torch.rand(self.num_positions, self.bits, generator=g, dtype=torch.float64)

    def bernoulli(self, probs: Tensor) -> Tensor:
        if self.positions is None:
            raise RuntimeError("PositionalDraws needs rows(positions) before a Bernoulli call")
        u = self._table(0, self.phase, self.call)[self.positions]
        self.call += 1
        u = u.to(probs.device).view(probs.shape)
        return (u < probs.double()).to(probs.dtype)

    def uniform(self, shape: tuple[int, ...], device: torch.device) -> Tensor:
        self.noise_calls += 1
        g = torch.Generator().manual_seed(hash((self.seed, 1, self.noise_calls)) % (2**62))
        return torch.rand(shape, generator=g).to(device)

    def gumbel(self, shape: tuple[int, ...], device: torch.device) -> Tensor:
        e = -torch.log(self.uniform(shape, torch.device("cpu")).clamp_min(1e-12))
        return -torch.log(e).to(device)


def flat_positions(index: Tensor, tokens: int) -> Tensor:
    """Flat positions b·L + n of token indices (B, U)."""
    rows = torch.arange(index.shape[0], device=index.device)[:, None] * tokens
    return (rows + index).flatten()


def announce_rows(draws, index: Tensor | None, batch: int, tokens: int) -> None:
    """Tell a position-keyed draw source which tokens the next calls serve: `index` (B, U)
    token indices, or None for every token of the batch. Other sources ignore it."""
    rows = getattr(draws, "rows", None)
    if rows is not None:
        rows(torch.arange(batch * tokens) if index is None else flat_positions(index, tokens))


Draws = TorchDraws | RecordedDraws | PositionalDraws
