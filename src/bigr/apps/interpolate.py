"""Class interpolation (bigr-spec.md §6.3): generate with a weighted mix of two class
embeddings, (1 - w) E[a] + w E[b], which feeds both the class token and the adaLN; the
unconditional branch keeps the null class.

Every frame uses the same seed, so the frames differ by the class mix only (the release seeds
once before its loop, so its frames also differ by noise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..model import BiGR
from ..recipes import RECIPES
from ..sampler import SamplerConfig, sample_codes
from ..tokenizer import BinaryAutoencoder
from .common import check_pair, condition_for, decode

# The release's interpolation settings: 20 cosine steps, guidance 2.5, no Gumbel noise.
INTERPOLATE_SAMPLER = RECIPES["interpolate"]


def interpolate(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    condition_a: int | Tensor,
    condition_b: int | Tensor,
    weights: Sequence[float],
    *,
    sampler: SamplerConfig = INTERPOLATE_SAMPLER,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """Images (F, 3, S, S) and codes (F, L, K), one frame per weight w of `condition_b`. The
    conditions are class ids, or for a text model caption embeddings (text_dim,)."""
    check_pair(model, tokenizer)
    if len(weights) == 0:
        raise ValueError("give at least one interpolation weight")
    # (1, 2) class ids, or (1, 2, T) caption embeddings for a text model
    ends = [condition_for(model, c, 1)[0] for c in (condition_a, condition_b)]
    pair = torch.stack(ends)[None]
    device = pair.device
    frames = []
    if progress is not None:
        progress(0, len(weights))
    for i, w in enumerate(weights):
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"interpolation weights must lie in [0, 1], got {w}")
        mix = torch.tensor([[1.0 - w, w]], device=device)
        generator = torch.Generator(device).manual_seed(seed)
        frames.append(
            sample_codes(model, pair, sampler, condition_weights=mix, generator=generator)
        )
        if progress is not None:
            progress(i + 1, len(weights))
    codes = torch.cat(frames)
    return decode(tokenizer, codes), codes.cpu()
