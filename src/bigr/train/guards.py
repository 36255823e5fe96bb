"""What makes a training run meaningless, caught where it happens: a loss or gradient that is
not finite (the run stops before anything is written), weights that never moved, and a resume
onto another architecture (refused before the weights are touched)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import config_from_json, config_to_json


class TrainingError(ValueError):
    """A run that cannot go on, in one line for the user."""


def check_finite(step: int, lr: float, hint: str = "", **values: float) -> None:
    """Stop a diverged run at `step` (1-based) before the optimizer applies it, so nothing of
    it reaches the weights, the checkpoint or the export."""
    bad = [f"{name.replace('_', ' ')} {v}" for name, v in values.items() if not math.isfinite(v)]
    if bad:
        raise TrainingError(
            f"step {step}: {' and '.join(bad)}: the run diverged (learning rate {lr:.3g}); "
            "nothing of this step was applied and the run folder keeps its last checkpoint. "
            f"Lower --lr or lengthen --warmup{hint}"
        )


class DivergenceWatch:
    """Non-finite steps caught on the device, without a host read per step. `skip` is the
    optimizer's `found_inf` flag (fused AdamW leaves weights, moments and step count as they
    were when it is 1), set in place each step; the EMA skips too. `check()`, called where the
    loop reads the device anyway (log, checkpoint and preview steps), stops the run naming the
    first such step."""

    def __init__(self, device: torch.device) -> None:
        self.first = torch.zeros((), dtype=torch.long, device=device)  # 0: none yet
        self.values = torch.zeros(2, device=device)  # loss, gradient norm of the first
        self.skip = torch.zeros((), device=device)

    def observe(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> torch.Tensor:
        """Record step `step` (1-based) and set `skip`; whether it is finite (0-dim bool)."""
        values = torch.stack([loss.float(), grad_norm.float()])
        finite = torch.isfinite(values).all()
        new = (self.first == 0) & ~finite
        self.first = torch.where(new, step, self.first)
        self.values = torch.where(new, values, self.values)
        self.skip.copy_(~finite)
        return finite

    def check(self, lr_at, hint: str = "") -> None:
        """Stop the run if a step was not finite (one host read); `lr_at(step)` gives the
        learning rate of that 0-based step."""
        first = int(self.first)
        if first:
            loss, norm = self.values.tolist()
            check_finite(first, lr_at(first - 1), hint, loss=loss, gradient_norm=norm)


def weights_sum(model: nn.Module) -> float:
    """A float64 checksum of the trainable weights (moves when any weight moves)."""
    with torch.no_grad():
        total = torch.zeros((), dtype=torch.float64)
        for p in model.parameters():
            if p.requires_grad:
                local = p.to_local() if hasattr(p, "to_local") else p  # FSDP: this rank's shard
                total += local.detach().double().abs().sum().cpu()
    return float(total)


def check_moved(moved: bool, steps: int, lr: float) -> None:
    """Refuse to call a run done whose weights are bit-identical after `steps` steps."""
    if steps > 0 and not moved:
        raise TrainingError(
            f"the weights did not change in {steps} steps (learning rate {lr:.3g}): the run "
            "learned nothing. Check --lr and --grad-clip"
        )


def check_resume_config(path: str, saved: dict | None, config) -> None:
    """Refuse to resume a state of another architecture, naming the fields that differ."""
    if saved is None:
        return
    try:
        old = config_to_json(config_from_json(saved))
    except (ValueError, TypeError) as err:
        raise TrainingError(f"{path}: its configuration cannot be read ({err})") from None
    new = config_to_json(config)
    differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if differing:
        shown = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in differing[:4])
        raise TrainingError(
            f"{path} was trained with another configuration ({shown}); resume with the same "
            "--preset and --set, or train into another --out"
        )
