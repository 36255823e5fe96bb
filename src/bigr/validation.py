"""What the public Python API checks in what a caller passes, before any work, with the same
wording as the command line: a `TypeError` for the wrong kind of thing, a `ValueError` for the
right kind with a wrong value. Without these, PyTorch would raise an error about a matmul or a
dtype deep inside, or compute a silently wrong answer (images in 0..255, masks of 0/255 bytes,
codes that are not bits).
"""

from __future__ import annotations

import torch
from torch import Tensor

# [0, 1] images may overshoot by rounding (a decoder's output, a resize): tolerated up to this
IMAGE_SLACK = 1e-3


def check_tensor(value, what: str) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{what} must be a torch tensor, got {type(value).__name__}")
    return value


def check_bits(codes: Tensor, what: str = "codes") -> Tensor:
    """Codes must hold bits: 0 and 1 only (as floats, integers or booleans)."""
    check_tensor(codes, what)
    if codes.is_complex():
        raise TypeError(f"{what} must hold bits 0 and 1, got a {codes.dtype} tensor")
    if codes.numel() and not bool(((codes == 0) | (codes == 1)).all()):
        finite = codes[torch.isfinite(codes)] if codes.is_floating_point() else codes
        seen = "NaN or infinite values" if finite.numel() < codes.numel() else (
            f"values in [{float(finite.min()):g}, {float(finite.max()):g}]"
        )  # fmt: skip
        raise ValueError(f"{what} must hold bits 0 and 1, got {seen}")
    return codes


def check_images(images: Tensor, what: str = "images") -> Tensor:
    """Images must be floating point and in [0, 1]; 0..255 values are named as such."""
    check_tensor(images, what)
    if not images.is_floating_point():
        raise TypeError(
            f"{what} must be floating point in [0, 1], got {images.dtype} (divide 0..255 "
            "bytes by 255)"
        )
    if images.numel() == 0:
        return images
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{what} hold NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    if low < -IMAGE_SLACK or high > 1 + IMAGE_SLACK:
        hint = " (0..255 values? divide by 255)" if high > 1.5 else ""
        raise ValueError(f"{what} must be in [0, 1], got values in [{low:g}, {high:g}]{hint}")
    return images


def check_bool_mask(mask: Tensor, shape: tuple[int, ...], what: str = "mask") -> Tensor:
    """A mask must be a bool tensor of `shape` (True: the pixels or tokens it selects)."""
    check_tensor(mask, what)
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{what} must be a bool tensor (True: regenerate), got {mask.dtype}; for a 0/255 "
            "or 0/1 mask use mask > 0"
        )
    if tuple(mask.shape) != tuple(shape):
        size = "x".join(map(str, shape))
        raise ValueError(f"{what} must be {size}, got {tuple(mask.shape)}")
    return mask


def check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        kind = type(generator).__name__
        raise TypeError(f"generator must be a torch.Generator or None, got {kind}")


def check_sampler(config) -> None:
    """A `SamplerConfig` with valid values (its own `validate`)."""
    from .sampler_plan import SamplerConfig

    if not isinstance(config, SamplerConfig):
        raise TypeError(
            f"the sampler settings must be a SamplerConfig (e.g. bigr.recipe('fast') or "
            f"SamplerConfig(steps=8)), got {type(config).__name__}"
        )
    config.validate()
