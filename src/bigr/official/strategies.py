"""The release's ways of doing two things the sampling loop does, as strategies the loop is given
(`sample_codes(..., strategy=...)`), never as branches inside it:

- `all_rows`: the head runs on every token of every step, revealed ones included (the release's
  amount of work; the probabilities of known tokens are computed and never used). With the same
  generator the codes equal the release's algorithm's (`release_sampler`).
- `official_budget_plan`: the release's inpainting count, which schedules the number of *kept*
  tokens rather than of those to fill, clipped so that known tokens never change (the release
  re-draws them), then fills what is left in one step. For parity with the recorded runs only.
"""

from __future__ import annotations

from torch import Tensor

from ..sampler import SamplingStrategy
from ..sampler_plan import SamplerConfig, Step, plan_from_totals


def all_rows(unknown: Tensor, max_unknown: int) -> None:
    """The head's tokens: all of them (None)."""
    return None


def official_budget_plan(unknown: list[int], num_tokens: int, config: SamplerConfig) -> list[Step]:
    """The plan of the release's inpainting: the kept count scheduled over the steps."""
    return plan_from_totals(unknown, [num_tokens - u for u in unknown], config)


RELEASE_WORK = SamplingStrategy(head_rows=all_rows)
"""bigr's loop doing the release's amount of head work (benchmarks, parity)."""

RELEASE_INPAINTING = SamplingStrategy(plan=official_budget_plan, head_rows=all_rows)
"""The release's inpainting, as recorded in the official reference data (parity only)."""
