"""Inpainting, outpainting and class-conditional editing (bigr-spec.md §6.1-6.2).

All three regenerate the tokens under a pixel mask and keep the others: inpainting with the
null class (guidance is then meaningless, so one pass runs instead of the release's two),
editing with a chosen class (guidance matters), outpainting with the mask inverted (the mask
marks what to keep). Unlike the release, the reveal budget is the number of regenerated tokens,
so kept tokens are never re-drawn. The result can be blended into the original outside the
mask (the release used Poisson blending through OpenCV; we alpha-blend, optionally feathered).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import BiGR
from ..recipes import RECIPES
from ..sampler import SamplerConfig, sample_codes
from ..tokenizer import BinaryAutoencoder
from ..validation import check_bool_mask, check_images
from .common import blend, check_pair, condition_for, decode, encode, unconditional
from .masks import token_mask

# The release's app settings: 25 linear-schedule steps, guidance 2.5, no Gumbel noise.
EDIT_SAMPLER = RECIPES["edit"]


@dataclass
class EditResult:
    images: Tensor  # (N, 3, S, S) in [0, 1]: blended results (or raw ones without blending)
    raw: Tensor  # (N, 3, S, S) decoded results before blending
    codes: Tensor  # (N, L, K)
    original: Tensor  # (3, S, S) the cropped input
    reconstruction: Tensor  # (3, S, S) the tokenizer's reconstruction of the input
    regenerated: Tensor  # (L,) bool, tokens that were regenerated
    pixel_mask: Tensor  # (S, S) bool, pixels the user asked to regenerate


def regenerate(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    image: Tensor,
    pixel_mask: Tensor,
    *,
    condition: int | Tensor | None = None,
    num: int = 1,
    sampler: SamplerConfig = EDIT_SAMPLER,
    rule: str = "any",
    blend_result: bool = True,
    feather_radius: int | None = 0,
    stochastic_codes: bool = False,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EditResult:
    """Regenerate the tokens under `pixel_mask` (S, S) of `image` (3, S, S), `num` times, under
    `condition`: a class id, or for a text model a caption embedding (text_dim,); None: the
    null condition."""
    check_pair(model, tokenizer)
    size, grid = tokenizer.config.image_size, model.config.grid_size
    check_images(image, "the image")
    if tuple(image.shape) != (3, size, size):
        raise ValueError(f"the image must be 3x{size}x{size}, got {tuple(image.shape)}")
    check_bool_mask(pixel_mask, (size, size), "the mask")
    tokens = token_mask(pixel_mask, grid, rule)
    if not tokens.any():
        raise ValueError("the mask selects no token: nothing to regenerate")
    codes = encode(tokenizer, image, stochastic=stochastic_codes, generator=generator)
    conditions = condition_for(model, condition, num)
    if condition is None:
        sampler = unconditional(sampler)
    known = (~tokens).to(codes.device).expand(num, -1)
    out = sample_codes(
        model,
        conditions,
        sampler,
        known_codes=codes.expand(num, -1, -1),
        known_mask=known,
        generator=generator,
        progress=progress,
    )
    raw = decode(tokenizer, out)
    recon = decode(tokenizer, codes)[0]
    images = blend(raw, image, pixel_mask, feather_radius or 0) if blend_result else raw
    return EditResult(
        images=images,
        raw=raw,
        codes=out.cpu(),
        original=image,
        reconstruction=recon,
        regenerated=tokens,
        pixel_mask=pixel_mask,
    )


def inpaint(
    model: BiGR, tokenizer: BinaryAutoencoder, image: Tensor, pixel_mask: Tensor, **kwargs
) -> EditResult:
    """Fill the masked region from its surroundings (null class)."""
    return regenerate(model, tokenizer, image, pixel_mask, condition=None, **kwargs)


def edit(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    image: Tensor,
    pixel_mask: Tensor,
    condition: int | Tensor,
    **kwargs,
) -> EditResult:
    """Regenerate the masked region under `condition`: a class id, or for a text model a
    caption embedding (text_dim,)."""
    return regenerate(model, tokenizer, image, pixel_mask, condition=condition, **kwargs)


def outpaint(
    model: BiGR, tokenizer: BinaryAutoencoder, image: Tensor, keep_mask: Tensor, **kwargs
) -> EditResult:
    """Keep the region under `keep_mask` and regenerate everything around it."""
    rule = kwargs.pop("rule", "any")
    size = tokenizer.config.image_size
    check_bool_mask(keep_mask, (size, size), "the mask")
    if kwargs.get("feather_radius") is None:
        # A hard paste of the kept pixels shows a seam where they meet the generated ones
        # (the decoder's output differs there from the original): soften it over half a
        # token's width by default.
        patch = tokenizer.config.image_size // model.config.grid_size
        kwargs["feather_radius"] = max(1, patch // 2)
    # A token is kept only if it lies wholly in the kept region, so that generated content
    # never overwrites kept pixels: regenerate every token touching the outside ("any").
    result = regenerate(model, tokenizer, image, ~keep_mask, rule=rule, **kwargs)
    return dataclasses.replace(result, pixel_mask=~keep_mask)
