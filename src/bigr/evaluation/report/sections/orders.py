"""Unmasking order (entropy, confidence, random, raster) and Bernoulli vs thresholded bits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import FID_SETTINGS, ReportConfig
from ..context import _Context
from ..format import FID_HEADER, _fid_row, _fmt

SETTINGS = (*FID_SETTINGS, "orders_count", "orders")


def compute(ctx: _Context) -> dict:
    cfg = ctx.config
    n = cfg.orders_count
    orders = {
        o: ctx.sample_fid(dataclasses.replace(cfg.recipe, order=o), n, f"order_{o}")
        for o in cfg.orders
    }
    bits = {
        b: ctx.sample_fid(dataclasses.replace(cfg.recipe, bits=b), n, f"bits_{b}")
        for b in ("bernoulli", "threshold")
    }
    return {"floor": ctx.floor(n, cfg.seed + 1), "orders": orders, "bits": bits}


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    o = result
    lines = ["## Unmasking order and bit sampling", ""]
    if "floor" in o:
        lines += [f"Real-data floor at the same n: FID {_fmt(o['floor']['fid'])}.", ""]
    lines += FID_HEADER
    lines += [_fid_row(f"order `{k}`", e) for k, e in o["orders"].items()]
    lines += [_fid_row(f"bits `{k}`", e) for k, e in o["bits"].items()]
    lines += [""]
    return lines
