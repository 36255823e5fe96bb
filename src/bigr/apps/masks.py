"""From a pixel mask to a token mask, and back.

A token covers a `patch` x `patch` square of pixels (patch = image size / grid size, 16 for the
released tokenizers). The rule deciding when a partly masked token is regenerated:

- `any` (default): a token is regenerated as soon as one of its pixels is masked. Keeping a
  partly masked token would keep part of what the user asked to replace (the token's code
  describes its whole patch, masked pixels included); regenerating it costs a few extra
  tokens, and blending restores the unmasked pixels of those patches afterwards.
- `all`: only tokens whose every pixel is masked (the generated region stays inside the mask;
  content under a partly covered token survives).
- `majority`: at least half of the token's pixels are masked.
- `official`: the release's rule, nearest-neighbour down-sampling of the mask, i.e. the
  top-left pixel of each patch decides (shifts the region by up to a patch).

Masks: pixel masks (H, W) bool, True = regenerate; token masks (L,) bool in raster order
(token n at grid row n // G, column n % G), True = regenerate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

RULES = ("any", "all", "majority", "official")


def token_mask(pixel_mask: Tensor, grid_size: int, rule: str = "any") -> Tensor:
    """(H, W) bool pixel mask -> (G·G,) bool token mask."""
    if rule not in RULES:
        raise ValueError(f"token-mask rule must be one of {', '.join(RULES)}; got {rule!r}")
    h, w = pixel_mask.shape
    if h != w or h % grid_size:
        raise ValueError(f"a {h}x{w} mask does not tile into a {grid_size}x{grid_size} grid")
    patch = h // grid_size
    if rule == "official":
        return pixel_mask[::patch, ::patch].reshape(-1).clone()
    fraction = F.avg_pool2d(pixel_mask.float()[None, None], patch)[0, 0].reshape(-1)  # (L,)
    if rule == "any":
        return fraction > 0
    if rule == "all":
        return fraction >= 1
    return fraction >= 0.5


def pixel_mask_of_tokens(tokens: Tensor, grid_size: int, image_size: int) -> Tensor:
    """(L,) bool token mask -> (S, S) bool pixel mask covering the tokens' patches."""
    patch = image_size // grid_size
    grid = tokens.view(grid_size, grid_size)
    return grid.repeat_interleave(patch, 0).repeat_interleave(patch, 1)


def box_mask(image_size: int, box: tuple[float, float, float, float]) -> Tensor:
    """(S, S) bool mask of a box given as fractions (left, top, right, bottom) in [0, 1]."""
    left, top, right, bottom = (round(v * image_size) for v in box)
    if not (0 <= left < right <= image_size and 0 <= top < bottom <= image_size):
        raise ValueError(f"box {box} is empty or outside the image")
    mask = torch.zeros(image_size, image_size, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def feather(mask: Tensor, radius: int) -> Tensor:
    """Soft (S, S) float mask: the hard mask blurred by a box filter of `radius` pixels."""
    soft = mask.float()[None, None]
    if radius <= 0:
        return soft[0, 0]
    k = 2 * radius + 1
    soft = F.avg_pool2d(F.pad(soft, (radius,) * 4, mode="replicate"), k, stride=1)
    return soft[0, 0]
