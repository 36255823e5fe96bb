"""Inpainting on held-out images: PSNR inside the regenerated region for a centre box, the
right half and random tokens, against the tokenizer's own reconstruction (the ceiling) and a
mean-colour fill (a floor)."""

from __future__ import annotations

from pathlib import Path

import torch

from bigr.apps.common import unconditional
from bigr.apps.editing import EDIT_SAMPLER
from bigr.apps.masks import box_mask, token_mask
from bigr.data.images import save_grid
from bigr.evaluation.image_sets import real_images
from bigr.evaluation.inpainting import inpainting_benchmark
from bigr.sampler_plan import sampler_record

from ..config import ReportConfig
from ..context import Context
from ..format import fmt

SETTINGS = ("inpaint_images",)  # samples with the edit recipe, not `recipe`


@torch.no_grad()
def compute(ctx: Context) -> dict:
    cfg, model, tok = ctx.config, ctx.model, ctx.tokenizer
    n, grid, size = cfg.inpaint_images, model.config.grid_size, ctx.size
    images, _ = real_images(cfg.reference, n, size)
    g = torch.Generator().manual_seed(cfg.seed)
    random_tokens = torch.rand(n, grid * grid, generator=g) < 0.5
    masks = {
        "centre box": token_mask(box_mask(size, (0.25, 0.25, 0.75, 0.75)), grid).expand(n, -1),
        "right half": token_mask(box_mask(size, (0.5, 0.0, 1.0, 1.0)), grid).expand(n, -1),
        "random 50% tokens": random_tokens,
    }
    sampler = unconditional(EDIT_SAMPLER)
    results, filled = inpainting_benchmark(
        model,
        tok,
        images,
        masks,
        sampler,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        stream="report-inpaint",
    )
    grids = [torch.cat([images[:8], f[:8]]) for f in filled.values()]
    save_grid(torch.cat(grids), ctx.out / "samples" / "inpaint.png", nrow=8)
    return {"n": n, "sampler": sampler_record(sampler), "masks": results}


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
            f"| {name} | {fmt(e['tokens_regenerated'], 1)} | {fmt(e['psnr_inpaint'])} | "
            f"{fmt(e['psnr_reconstruction'])} | {fmt(e['psnr_mean_fill'])} | "
            f"{fmt(e['seconds_per_image'], 4)} |"
        )
    lines += [
        "",
        "![inpainting](samples/inpaint.png)",
        "",
        "Rows: originals, then fills (centre box, right half, random tokens).",
        "",
    ]
    return lines
