"""Inpainting on held-out images: PSNR inside the regenerated region for a centre box, the
right half and random tokens, against the tokenizer's own reconstruction (the ceiling) and a
mean-colour fill (a floor)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from torch import Tensor

from .... import distributed
from ....apps.common import unconditional
from ....apps.editing import EDIT_SAMPLER
from ....apps.masks import box_mask, pixel_mask_of_tokens, token_mask
from ....images import save_grid
from ....sampler import SamplerConfig, sample_codes
from ..config import ReportConfig
from ..context import _Context, _encode, real_images
from ..format import _fmt

SETTINGS = ("inpaint_images",)  # samples with the edit recipe, not `recipe`


def _region_psnr(a: Tensor, b: Tensor, region: Tensor) -> Tensor:
    """(N,) PSNR over the pixels where `region` (N, S, S) is true."""
    err = (a - b).pow(2).mean(1)  # (N, S, S)
    mse = (err * region).flatten(1).sum(1) / region.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def _fill(
    ctx: _Context, sampler: SamplerConfig, codes: Tensor, tokens: Tensor, name: str
) -> tuple[Tensor, float]:
    """The images with the `tokens` (N, T) regenerated, and the seconds spent sampling."""
    cfg, model = ctx.config, ctx.model
    device = model.transformer.mask_token.device
    n = len(tokens)
    null = model.transformer.null_condition(n, device)
    filled, seconds = [], 0.0
    for b, rows in enumerate(torch.arange(n).split(cfg.batch_size)):
        gen = distributed.generator(device, cfg.seed, "report-inpaint", name, b)
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
        filled.append(ctx.tokenizer.decode(out).clamp(0, 1).cpu())
    return torch.cat(filled), seconds


@torch.no_grad()
def compute(ctx: _Context) -> dict:
    cfg, model, tok = ctx.config, ctx.model, ctx.tokenizer
    n, grid, size = cfg.inpaint_images, model.config.grid_size, ctx.size
    images, _ = real_images(cfg.reference, n, size)
    codes = _encode(tok, images, cfg.batch_size)
    recon = torch.cat([tok.decode(c).clamp(0, 1).cpu() for c in codes.split(cfg.batch_size)])
    g = torch.Generator().manual_seed(cfg.seed)
    random_tokens = torch.rand(n, grid * grid, generator=g) < 0.5
    masks = {
        "centre box": token_mask(box_mask(size, (0.25, 0.25, 0.75, 0.75)), grid).expand(n, -1),
        "right half": token_mask(box_mask(size, (0.5, 0.0, 1.0, 1.0)), grid).expand(n, -1),
        "random 50% tokens": random_tokens,
    }
    sampler = unconditional(EDIT_SAMPLER)
    results, grids = {}, []
    for name, tokens in masks.items():
        region = torch.stack([pixel_mask_of_tokens(t, grid, size) for t in tokens])
        filled_t, seconds = _fill(ctx, sampler, codes, tokens, name)
        # A floor: every regenerated pixel set to the mean colour of the kept pixels.
        keep = (~region)[:, None].float()
        mean = (images * keep).sum((2, 3)) / keep.sum((2, 3)).clamp_min(1)
        mean_fill = torch.where(region[:, None], mean[:, :, None, None], images)
        results[name] = {
            "tokens_regenerated": float(tokens.float().sum(1).mean()),
            "psnr_inpaint": float(_region_psnr(filled_t, images, region).mean()),
            "psnr_reconstruction": float(_region_psnr(recon, images, region).mean()),
            "psnr_mean_fill": float(_region_psnr(mean_fill, images, region).mean()),
            "seconds_per_image": seconds / n,
        }
        grids.append(torch.cat([images[:8], filled_t[:8]]))
    save_grid(torch.cat(grids), ctx.out / "samples" / "inpaint.png", nrow=8)
    return {"n": n, "sampler": dataclasses.asdict(sampler), "masks": results}


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    q = result
    lines = [
        f"## Inpainting benchmark ({q['n']} held-out images)",
        "",
        "PSNR (dB) inside the regenerated tokens' pixels, against the original image. "
        "The tokenizer's reconstruction is the ceiling (the generator can at best recover "
        "the true codes); a mean-colour fill of the region is a floor. Sampler: the "
        f"release's app settings ({q['sampler']['steps']} {q['sampler']['schedule']} "
        "steps), null class.",
        "",
        "| mask | tokens regenerated | inpainted | reconstruction (ceiling) | mean fill | "
        "s/image |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in q["masks"].items():
        lines.append(
            f"| {name} | {_fmt(e['tokens_regenerated'], 1)} | {_fmt(e['psnr_inpaint'])} | "
            f"{_fmt(e['psnr_reconstruction'])} | {_fmt(e['psnr_mean_fill'])} | "
            f"{_fmt(e['seconds_per_image'], 4)} |"
        )
    lines += [
        "",
        "![inpainting](samples/inpaint.png)",
        "",
        "Rows: originals, then fills (centre box, right half, random tokens).",
        "",
    ]
    return lines
