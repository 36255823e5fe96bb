"""FID-`num_sweep` of generators trained otherwise (e.g. predicting x0), with the recipe."""

from __future__ import annotations

import json
from pathlib import Path

from ....model import BiGR
from ..config import FID_SETTINGS, ReportConfig
from ..context import _Context, _slug
from ..format import FID_HEADER, _fid_row, _fmt

SETTINGS = (*FID_SETTINGS, "num_sweep", "variants")

# Written after the orders section when the report has no variants section.
NOT_GIVEN = [
    "Flip prediction vs predicting x0: the shipped generator was trained with flip "
    "prediction only (as released); no variant was given to this report "
    "(`--variant LABEL=DIR`), so no number is given.",
    "",
]


def compute(ctx: _Context) -> dict:
    """FID-`num_sweep` of each variant generator with the recipe (same seeds, same reference)."""
    cfg, n = ctx.config, ctx.config.num_sweep
    device = ctx.model.transformer.mask_token.device
    results = {}
    for label, directory in cfg.variants:
        model = BiGR.from_pretrained(directory, device=device).eval()
        if (model.config.code_bits, model.config.grid_size) != (
            ctx.model.config.code_bits,
            ctx.model.config.grid_size,
        ):
            raise ValueError(f"variant {label!r} ({directory}) does not match the tokenizer")
        entry = ctx.sample_fid(cfg.recipe, n, f"variant_{_slug(label)}", model=model)
        config_file = Path(directory) / "config.json"
        extra = json.loads(config_file.read_text()).get("extra", {})
        results[label] = {
            **entry,
            "directory": str(directory),
            "predict_flip": model.config.head.predict_flip,
            "trained_steps": extra.get("trained_steps"),
        }
    return {"floor": ctx.floor(n, cfg.seed + 1), "variants": results}


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    v = result
    n = v["floor"]["n"]
    lines = [
        f"## Training variants: FID ({n} samples) of generators trained otherwise",
        "",
        "Each variant was trained by `bigr train` with the same data, recipe and budget "
        "except for what its label names, and sampled here with the recommended recipe. "
        f"Real-data floor at the same n: FID {_fmt(v['floor']['fid'])}.",
        "",
        *FID_HEADER,
    ]
    for label, e in v["variants"].items():
        target = "flips" if e["predict_flip"] else "x0"
        steps = e.get("trained_steps")
        lines.append(_fid_row(f"{label} (predicts {target}, {steps or '?'} steps)", e))
    lines += [""]
    return lines
