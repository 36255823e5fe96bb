"""Enrichment (bigr-spec.md §6.4): add detail to a low-resolution image by regenerating a
regular lattice of tokens at a time from the others.

The input is centre-cropped to S/ds pixels and bilinearly up-sampled to S (a blurry image),
then encoded. Each round views the grid as cells of ds x ds tokens, shuffles the ds² positions
inside a cell and splits them into `groups` groups; for each group it regenerates that position
in every cell (a lattice) with everything else known, feeding the result into the next group
and round. Unlike the release, only the lattice tokens are regenerated (its budget bug re-drew
up to twice as many known tokens); the class is null, so guidance runs as a single pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..model import BiGR
from ..recipes import RECIPES
from ..sampler import SamplerConfig, sample_codes
from ..tokenizer import BinaryAutoencoder
from .common import check_pair, condition_for, decode, encode, unconditional

# The release's enrichment settings: 20 linear-schedule steps per lattice, 4 rounds.
ENRICH_SAMPLER = RECIPES["enrich"]


@dataclass
class EnrichResult:
    images: Tensor  # (rounds + 1, 3, S, S): the blurry input's reconstruction, then each round
    codes: Tensor  # (1, L, K) final codes
    low_res: Tensor  # (3, S, S) the up-sampled low-resolution input


def low_resolution(image: Tensor, ds: int) -> Tensor:
    """(3, S, S) -> (3, S, S): centre S/ds crop (already made by the caller's loader when it
    loads at S/ds) up-sampled bilinearly to S."""
    size = image.shape[-1] * ds
    return F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False)[
        0
    ].clamp(0, 1)


def lattice_groups(
    grid_size: int, ds: int, groups: int, generator: torch.Generator | None = None
) -> list[Tensor]:
    """Token masks (L,) bool, one per group: sub-position p of every ds x ds cell is token
    (a ds + p // ds, b ds + p % ds) of cell (a, b); the ds² sub-positions are shuffled and
    dealt into `groups` groups."""
    if grid_size % ds:
        raise ValueError(f"a {grid_size}x{grid_size} grid does not split into {ds}x{ds} cells")
    order = torch.randperm(ds * ds, generator=generator).tolist()
    masks = []
    for g in range(min(groups, ds * ds)):
        mask = torch.zeros(grid_size, grid_size, dtype=torch.bool)
        for p in order[g::groups]:
            mask[p // ds :: ds, p % ds :: ds] = True
        masks.append(mask.view(-1))
    return masks


def enrich(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    small_image: Tensor,
    *,
    ds: int = 2,
    rounds: int = 4,
    groups: int = 4,
    sampler: SamplerConfig = ENRICH_SAMPLER,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> EnrichResult:
    """Enrich `small_image` (3, S/ds, S/ds), the centre crop of the input at 1/ds scale."""
    check_pair(model, tokenizer)
    size = tokenizer.config.image_size
    if small_image.shape[-1] * ds != size:
        raise ValueError(
            f"enrichment by {ds} needs a {size // ds}px image for a {size}px tokenizer"
        )
    low = low_resolution(small_image, ds)
    codes = encode(tokenizer, low)
    null = condition_for(model, None, 1)
    sampler = unconditional(sampler)
    generator = torch.Generator(null.device).manual_seed(seed)
    shuffler = torch.Generator().manual_seed(seed)  # lattice order, drawn on the host
    images = [decode(tokenizer, codes)[0]]
    total = rounds * min(groups, ds * ds)
    done = 0
    if progress is not None:
        progress(0, total)
    for _ in range(rounds):
        for lattice in lattice_groups(model.config.grid_size, ds, groups, shuffler):
            known = (~lattice).to(codes.device)[None]
            codes = sample_codes(
                model, null, sampler, known_codes=codes, known_mask=known, generator=generator
            )
            done += 1
            if progress is not None:
                progress(done, total)
        images.append(decode(tokenizer, codes)[0])
    return EnrichResult(images=torch.stack(images), codes=codes.cpu(), low_res=low)
