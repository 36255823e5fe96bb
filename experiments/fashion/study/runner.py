"""Running a report: the sections asked for (computed or from the cache), then the markdown."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from bigr.model import BiGR
from bigr.tokenizer import BinaryAutoencoder

from .cache import cached, section_key, valid_cached, weights_fingerprint
from .config import ReportConfig
from .context import Context
from .markdown import write_markdown
from .sections import CLASS_SECTIONS, SECTIONS, TEXT_SECTIONS


def precompute_real(tokenizer_size: int, out_dir: str | Path, config: ReportConfig, extractor=None):
    """The model-free part of a report (reference statistics, real-data floors), so that it
    can run while the model still trains."""
    if extractor is None:
        from bigr.evaluation.inception import InceptionFeatures

        extractor = InceptionFeatures()
    out = Path(out_dir)
    ctx = Context(None, None, extractor, config, out, force=False, image_size=tokenizer_size)
    (out / "results").mkdir(parents=True, exist_ok=True)
    return {
        "fid": ctx.floor(config.num_fid, config.seed),
        "sweep": ctx.floor(config.num_sweep, config.seed + 1),
    }


def _sections(model: BiGR, config: ReportConfig, sections: tuple[str, ...] | None):
    """The sections to run: the model's defaults, or `sections` once checked."""
    if sections is None:
        sections = TEXT_SECTIONS if model.config.text_dim else CLASS_SECTIONS
        if config.variants and not model.config.text_dim:
            sections = (*sections, "variants")
    if "variants" in sections and not config.variants:
        raise ValueError("the variants section needs variant models (--variant LABEL=DIR)")
    if model.config.text_dim and {"fid", "sweeps", "speed", "orders", "variants"} & set(sections):
        raise ValueError(
            "fid, sweeps, speed and orders sample by class; a text model has the text section"
        )
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown report sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    return sections


def _compute(ctx: Context, name: str) -> dict:
    """Section `name` computed now, with how many of its sample sets were kept ones: its cost
    then counts only the sets measured in this run."""
    before = ctx.sets_reused
    result = SECTIONS[name](ctx)
    result["sets_reused"] = ctx.sets_reused - before
    return result


def run_report(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    out_dir: str | Path,
    config: ReportConfig,
    *,
    extractor=None,
    sections: tuple[str, ...] | None = None,
    force: bool = False,
    model_name: str = "",
    progress: bool = True,
) -> Path:
    """Compute (or load cached) sections, then write `OUT/report.md` with its plots."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = _sections(model, config, sections)
    needs_inception = {"tokenizer", "fid", "sweeps", "speed", "orders", "variants"} & set(
        sections
    ) or ("text" in sections and config.text_fid)
    if extractor is None and needs_inception:
        from bigr.evaluation.inception import InceptionFeatures

        extractor = InceptionFeatures()
    ctx = Context(model, tokenizer, extractor, config, out, force, progress=progress)
    results = {}
    weights = weights_fingerprint(model, tokenizer)
    ctx.weights = weights
    for name in sections:
        if progress:
            print(f"report: {name} ...", flush=True)
        key = section_key(name, config, model_name, weights)
        results[name] = cached(out, name, force, lambda name=name: _compute(ctx, name), key)
    # the model's other sections that are stored for these same settings and weights join
    # report.md too, so a report built up a few sections per session shows all it has
    for name in _sections(model, config, None):
        if name not in results:
            stored = valid_cached(out, name, section_key(name, config, model_name, weights))
            if stored is not None:
                results[name] = stored
    machine = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "device": str(model.transformer.mask_token.device),
    }
    if extractor is not None and type(extractor).__name__ != "InceptionFeatures":
        machine["features"] = type(extractor).__name__
    write_markdown(out, results, config, machine, model_name)
    return out / "report.md"
