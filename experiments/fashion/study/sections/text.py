"""Text models: do samples match their prompts (class by a probe, tone by the captioning rule)?"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor

from bigr import distributed
from bigr.apps.common import unconditional
from bigr.data.images import save_grid
from bigr.evaluation.image_sets import fid_entry
from bigr.sampler import sample_codes
from bigr.sampler_plan import sampler_record

from ..config import ReportConfig
from ..context import Context, pixel_classifier
from ..format import fmt

SETTINGS = (
    "recipe",
    "train_data",
    "probe_train",
    "probe_test",
    "probe_epochs",
    "num_text",
    "text_fid",
    "num_fid",
)


def text_prompts() -> list[dict]:
    """One prompt per (class, tone): "a {tone} {item}" with each class's first name."""
    from bigr.data.captions import ITEMS, TONES

    return [
        {"text": f"a {tone} {names[0]}", "class": c, "tone": t}
        for c, names in enumerate(ITEMS)
        for t, tone in enumerate(TONES)
    ]


def _sample(ctx: Context, conditions: Tensor) -> tuple[Tensor, Tensor, float]:
    """Prompted samples of `conditions`, as many unprompted (null) ones, and the seconds spent
    sampling the prompted codes."""
    cfg, model, tok = ctx.config, ctx.model, ctx.tokenizer
    device = model.transformer.mask_token.device
    images, seconds = [], 0.0
    null_images = []
    for b, rows in enumerate(torch.arange(len(conditions)).split(cfg.batch_size)):
        gen = distributed.generator(device, cfg.seed, "report-text", b)
        t0 = time.perf_counter()
        codes = sample_codes(model, conditions[rows], cfg.recipe, generator=gen)
        seconds += time.perf_counter() - t0
        null = model.transformer.null_condition(len(rows), device)
        gen = distributed.generator(device, cfg.seed, "report-text-null", b)
        null_codes = sample_codes(model, null, unconditional(cfg.recipe), generator=gen)
        with torch.no_grad():
            images.append(tok.decode(codes).clamp(0, 1).cpu())
            null_images.append(tok.decode(null_codes).clamp(0, 1).cpu())
    return torch.cat(images), torch.cat(null_images), seconds


def compute(ctx: Context) -> dict:
    """Does a sample match its prompt? Class by a linear probe on real pixels, tone by the
    captioning rule itself; against the same measures on unprompted (null) samples."""
    from bigr.data.captions import tone_of
    from bigr.data.text_encoder import TextEncoder

    cfg, model = ctx.config, ctx.model
    prompts = text_prompts()
    per_prompt = max(1, cfg.num_text // len(prompts))
    embeddings = TextEncoder()([p["text"] for p in prompts])
    device = model.transformer.mask_token.device
    conditions = embeddings.repeat_interleave(per_prompt, 0).to(device)
    target_class = torch.tensor([p["class"] for p in prompts]).repeat_interleave(per_prompt)
    target_tone = torch.tensor([p["tone"] for p in prompts]).repeat_interleave(per_prompt)
    images_t, null_t, seconds = _sample(ctx, conditions)
    class_of, probe_top1 = pixel_classifier(ctx)  # a linear probe on real pixels
    rows = []
    for i, p in enumerate(prompts):
        sl = slice(i * per_prompt, (i + 1) * per_prompt)
        rows.append(
            {
                "prompt": p["text"],
                "class_match": float((class_of(images_t[sl]) == p["class"]).float().mean()),
                "tone_match": float((tone_of(images_t[sl]) == p["tone"]).float().mean()),
            }
        )
    grid = torch.stack([images_t[i * per_prompt] for i in range(len(prompts))])
    save_grid(grid, ctx.out / "samples" / "text_prompts.png", nrow=3)
    stats = ctx.stats(images_t) if cfg.text_fid and ctx.extractor is not None else None
    return {
        "n": len(images_t),
        "per_prompt": per_prompt,
        "sampler": sampler_record(cfg.recipe),
        "seconds_per_image": seconds / len(images_t),
        "class_match": float((class_of(images_t) == target_class).float().mean()),
        "tone_match": float((tone_of(images_t) == target_tone).float().mean()),
        "null_class_match": float((class_of(null_t) == target_class).float().mean()),
        "null_tone_match": float((tone_of(null_t) == target_tone).float().mean()),
        "probe_real_top1": probe_top1,
        "fid": None if stats is None else fid_entry(stats, ctx.reference())["fid"],
        "prompts": rows,
    }


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    t = result
    return [
        f"## Text-to-image: do samples match their prompts? ({t['n']} samples)",
        "",
        f'Prompts "a {{tone}} {{item}}" for the 10 classes x 3 tones, {t["per_prompt"]} '
        "samples each. Class: a linear probe on real pixels (top-1 "
        f"{fmt(t['probe_real_top1'])}% on real held-out images). Tone: the captioning rule "
        "(garment brightness). Unprompted samples (null condition) give the chance level.",
        "",
        "| | class match (%) | tone match (%) |",
        "|---|---|---|",
        f"| prompted samples | {fmt(100 * t['class_match'])} | {fmt(100 * t['tone_match'])} |",
        f"| unprompted samples | {fmt(100 * t['null_class_match'])} | "
        f"{fmt(100 * t['null_tone_match'])} |",
        "",
        (
            f"FID of the prompted samples against the reference: {fmt(t['fid'])} (n = {t['n']}). "
            if t["fid"] is not None
            else "FID not computed for this report (`--text-fid` adds it). "
        )
        + f"Sampling: {fmt(t['seconds_per_image'], 4)} s per image.",
        "",
        "![prompts](samples/text_prompts.png)",
        "",
        "One sample per prompt; rows: classes 0-9, columns: dark, grey, light.",
        "",
    ]
