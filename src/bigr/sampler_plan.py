"""What one sampling run will do, decided on the host before the loop: the sampler's options
(`SamplerConfig`, with what the command line shows for each) and the per-step plan derived from
them (`plan_steps`: reveal counts per row, guidance, Gumbel temperature, order and head steps of
every unmasking step, plus the release's fill step when the schedule leaves tokens over).

Pure: nothing here touches a tensor or draws a random number; `bigr.sampler` runs the plan.
"""

from __future__ import annotations

import dataclasses
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
    kv_refresh: int = _option(
        1,
        "recompute every token's keys and values every this many unmasking steps; in between, "
        "only the tokens unknown at the last refresh are recomputed, attending to the kept keys "
        "and values of the others (1 = every step)",
    )
    head_steps_certain: int = _option(
        0,
        "head steps for the tokens the previous step found more certain than the row's median "
        "unknown token; the others get --head-steps (0 = every token gets --head-steps)",
    )
    revise: int = _option(
        0,
        "at each step past --revise-after, re-mask this many committed tokens per image, those "
        "least certain when drawn, and draw them again (given tokens are never touched; 0 = off)",
    )
    revise_after: float = _option(
        0.5, "revision applies to the steps whose progress (step / steps) is above this"
    )

    def validate(self) -> None:
        checks = {
            "order": (self.order, ORDERS),
            "bits": (self.bits, ("bernoulli", "threshold")),
            "schedule": (self.schedule, tuple(schedules.MASK_SCHEDULES)),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        integers = (
            ("steps", 1),
            ("head_steps", 1),
            ("head_steps_last", 0),
            ("uncond_every", 1),
            ("kv_refresh", 1),
            ("head_steps_certain", 0),
            ("revise", 0),
        )
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
            "revise_after",
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
        if not 0.0 <= self.revise_after < 1.0:
            raise ValueError(f"revise_after must be in [0, 1), got {self.revise_after}")
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


def revises_at(config: SamplerConfig, step: int) -> bool:
    """Whether unmasking step `step` (0-based) re-masks committed tokens (`revise`): a step of
    the schedule (never the fill step after it) whose progress is above `revise_after`."""
    return (
        bool(config.revise)
        and step < config.steps
        and (step + 1) / config.steps > config.revise_after
    )


def plan_steps(unknown: list[int], num_tokens: int, config: SamplerConfig) -> list[Step]:
    """Per-step reveal counts, guidance and Gumbel temperature, on the host: each row's unknown
    tokens (`unknown`) revealed over `config.steps` by the schedule. (`num_tokens`, the grid's
    token count, is what a plan may also schedule by: the release's inpainting count,
    `bigr.official.strategies`.)"""
    return plan_from_totals(unknown, unknown, config)


def plan_from_totals(unknown: list[int], totals: list[int], config: SamplerConfig) -> list[Step]:
    """The plan that schedules `totals` tokens per row over the steps, each step's count clipped
    to the row's tokens still unknown (so known tokens are never re-drawn); if the schedule
    leaves tokens over, one more step fills them (the release's safety net)."""
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


# -- records ---------------------------------------------------------------------------------

# Fields of the first recorded recipes and cached results; a field added since is recorded
# only when it differs from its default, so adding an option keeps every earlier record's key.
_FIRST_FIELDS = (
    "steps",
    "schedule",
    "order",
    "guidance",
    "guidance_schedule",
    "guidance_start",
    "guidance_stop",
    "gumbel",
    "gumbel_schedule",
    "head_steps",
    "head_steps_last",
    "uncond_every",
    "head_temperature",
    "bits",
    "reveal_certain",
)
# Parity-only switches that were sampler fields once (now `bigr.official.strategies`): records
# keep their one sampling value so earlier keys stay valid; other values are refused on reading.
_RETIRED = {"head_tokens": "unknown", "budget": "unknown"}


def sampler_record(config: SamplerConfig) -> dict:
    """The JSON record of a sampler (recipe files, result records, cache keys)."""
    values = dataclasses.asdict(config)
    default = SamplerConfig()
    record = {name: values[name] for name in _FIRST_FIELDS}
    record |= _RETIRED
    for name, value in values.items():
        if name not in record and value != getattr(default, name):
            record[name] = value
    return record


def without_retired(values: dict) -> dict:
    """A sampler record without its retired parity-only switches (ValueError if one is set to
    anything but the value every sampler had)."""
    values = dict(values)
    for name, kept in _RETIRED.items():
        if name in values and values.pop(name) != kept:
            raise ValueError(
                f"{name} is no longer a sampler setting (the release's variants are sampling "
                "strategies in bigr.official.strategies)"
            )
    return values


def sampler_from_record(values: dict) -> SamplerConfig:
    """The sampler of a record (`sampler_record`, or a record written before a field existed).
    ValueError for unknown fields or a retired switch at another value than its default."""
    values = without_retired(values)
    known = {f.name for f in dataclasses.fields(SamplerConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown sampler fields {', '.join(unknown)}")
    return SamplerConfig(**values)
