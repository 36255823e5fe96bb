import json

import pytest

from bigr.official.strategies import official_budget_plan
from bigr.sampler_plan import (
    SamplerConfig,
    head_steps_at,
    plan_steps,
    sampler_from_record,
    sampler_record,
)


def test_plan_reveals_every_unknown_token_once():
    for unknown in ([16, 16], [10, 3], [0, 16]):
        for plan_of in (plan_steps, official_budget_plan):
            plan = plan_of(unknown, 16, SamplerConfig(steps=5))
            totals = [sum(step.counts[i] for step in plan) for i in range(len(unknown))]
            assert totals == unknown


def test_official_budget_schedules_the_kept_count_then_fills():
    # 10 unknown of 16: the release schedules the 6 kept tokens over the loop, then fills
    plan = official_budget_plan([10], 16, SamplerConfig(steps=3, schedule="linear"))
    assert [s.counts[0] for s in plan] == [2, 2, 2, 4]
    assert plan[-1].order == "raster" and plan[-1].gumbel == 0.0


def test_guidance_interval_and_ramps_are_planned_per_step():
    config = SamplerConfig(
        steps=4,
        guidance=3.0,
        guidance_schedule="interval",
        guidance_start=0.25,
        guidance_stop=0.75,
        gumbel=0.0,
    )
    # progress r = 0.25, 0.5, 0.75, 1.0: guided only inside (0.25, 0.75]
    assert [s.guidance for s in plan_steps([16], 16, config)] == [1.0, 3.0, 3.0, 1.0]


def test_head_steps_at_ramps_linearly_and_the_fill_step_takes_the_last_value():
    config = SamplerConfig(steps=3, head_steps=30, head_steps_last=10)
    assert [head_steps_at(config, s) for s in range(4)] == [30, 20, 10, 10]
    assert head_steps_at(SamplerConfig(steps=3, head_steps=30), 2) == 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(steps=0), "steps must be in 1..1000"),
        (dict(head_steps=True), "head_steps must be an integer"),
        (dict(gumbel=-1.0), r"gumbel temperature must be in \[0, 1000\]"),
        (dict(guidance=float("nan")), "guidance must be finite"),
        (dict(guidance_start=0.8, guidance_stop=0.2), "guidance interval needs"),
        (dict(order="spiral"), "order must be one of"),
    ],
)
def test_bad_options_are_refused_by_validate(change, message):
    with pytest.raises(ValueError, match=message):
        SamplerConfig(**change).validate()


def test_records_round_trip_and_keep_the_keys_written_before_options_were_added():
    config = SamplerConfig(steps=7, order="entropy", reveal_certain=0.2)
    assert sampler_from_record(json.loads(json.dumps(sampler_record(config)))) == config
    # a record written when the parity switches were sampler fields still reads, and a sampler
    # at its defaults is recorded exactly as it was then (cached results keep their keys)
    old = sampler_record(SamplerConfig())
    assert old["head_tokens"] == "unknown" and old["budget"] == "unknown"
    assert list(old)[-2:] == ["head_tokens", "budget"]
    assert sampler_from_record(old) == SamplerConfig()
    with pytest.raises(ValueError, match="head_tokens is no longer a sampler setting"):
        sampler_from_record({**old, "head_tokens": "all"})
    with pytest.raises(ValueError, match="unknown sampler fields spiral"):
        sampler_from_record({**old, "spiral": 1})
