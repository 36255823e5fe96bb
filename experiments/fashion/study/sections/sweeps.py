"""The speed/quality curve: FID of `num_sweep` samples against unmasking and diffusion steps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import FID_SETTINGS, ReportConfig
from ..context import Context
from ..format import FID_HEADER, fid_row, fmt

SETTINGS = (*FID_SETTINGS, "num_sweep", "steps_sweep", "head_sweep")


def compute(ctx: Context) -> dict:
    cfg, n = ctx.config, ctx.config.num_sweep
    floor = ctx.floor(n, cfg.seed + 1)
    steps = [
        ctx.sample_fid(dataclasses.replace(cfg.recipe, steps=s), n, f"steps_{s}")
        for s in cfg.steps_sweep
    ]
    head = [
        ctx.sample_fid(dataclasses.replace(cfg.recipe, head_steps=h), n, f"head_{h}")
        for h in cfg.head_sweep
    ]
    return {"floor": floor, "steps": steps, "head_steps": head}


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    from bigr.plots import plot_curves

    s = result
    n = s["floor"]["n"]
    lines = [
        f"## Speed/quality: FID ({n} samples) against unmasking and diffusion steps",
        "",
        f"Real-data floor at the same n: FID {fmt(s['floor']['fid'])}.",
        "",
        *FID_HEADER,
    ]
    lines += [fid_row(f"{e['sampler']['steps']} unmasking steps", e) for e in s["steps"]]
    lines += [fid_row(f"{e['sampler']['head_steps']} diffusion steps", e) for e in s["head_steps"]]
    lines += ["", "![speed/quality](speed_quality.png)", ""]
    plot_curves(
        out / "speed_quality.png",
        {
            "unmasking steps " + ",".join(str(e["sampler"]["steps"]) for e in s["steps"]): (
                [e["seconds_per_image"] * 1000 for e in s["steps"]],
                [e["fid"] for e in s["steps"]],
            ),
            "diffusion steps "
            + ",".join(str(e["sampler"]["head_steps"]) for e in s["head_steps"]): (
                [e["seconds_per_image"] * 1000 for e in s["head_steps"]],
                [e["fid"] for e in s["head_steps"]],
            ),
        },
        title=f"FID-{n} vs sampling time",
        xlabel="ms per image (code sampling)",
        ylabel="FID",
        markers=True,
    )
    return lines
