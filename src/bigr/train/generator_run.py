"""The run folder of generator training: what `train_generator` writes and reads back.

Owns: the full (unsharded under FSDP) model, EMA and optimizer states, the resume file
`state.pt`, the EMA export `model/` (loadable with `BiGR.from_pretrained`), `log.jsonl`,
`loss.png` and the preview grids `samples/step_*.png`.

Leaves to others: the training step and loop (`generator.py`), the file formats themselves
(`bigr.checkpoint`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..checkpoint import EMA, save_state
from ..config import BiGRConfig, config_to_json
from ..model import BiGR

if TYPE_CHECKING:
    from .generator import TrainConfig


def full_states(
    model: BiGR, ema: EMA, opt: torch.optim.Optimizer, train: TrainConfig
) -> dict[str, dict]:
    """Full (unsharded) model, EMA and optimizer states. Under FSDP this gathers shards, so
    every rank calls it; elsewhere it only collects references."""
    if not train.fsdp:
        return {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict()}
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    return {
        "model": {k: v.cpu() for k, v in get_model_state_dict(model, options=options).items()},
        "ema": {k: v.cpu() for k, v in ema.state_dict().items()},
        "opt": get_optimizer_state_dict(model, opt, options=options),
    }


def export_ema(config: BiGRConfig, states: dict[str, dict], device: torch.device) -> BiGR:
    """A plain BiGR holding the EMA weights (and the model's buffers)."""
    export = BiGR(config).to(device)
    export.load_state_dict(states["model"])
    with torch.no_grad():
        for name, param in export.named_parameters():
            param.copy_(states["ema"][name].to(param.dtype))
    return export.eval()


def save_run(
    out: Path,
    config: BiGRConfig,
    states: dict,
    step: int,
    train: TrainConfig,
    log,
    classes: list[str] | tuple[str, ...] = (),
) -> None:
    """`state.pt` (resume), `model/` (the EMA export at `step`, with the class names of the
    codes it was trained on, when they have names) and `loss.png` from `log`."""
    state = {
        "step": step,
        **states,
        "train": json.loads(json.dumps(train.__dict__)),
        "config": config_to_json(config),
    }
    save_state(out / "state.pt", state)
    export_ema(config, states, torch.device("cpu")).save_pretrained(
        out / "model",
        extra={
            "trained_steps": step,
            "trained_by": "bigr train",
            **({"classes": list(classes)} if classes and not config.text_dim else {}),
        },
    )
    if log:
        from ..plots import plot_curves

        steps = [r["step"] for r in log]
        plot_curves(
            out / "loss.png",
            {"loss": (steps, [r["loss"] for r in log])},
            title="masked-modelling loss (masked bits, weighted BCE)",
            ylabel="loss",
        )


def read_log(path: Path, upto: int) -> list[dict]:
    """The rows of `log.jsonl` up to step `upto` (a resumed run rewrites the rest)."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["step"] <= upto]


def save_preview(
    out: Path,
    step: int,
    export: BiGR,
    tokenizer: nn.Module | None,
    train: TrainConfig,
    condition: Tensor,
) -> None:
    """A grid for `condition`: class ids (B,), or caption embeddings (B, text_dim) for a text
    model."""
    from ..data.images import save_grid
    from ..sampler import SamplerConfig, sample_codes

    device = next(export.parameters()).device
    condition = condition.to(device)
    sampler = SamplerConfig(steps=train.preview_steps, guidance=train.preview_guidance, gumbel=0.0)
    generator = torch.Generator(device).manual_seed(train.seed)
    codes = sample_codes(export, condition, sampler, generator=generator)
    with torch.no_grad():
        images = tokenizer.decode(codes.to(next(tokenizer.parameters()).device)).clamp(0, 1)
    save_grid(images.cpu(), out / "samples" / f"step_{step:07d}.png")
