"""Pure schedule functions: mask ratios, reveal counts, Bernoulli noise tables, posteriors,
guidance and Gumbel ramps.

Nothing here holds state or draws random numbers. Progress `r` runs over (0, 1]; diffusion time
t runs over 1..T with index 0 of every table an identity entry (bigr-spec.md §3.2, reference
README §4.5). Float arithmetic follows the release exactly where results are compared bit for
bit (reveal counts in float64, tables computed in float64 and stored as float32).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

# -- masking and reveal schedules -------------------------------------------------------------

MASK_SCHEDULES: dict[str, Callable[[float], float]] = {
    # fraction of the budget still unknown after progress r
    "cosine": lambda r: math.cos(math.pi / 2 * r),
    "linear": lambda r: 1.0 - r,
    "square": lambda r: 1.0 - r * r,
    "sqrt": lambda r: 1.0 - math.sqrt(r),
}


def reveal_counts(total: int, steps: int, schedule: str = "cosine") -> list[int]:
    """Tokens revealed at each of `steps` iterations, summing to `total`.

    Step s (0-based) leaves floor(f((s+1)/steps) * total) tokens unknown, as the release does;
    the last step always reveals the rest.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if schedule not in MASK_SCHEDULES:
        raise ValueError(f"unknown reveal schedule {schedule!r}; known: {sorted(MASK_SCHEDULES)}")
    fraction = MASK_SCHEDULES[schedule]
    counts, previous = [], total
    for s in range(steps):
        remaining = (
            0 if s == steps - 1 else min(previous, math.floor(fraction((s + 1) / steps) * total))
        )
        counts.append(previous - remaining)
        previous = remaining
    return counts


def training_mask_count(step: int, num_tokens: int) -> int:
    """Tokens masked for a training draw `step` in [0, L): max(1, floor(L cos(pi/2 step/L)))."""
    return max(1, math.floor(num_tokens * math.cos(math.pi / 2 * step / num_tokens)))


# -- guidance and Gumbel ramps ----------------------------------------------------------------


GUIDANCE_SCHEDULES = ("constant", "linear", "interval")
LR_SCHEDULES = ("constant", "cosine")


def guidance_at(
    scale: float, schedule: str, progress: float, window: tuple[float, float] = (0.0, 1.0)
) -> float:
    """Classifier-free guidance scale at progress r: constant; 1 + (scale - 1) r (linear); or
    `scale` for r inside `window` = (start, stop] and 1 (no guidance, no unconditional pass)
    outside it (interval)."""
    if schedule == "constant":
        return scale
    if schedule == "linear":
        return 1.0 + (scale - 1.0) * progress
    if schedule == "interval":
        start, stop = window
        return scale if start < progress <= stop else 1.0
    known = ", ".join(GUIDANCE_SCHEDULES)
    raise ValueError(f"unknown guidance schedule {schedule!r}; known: {known}")


def gumbel_temperature_at(temperature: float, schedule: str, progress: float) -> float:
    """Gumbel temperature at progress r: constant, down = t (1 - r), up = t r."""
    if schedule == "constant":
        return temperature
    if schedule == "down":
        return temperature * (1.0 - progress)
    if schedule == "up":
        return temperature * progress
    raise ValueError(f"unknown Gumbel schedule {schedule!r}; known: constant, down, up")


# -- Bernoulli diffusion -----------------------------------------------------------------------


def noise_tables(steps: int) -> dict[str, Tensor]:
    """The release's 'linear' Bernoulli schedule with T = `steps`, as float32 tables of T+1.

    beta_t = 1 - 1/(T - t + 1); k_t = prod beta (so q(x_t = 1 | x_0) = k_t x_0 + b_t) and
    b_t = beta_t b_{t-1} + (1 - beta_t)/2, computed in float64; in closed form k_t = 1 - t/T and
    b_t = t/(2T). `cumbeta` is the float32 running product of the float32 betas.
    """
    beta, k, b = [1.0], [1.0], [0.0]
    for t in range(1, steps + 1):
        bt = 1 - 1 / (steps - t + 1)
        beta.append(bt)
        k.append(k[-1] * bt)
        b.append(bt * b[-1] + 0.5 * (1 - bt))

    def f32(values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=torch.float64, device="cpu").float()

    beta32 = f32(beta)
    return {
        "k_final": f32(k),
        "b_final": f32(b),
        "beta": beta32,
        "cumbeta": torch.cumprod(beta32, 0),
    }


def sampling_timesteps(diffusion_steps: int, head_steps: int) -> list[int]:
    """Descending reverse-diffusion times visited by the sampler, ending at 1.

    All of T..1 when `head_steps` == T; otherwise (1..T)[int(linspace(0, 1, n) (T - 1))]
    reversed, with float64 truncation as in the release (strides of 2 or 3 for 100 of 256).
    """
    if not 1 <= head_steps <= diffusion_steps:
        raise ValueError(f"head_steps must be in [1, {diffusion_steps}], got {head_steps}")
    if head_steps == diffusion_steps:
        return list(range(diffusion_steps, 0, -1))
    # numpy's linspace, exactly as the release computes it (i * (1/(n-1)), last = 1.0)
    idx = (np.linspace(0.0, 1.0, head_steps) * (diffusion_steps - 1)).astype(np.int64)
    return [int(i) + 1 for i in idx[::-1]]


def transition_keep(beta: Sequence[float], t: int, t_prev: int) -> float:
    """Keep probability of the (t - t_prev)-fold one-step kernel v -> beta v + (1 - beta)/2.

    Applying the kernel with beta[t], beta[t-1], ..., beta[t_prev+1] maps a one-hot to
    keep * onehot + (1 - keep)/2 with keep = their product (computed in float64).
    """
    keep = 1.0
    for m in range(t_prev + 1, t + 1):
        keep *= beta[m]
    return keep


def q_prob(x0: Tensor, k_t: Tensor | float, b_t: Tensor | float) -> Tensor:
    """P(x_t = 1 | x_0) = k_t x_0 + b_t."""
    return k_t * x0 + b_t


def one_step(x: Tensor, beta_t: Tensor | float) -> Tensor:
    """The one-step kernel beta_t x + (1 - beta_t)/2."""
    return beta_t * x + 0.5 * (1 - beta_t)


def posterior_prob(
    p0: Tensor, x_t: Tensor, k_prev: Tensor | float, b_prev: Tensor | float, keep: Tensor | float
) -> Tensor:
    """P(x_{t_prev} = 1 | x_t, x̂_0 = p0) for the Bernoulli chain.

    q(x_{t_prev} | x̂_0) = (k p0 + b, k (1 - p0) + b) times the (t - t_prev)-fold kernel from
    x_t, normalised. `keep` comes from `transition_keep`.
    """
    a1 = k_prev * p0 + b_prev
    a0 = k_prev * (1 - p0) + b_prev
    q1 = keep * x_t + 0.5 * (1 - keep)
    q0 = keep * (1 - x_t) + 0.5 * (1 - keep)
    return a1 * q1 / (a1 * q1 + a0 * q0)


# -- optimisation ------------------------------------------------------------------------------


def learning_rate(
    step: int,
    base: float,
    *,
    warmup: int = 0,
    total: int = 1,
    schedule: str = "constant",
    minimum: float = 0.0,
) -> float:
    """Linear warmup over `warmup` steps, then constant (the release) or cosine decay to
    `minimum` at step `total`."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "constant":
        return base
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return minimum + 0.5 * (base - minimum) * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; known: constant, cosine")


def run_learning_rate(step: int, train: Any) -> float:
    """`learning_rate` with the settings of a training config (its `lr`, `warmup_steps`,
    `steps`, `lr_schedule` and `min_lr`), as both trainers use it."""
    return learning_rate(
        step,
        train.lr,
        warmup=train.warmup_steps,
        total=train.steps,
        schedule=train.lr_schedule,
        minimum=train.min_lr,
    )
