"""Sources of randomness for sampling: a seeded `torch.Generator`, or recorded streams.

Every random decision of the sampler and of the Bernoulli head goes through a `Draws` object:
`bernoulli(probs)` (bit = u < p with u uniform, u taken in C order over `probs`),
`uniform(shape)` and `gumbel(shape)`. Before the head's chain and before revealing bits the
sampler says which tokens the next Bernoulli calls serve (`serve(index)`, `index` (B, U) token
indices, None for every token); sources that draw by position use it, the others ignore it.

`TorchDraws` draws from an explicit generator; `RecordedDraws` replays the uniform and Gumbel
streams stored with the official reference data (reference README §6), so a run that consumes
them in the official order reproduces the official bits exactly. A source keyed by token
position, for comparing sampling paths, lives with the release baseline
(`bigr.official.positional_draws`).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor


class Draws(Protocol):
    """What the sampler and the Bernoulli head draw from."""

    def serve(self, index: Tensor | None) -> None:
        """The next Bernoulli calls serve tokens `index` (B, U), or every token if None."""

    def uniform(self, shape: tuple[int, ...], device: torch.device) -> Tensor: ...

    def bernoulli(self, probs: Tensor) -> Tensor: ...

    def gumbel(self, shape: tuple[int, ...], device: torch.device) -> Tensor: ...


class TorchDraws:
    """Draws from an explicit `torch.Generator` (on the device of the tensors it serves)."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def serve(self, index: Tensor | None) -> None:
        """Draws do not depend on the tokens served."""

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

    def serve(self, index: Tensor | None) -> None:
        """The streams are consumed in order, whatever tokens they serve."""

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
