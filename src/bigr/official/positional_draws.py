"""Uniforms keyed by (phase, call, token position): draws that let two sampling paths which
visit different tokens be compared bit for bit (bigr's default path against the release's
algorithm, `tests/test_release_sampler.py`). Not for sampling: the tables are rebuilt per call.
"""

from __future__ import annotations

import torch
from torch import Tensor


class PositionalDraws:
    """Each `serve(index)` starts a phase; call c of phase p draws the uniforms of a table
    seeded by (seed, p, c) at the served tokens' flat positions b·L + n. So bigr's head on
    unknown tokens only and the release's on all tokens draw the same number for the same bit of
    the same token. Gumbel and order noise come from tables seeded by their call count.
    """

    def __init__(self, seed: int, num_positions: int, bits: int) -> None:
        self.seed, self.num_positions, self.bits = seed, num_positions, bits
        self.phase, self.call, self.noise_calls = -1, 0, 0
        self.positions: Tensor | None = None

    def serve(self, index: Tensor | None) -> None:
        self.phase += 1
        self.call = 0
        if index is None:
            self.positions = torch.arange(self.num_positions)
            return
        tokens = self.num_positions // index.shape[0]
        rows = torch.arange(index.shape[0], device=index.device)[:, None] * tokens
        self.positions = (rows + index).flatten().cpu()

    def _table(self, *key: int) -> Tensor:
        g = torch.Generator().manual_seed(hash((self.seed, *key)) % (2**62))
        return torch.rand(self.num_positions, self.bits, generator=g, dtype=torch.float64)

    def bernoulli(self, probs: Tensor) -> Tensor:
        if self.positions is None:
            raise RuntimeError("PositionalDraws needs serve(index) before a Bernoulli call")
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
