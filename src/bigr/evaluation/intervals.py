"""Confidence intervals for comparisons: every difference reported with an interval.

- `mean_interval`: the mean of per-seed measurements (e.g. FID of k seeds) with a Student-t
  interval;
- `difference_interval`: the difference of two such means (Welch's t, unequal variances), so a
  claim "A beats B" can be checked against zero;
- `wilson_interval`: a proportion (e.g. top-1 accuracy over n test images), Wilson's score
  interval, which stays inside [0, 1] and behaves at small n;
- `proportion_difference_interval`: the difference of two such proportions, Newcombe's hybrid
  score interval from the two Wilson intervals (for independent samples; on the same test
  images it is conservative).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from scipy import stats


class Interval(NamedTuple):
    estimate: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes(self, value: float) -> bool:
        return not self.low <= value <= self.high


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of `values` with a two-sided Student-t interval (needs at least two values)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"an interval needs at least two measurements, got {n}")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half)


def difference_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> Interval:
    """mean(a) - mean(b) with Welch's interval (Welch-Satterthwaite degrees of freedom)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("a difference interval needs at least two measurements on each side")
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(ma - mb, ma - mb, ma - mb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return Interval(ma - mb, ma - mb - half, ma - mb + half)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The proportion successes / n with Wilson's score interval."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, centre - half, centre + half)


def proportion_difference_interval(
    successes_a: int, n_a: int, successes_b: int, n_b: int, confidence: float = 0.95
) -> Interval:
    """p_a - p_b with Newcombe's hybrid score interval (method 10 of Newcombe 1998)."""
    pa, la, ua = wilson_interval(successes_a, n_a, confidence)
    pb, lb, ub = wilson_interval(successes_b, n_b, confidence)
    d = pa - pb
    low = d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    high = d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return Interval(d, low, high)
