"""FID of `num_fid` samples of the recommended recipe, beside the real-data floor."""

from __future__ import annotations

from pathlib import Path

from ..config import FID_SETTINGS, ReportConfig
from ..context import Context
from ..format import FID_HEADER, fid_row

SETTINGS = FID_SETTINGS


def compute(ctx: Context) -> dict:
    cfg = ctx.config
    main = ctx.sample_fid(cfg.recipe, cfg.num_fid, "recipe")
    return {"model": main, "floor": ctx.floor(cfg.num_fid, cfg.seed)}


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    f = result
    return [
        "## FID of the recommended recipe against the real-data floor",
        "",
        *FID_HEADER,
        fid_row("model samples", f["model"]),
        fid_row(f"real floor (`{config.train_data}`, random subset)", f["floor"]),
        "",
        "![samples](samples/recipe.png)",
        "",
    ]
