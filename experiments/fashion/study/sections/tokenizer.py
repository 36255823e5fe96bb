"""Tokenizer reconstruction of the `num_fid` reference images: PSNR and rFID."""

from __future__ import annotations

from pathlib import Path

import torch

from bigr.data.images import save_grid
from bigr.evaluation.image_sets import encode_images, fid_entry, real_images

from ..config import ReportConfig
from ..context import Context
from ..format import fmt

SETTINGS = ("num_fid",)


@torch.no_grad()
def compute(ctx: Context) -> dict:
    """Reconstruction of the `num_fid` reference images: PSNR, and rFID against them."""
    cfg, tok = ctx.config, ctx.tokenizer
    images, _ = real_images(cfg.reference, cfg.num_fid, ctx.size)
    codes = encode_images(tok, images, cfg.batch_size)
    recon = torch.cat([tok.decode(c).clamp(0, 1).cpu() for c in codes.split(cfg.batch_size)])
    mse = (recon - images).pow(2).flatten(1).mean(1)
    psnr = float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())
    save_grid(torch.cat([images[:16], recon[:16]]), ctx.out / "samples" / "recon.png", nrow=16)
    rfid = fid_entry(ctx.stats(recon, keep_features=True), ctx.reference())
    return {
        "n": len(images),
        "psnr": psnr,
        "rfid": rfid["fid"],
        "precision": rfid.get("precision"),
        "recall": rfid.get("recall"),
    }


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    t = result
    return [
        f"## Tokenizer reconstruction ({t['n']} held-out images, deterministic codes)",
        "",
        f"PSNR {fmt(t['psnr'])} dB; rFID {fmt(t['rfid'])} (reconstructions against the "
        "originals' statistics).",
        "",
        "![reconstructions](samples/recon.png)",
        "",
        "Top: originals; bottom: reconstructions.",
        "",
    ]
