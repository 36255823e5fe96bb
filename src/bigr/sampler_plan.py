"""What one sampling run will do, decided on the host before the loop: the sampler's options
(`SamplerConfig`, with what the command line shows for each) and the per-step plan derived from
them (`plan_steps`: reveal counts per row, guidance, Gumbel temperature, order and head steps of
every unmasking step, plus the release's fill step when the schedule leaves tokens over).

Pure: nothing here touches a tensor or draws a random number; `bigr.sampler` runs the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import schedules

ORDERS = ("entropy", "confidence", "random", "raster")
MAX_STEPS = 1000  # unmasking or head steps: more than any recipe needs, few enough to finish
MAX_SCALE = 1000.0  # guidance, Gumbel and head temperatures: far past any use, far below overflow
MIN_TEMPERATURE = 1e-3


def _option(default, help: str, choices: tuple[str, ...] | None = None, **extra):
    """A sampler field with what the command line shows for it (`bigr.commands` builds one
    flag per field from this; `cli=False` keeps a field off the command line)."""
    return field(default=default, metadata={"help": help, "choices": choices, **extra})


@dataclass(frozen=True, kw_only=True)
class SamplerConfig:
    """How to sample: unmasking steps and their schedule, the token order, guidance, Gumbel
    noise, the transcoder's diffusion steps and the faster options. The defaults are the
    release's recipe; `bigr.recipe(name, model)` gives a model's recommended or fast recipe,
    as the command line's `--recipe` does.

    >>> from bigr import SamplerConfig
    >>> SamplerConfig().steps, SamplerConfig(steps=8, guidance=1.5).guidance
    (20, 1.5)
    """

    steps: int = _option(20, "unmasking steps")
    schedule: str = _option("cosine", "reveal schedule", tuple(schedules.MASK_SCHEDULES))
    order: str = _option("confidence", "token order", ORDERS)
    guidance: float = _option(3.0, "classifier-free guidance scale (1 = none)")
    guidance_schedule: str = _option("constant", "guidance ramp", schedules.GUIDANCE_SCHEDULES)
    guidance_start: float = _option(0.0, "interval schedule: guide steps with progress > this")
    guidance_stop: float = _option(1.0, "interval schedule: ... and progress <= this")
    gumbel: float = _option(0.01, "Gumbel temperature of the token order")
    gumbel_schedule: str = _option("constant", "Gumbel ramp", ("constant", "down", "up"))
    head_steps: int = _option(100, "Bernoulli diffusion steps of the head")
    head_steps_last: int = _option(
        0, "head steps at the last unmasking step, ramped linearly from --head-steps (0 = off)"
    )
    uncond_every: int = _option(
        1,
        "recompute the unconditional branch's features every this many guided steps, reusing "
        "them in between (1 = every step)",
    )
    head_temperature: float = _option(1.0, "temperature of the head's logits", positive=True)
    bits: str = _option("bernoulli", "how revealed bits are drawn", ("bernoulli", "threshold"))
    reveal_certain: float = _option(
        0.0,
        "also reveal every token at least this certain (1 - mean bit entropy in bits), and skip "
        "steps the schedule no longer needs: an entropy-driven step count (0 = off)",
    )
    # the release's amount of work (head on every token), for benchmarks and parity
    head_tokens: str = _option("unknown", "", ("unknown", "all"), cli=False)
    # the release's inpainting count, for parity only
    budget: str = _option("unknown", "", ("unknown", "official"), cli=False)

    def validate(self) -> None:
        checks = {
            "order": (self.order, ORDERS),
            "bits": (self.bits, ("bernoulli", "threshold")),
            "head_tokens": (self.head_tokens, ("unknown", "all")),
            "budget": (self.budget, ("unknown", "official")),
            "schedule": (self.schedule, tuple(schedules.MASK_SCHEDULES)),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        integers = (("steps", 1), ("head_steps", 1), ("head_steps_last", 0), ("uncond_every", 1))
        for name, low in integers:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if not low <= value <= MAX_STEPS:
                raise ValueError(f"{name} must be in {low}..{MAX_STEPS}, got {value}")
        for name in (
            "guidance",
            "gumbel",
            "head_temperature",
            "guidance_start",
            "guidance_stop",
            "reveal_certain",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
        if not 0 <= self.guidance <= MAX_SCALE:
            raise ValueError(f"guidance must be in [0, {MAX_SCALE:g}], got {self.guidance}")
        if not 0 <= self.gumbel <= MAX_SCALE:
            raise ValueError(f"gumbel temperature must be in [0, {MAX_SCALE:g}], got {self.gumbel}")
        low, high = MIN_TEMPERATURE, MAX_SCALE
        if self.head_temperature <= 0:
            raise ValueError(f"head_temperature must be > 0, got {self.head_temperature}")
        if not low <= self.head_temperature <= high:
            raise ValueError(
                f"head_temperature must be in [{low:g}, {high:g}] (outside it the bit "
                f"probabilities overflow to exactly 0 and 1), got {self.head_temperature}"
            )
        if not 0.0 <= self.reveal_certain <= 1.0:
            raise ValueError(f"reveal_certain must be in [0, 1], got {self.reveal_certain}")
        if not 0.0 <= self.guidance_start <= self.guidance_stop <= 1.0:
            raise ValueError(
                "guidance interval needs 0 <= guidance_start <= guidance_stop <= 1, got "
                f"{self.guidance_start}, {self.guidance_stop}"
            )
        schedules.guidance_at(self.guidance, self.guidance_schedule, 1.0)
        schedules.gumbel_temperature_at(self.gumbel, self.gumbel_schedule, 1.0)


@dataclass(frozen=True)
class Step:
    counts: list[int]  # tokens to reveal per row
    unknown_before: list[int]  # unknown tokens per row before this step
    guidance: float
    gumbel: float
    order: str
    head_steps: int


def head_steps_at(config: SamplerConfig, step: int) -> int:
    """Head steps of unmasking step `step` (0-based): `head_steps`, or a linear ramp from it to
    `head_steps_last` over the loop (the safety-net step takes the last value)."""
    if not config.head_steps_last:
        return config.head_steps
    if config.steps == 1:
        return config.head_steps if step == 0 else config.head_steps_last
    r = min(step, config.steps - 1) / (config.steps - 1)
    return round(config.head_steps + r * (config.head_steps_last - config.head_steps))


def plan_steps(unknown: list[int], num_tokens: int, config: SamplerConfig) -> list[Step]:
    """Per-step reveal counts, guidance and Gumbel temperature, on the host.

    `unknown` holds each row's number of unknown tokens. The official budget schedules the
    number of known tokens instead, clipped here so that known tokens are never re-drawn.
    """
    totals = unknown
    if config.budget == "official":
        totals = [num_tokens - u for u in unknown]
    per_row = [schedules.reveal_counts(n, config.steps, config.schedule) for n in totals]
    steps, left = [], list(unknown)
    for s in range(config.steps):
        r = (s + 1) / config.steps
        counts = [min(row[s], u) for row, u in zip(per_row, left, strict=True)]
        steps.append(
            Step(
                counts,
                list(left),
                schedules.guidance_at(
                    config.guidance,
                    config.guidance_schedule,
                    r,
                    (config.guidance_start, config.guidance_stop),
                ),
                schedules.gumbel_temperature_at(config.gumbel, config.gumbel_schedule, r),
                config.order,
                head_steps_at(config, s),
            )
        )
        left = [u - c for u, c in zip(left, counts, strict=True)]
    if any(left):
        # The release's safety net: fill what is left in one step, no Gumbel noise, full
        # guidance, bits drawn in position order.
        last = head_steps_at(config, config.steps)
        steps.append(Step(list(left), list(left), config.guidance, 0.0, "raster", last))
    return steps
