"""The run folder of `bigr train-tokenizer`: the resume state, the exported model, the log,
the loss and PSNR curves and the held-out reconstruction grids (split from `tokenizer.py`, as
`generator_run.py` is from `generator.py`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..checkpoint import EMA, save_state
from ..config import config_to_json
from ..model import save_tokenizer
from ..tokenizer import BinaryAutoencoder

if TYPE_CHECKING:
    from .tokenizer import TokenizerRun, TokenizerTrainConfig


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """(B,) peak signal-to-noise ratio in dB of images in [0, 1]."""
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


@torch.no_grad()
def evaluate_reconstruction(model: BinaryAutoencoder, images: Tensor) -> tuple[float, Tensor]:
    """Mean PSNR of deterministic-code reconstructions, and the reconstructions."""
    device = next(model.parameters()).device
    recon = model.decode(model.encode(images.to(device), stochastic=False).codes).clamp(0, 1).cpu()
    return float(psnr(images, recon).mean()), recon


def append_log(out: Path, log: list[dict], stats: dict) -> None:
    log.append(stats)
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(stats) + "\n")


def ema_model(model: BinaryAutoencoder, ema: EMA) -> BinaryAutoencoder:
    export = BinaryAutoencoder(model.config).to(next(model.parameters()).device)
    export.load_state_dict(model.state_dict())
    ema.copy_to(export)
    return export.eval()


def export_model(model: BinaryAutoencoder, ema: EMA, export: str) -> BinaryAutoencoder:
    if export == "raw":
        return model
    return ema_model(model, ema)


def evaluate_run(
    out: Path, step: int, model: BinaryAutoencoder, ema: EMA, images: Tensor, export: str
) -> dict[str, float]:
    """Held-out PSNR of the EMA and of the raw weights; the grid shows the exported ones."""
    from ..data.images import save_grid

    was_training = model.training
    model.eval()
    raw_psnr, raw_recon = evaluate_reconstruction(model, images)
    model.train(was_training)
    ema_psnr, ema_recon = evaluate_reconstruction(ema_model(model, ema), images)
    recon = raw_recon if export == "raw" else ema_recon
    n = min(len(images), 16)
    save_grid(torch.cat([images[:n], recon[:n]]), out / "recon" / f"step_{step:07d}.png", nrow=n)
    return {
        "psnr": raw_psnr if export == "raw" else ema_psnr,
        "psnr_ema": ema_psnr,
        "psnr_raw": raw_psnr,
    }


def save_run(out: Path, step: int, run: TokenizerRun, train: TokenizerTrainConfig) -> None:
    """`state.pt` (everything a resume needs), the exported `model/` and the curves."""
    model, ema = run.model, run.ema
    state = {
        "step": step,
        "model": model.state_dict(),
        "disc": run.disc.state_dict(),
        "ema": ema.state_dict(),
        "opt": run.opt.state_dict(),
        "opt_d": run.opt_d.state_dict(),
        "train": json.loads(json.dumps(train.__dict__)),
        "config": config_to_json(model.config),
    }
    save_state(out / "state.pt", state)
    extra = {"trained_steps": step, "trained_by": "bigr train-tokenizer", "weights": train.export}
    if run.init is not None:
        extra |= {"init": run.init, "frozen_encoder": train.freeze_encoder}
    save_tokenizer(export_model(model, ema, train.export).eval(), out / "model", extra=extra)
    model.train()
    if run.log:
        plot_run(out, run.log)


def plot_run(out: Path, log: list[dict]) -> None:
    """`loss.png` (L1, perceptual) and `psnr.png` (held-out, EMA and raw weights)."""
    from ..plots import plot_curves

    losses = [r for r in log if "l1" in r]
    steps = [r["step"] for r in losses]
    series = {"L1": (steps, [r["l1"] for r in losses])}
    if any(r["perceptual"] for r in losses):
        series["perceptual"] = (steps, [r["perceptual"] for r in losses])
    plot_curves(out / "loss.png", series, title="tokenizer training", ylabel="loss", logy=True)
    curves = {}
    for key, label in (("psnr_ema", "EMA weights"), ("psnr_raw", "raw weights")):
        rows = [r for r in log if key in r and math.isfinite(r[key])]
        if rows:
            curves[label] = ([r["step"] for r in rows], [r[key] for r in rows])
    if not curves:  # logs written before both were recorded: the EMA value only
        rows = [r for r in log if "psnr" in r and math.isfinite(r["psnr"])]
        if rows:
            curves["EMA weights"] = ([r["step"] for r in rows], [r["psnr"] for r in rows])
    if curves:
        plot_curves(
            out / "psnr.png",
            curves,
            title="held-out reconstruction (deterministic codes)",
            ylabel="PSNR (dB)",
        )


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
