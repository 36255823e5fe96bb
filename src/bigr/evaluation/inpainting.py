"""The inpainting benchmark: regenerate masked tokens of real images and measure PSNR inside
the regenerated region, beside the tokenizer's own reconstruction (the ceiling: at best the
generator recovers the true codes) and a mean-colour fill of the region (a floor)."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from .. import distributed
from ..apps.masks import pixel_mask_of_tokens
from ..model import BiGR
from ..sampler import SamplerConfig, sample_codes
from ..tokenizer import BinaryAutoencoder
from .image_sets import encode_images


def region_psnr(a: Tensor, b: Tensor, region: Tensor) -> Tensor:
    """(N,) PSNR in dB of images `a` against `b` (N, 3, S, S) in [0, 1], over the pixels where
    `region` (N, S, S) is true."""
    err = (a - b).pow(2).mean(1)  # (N, S, S)
    mse = (err * region).flatten(1).sum(1) / region.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def mean_fill(images: Tensor, region: Tensor) -> Tensor:
    """`images` with every pixel of `region` (N, S, S) set to the mean colour of the rest."""
    keep = (~region)[:, None].float()
    mean = (images * keep).sum((2, 3)) / keep.sum((2, 3)).clamp_min(1)
    return torch.where(region[:, None], mean[:, :, None, None], images)


@torch.no_grad()
def inpaint_tokens(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    codes: Tensor,
    tokens: Tensor,
    sampler: SamplerConfig,
    *,
    batch_size: int,
    seed: int,
    stream: tuple = ("inpaint",),
) -> tuple[Tensor, float]:
    """Images (N, 3, S, S) decoded from `codes` (N, T, K) with the `tokens` (N, T) regenerated
    under the null condition, and the seconds spent sampling. Batch b draws from a generator
    seeded by (seed, *stream, b)."""
    device = model.transformer.mask_token.device
    n = len(tokens)
    null = model.transformer.null_condition(n, device)
    filled, seconds = [], 0.0
    for b, rows in enumerate(torch.arange(n).split(batch_size)):
        gen = distributed.generator(device, seed, *stream, b)
        t0 = time.perf_counter()
        out = sample_codes(
            model,
            null[rows],
            sampler,
            known_codes=codes[rows].to(device),
            known_mask=~tokens[rows].to(device),
            generator=gen,
        )
        seconds += time.perf_counter() - t0
        filled.append(tokenizer.decode(out).clamp(0, 1).cpu())
    return torch.cat(filled), seconds


@torch.no_grad()
def inpainting_benchmark(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    images: Tensor,
    masks: dict[str, Tensor],
    sampler: SamplerConfig,
    *,
    batch_size: int,
    seed: int,
    stream: str = "inpaint",
) -> tuple[dict[str, dict], dict[str, Tensor]]:
    """Per mask name: mean PSNR inside the region of the inpainted, reconstructed and
    mean-filled images, the tokens regenerated and seconds per image; and the inpainted images.
    `images` (N, 3, S, S) in [0, 1]; `masks` name -> (N, T) bool, true = regenerate."""
    grid, size = model.config.grid_size, images.shape[-1]
    codes = encode_images(tokenizer, images, batch_size)
    recon = torch.cat([tokenizer.decode(c).clamp(0, 1).cpu() for c in codes.split(batch_size)])
    results, filled = {}, {}
    for name, tokens in masks.items():
        if tokens.shape != codes.shape[:2] or tokens.dtype != torch.bool:
            raise ValueError(
                f"mask {name!r}: expected a bool tensor of shape {tuple(codes.shape[:2])}, "
                f"got {tokens.dtype} {tuple(tokens.shape)}"
            )
        region = torch.stack([pixel_mask_of_tokens(t, grid, size) for t in tokens])
        out, seconds = inpaint_tokens(
            model,
            tokenizer,
            codes,
            tokens,
            sampler,
            batch_size=batch_size,
            seed=seed,
            stream=(stream, name),
        )
        results[name] = {
            "tokens_regenerated": float(tokens.float().sum(1).mean()),
            "psnr_inpaint": float(region_psnr(out, images, region).mean()),
            "psnr_reconstruction": float(region_psnr(recon, images, region).mean()),
            "psnr_mean_fill": float(region_psnr(mean_fill(images, region), images, region).mean()),
            "seconds_per_image": seconds / len(images),
        }
        filled[name] = out
    return results, filled
