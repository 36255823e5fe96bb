"""The run folder of generator training: what `train_generator` writes and reads back.

Owns: the full (unsharded under FSDP) model, EMA and optimizer states, the resume file
`state.pt`, the EMA export `model/` (loadable with `BiGR.from_pretrained`), `log.jsonl`,
`loss.png` and the preview grids `samples/step_*.png`. Checkpoints are snapshotted to the CPU
and written on a thread (`BackgroundWriter`, one write in flight), so no rank waits for the disk.

Leaves to others: the training step and loop (`generator.py`), the file formats themselves
(`bigr.checkpoint`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
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
    """Full (unsharded) model, EMA and optimizer states, the optimizer's keyed by parameter
    name so that any launch (one process, DDP, FSDP) resumes any other. Under FSDP this
    gathers shards to the CPU of rank 0, so every rank calls it; elsewhere it collects
    references."""
    if not train.fsdp:
        names = parameter_names(model, opt)
        return {
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "opt": named_optimizer_state(opt.state_dict(), names),
        }
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    # gathered straight to the CPU: no full copy of the model or optimizer stays on the device
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return {
        "model": get_model_state_dict(model, options=options),
        "ema": {k: v.cpu() for k, v in ema.state_dict().items()},
        "opt": get_optimizer_state_dict(model, opt, options=options),
    }


def cpu_copy(obj):
    """`obj` with every tensor copied to the CPU (dicts and lists walked): a snapshot that
    training may go on changing the original of while it is written."""
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


class BackgroundWriter:
    """Writes checkpoints on a thread, one at a time, so that training (and the other ranks,
    which only wait at the step's barrier) goes on while the disk works. A new write first
    waits for the one before; an error of a write is raised by the next `submit` or `wait`."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, write: Callable[[], None]) -> None:
        self.wait()

        def run() -> None:
            try:
                write()
            except BaseException as err:  # raised in the training thread by wait()
                self._error = err

        self._thread = threading.Thread(target=run, name="bigr-checkpoint", daemon=False)
        self._thread.start()

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; raise its error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def parameter_names(model: nn.Module, opt: torch.optim.Optimizer) -> list[str]:
    """The name of each parameter in the optimizer's order (its positional index)."""
    name_of = {id(p): n for n, p in model.named_parameters()}
    return [name_of[id(p)] for group in opt.param_groups for p in group["params"]]


def named_optimizer_state(state: dict, names: list[str]) -> dict:
    """An optimizer state dict keyed by parameter name (the form torch's distributed
    checkpointing uses); one already keyed by name is returned as it is."""
    groups = state["param_groups"]
    if all(isinstance(p, str) for g in groups for p in g["params"]):
        return state
    if sum(len(g["params"]) for g in groups) != len(names):
        raise ValueError(
            f"the saved optimizer state has {sum(len(g['params']) for g in groups)} parameters, "
            f"this model {len(names)}"
        )
    return {
        "state": {names[i]: v for i, v in state["state"].items()},
        "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in groups],
    }


def positional_optimizer_state(state: dict, names: list[str]) -> dict:
    """The name-keyed state back in `torch.optim.Optimizer.load_state_dict`'s positional form."""
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(state["state"]) - set(index))
    if unknown:
        raise ValueError(
            f"the saved optimizer state names parameters this model lacks: {unknown[:3]}"
        )
    return {
        "state": {index[n]: v for n, v in state["state"].items()},
        "param_groups": [
            {**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]
        ],
    }


def export_ema(config: BiGRConfig, states: dict[str, dict], device: torch.device) -> BiGR:
    """A plain BiGR holding the EMA weights (and the model's buffers)."""
    export = BiGR(config).to(device)
    export.load_state_dict(states["model"])
    with torch.no_grad():
        for name, param in export.named_parameters():
            param.copy_(states["ema"][name].to(param.dtype))
    return export.eval()


def run_writes(
    out: Path,
    config: BiGRConfig,
    states: dict,
    step: int,
    train: TrainConfig,
    log,
    classes: list[str] | tuple[str, ...] = (),
) -> Callable[[], None]:
    """A checkpoint: `state.pt` (resume), `model/` (the EMA export at `step`, with the class
    names of the codes it was trained on, when they have names) and `loss.png` from `log`,
    prepared in the calling thread (the export model is built,
    which draws from the global random generator, and the loss curve drawn) and returned as a
    function that only writes files: safe to run on another thread while training goes on."""
    state = {
        "step": step,
        **states,
        "train": json.loads(json.dumps(train.__dict__)),
        "config": config_to_json(config),
    }
    export = export_ema(config, states, torch.device("cpu"))
    extra = {
        "trained_steps": step,
        "trained_by": "bigr train",
        **({"classes": list(classes)} if classes and not config.text_dim else {}),
    }
    if log:
        from ..plots import plot_curves

        steps = [r["step"] for r in log]
        plot_curves(
            out / "loss.png",
            {"loss": (steps, [r["loss"] for r in log])},
            title="masked-modelling loss (masked bits, weighted BCE)",
            ylabel="loss",
        )

    def write() -> None:
        save_state(out / "state.pt", state)
        export.save_pretrained(out / "model", extra=extra)

    return write


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
