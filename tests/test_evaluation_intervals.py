import random

import pytest

from bigr.evaluation.intervals import (
    difference_interval,
    mean_interval,
    proportion_difference_interval,
    wilson_interval,
)


def test_mean_interval_is_the_student_t_interval():
    # mean 2, sd 1, n 3: half-width t(0.975, 2) / sqrt(3) = 4.3027 / 1.7321 = 2.4842
    got = mean_interval([1.0, 2.0, 3.0])
    assert got.estimate == 2.0
    assert got.half_width == pytest.approx(2.4842, abs=1e-4)
    with pytest.raises(ValueError, match="at least two"):
        mean_interval([1.0])


def test_wilson_interval_matches_the_textbook_values():
    # 50 of 100: (0.4038, 0.5962); 0 of 10 stays inside [0, 1]: (0, 0.2775)
    got = wilson_interval(50, 100)
    assert (got.low, got.high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    zero = wilson_interval(0, 10)
    assert zero.low == pytest.approx(0.0, abs=1e-12) and zero.high == pytest.approx(
        0.2775, abs=1e-4
    )
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_difference_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = random.Random(0)
    hits = 0
    trials = 2000
    for _ in range(trials):
        a = [rng.gauss(10.0, 1.0) for _ in range(4)]
        b = [rng.gauss(9.0, 2.0) for _ in range(5)]
        hits += not difference_interval(a, b).excludes(1.0)
    assert 0.93 < hits / trials < 0.97


def test_a_clear_gap_excludes_zero_and_noise_does_not():
    assert difference_interval([5.0, 5.1, 4.9], [7.0, 7.2, 6.9]).excludes(0.0)
    assert not difference_interval([5.0, 6.0, 4.0], [5.5, 4.5, 6.5]).excludes(0.0)


def test_proportion_difference_interval_matches_newcombes_example():
    # Newcombe (1998), example (a): 56/70 - 48/80 = 0.2000, method 10: (0.0524, 0.3339)
    got = proportion_difference_interval(56, 70, 48, 80)
    assert got.estimate == pytest.approx(0.2)
    assert (got.low, got.high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    same = proportion_difference_interval(30, 100, 30, 100)
    assert same.estimate == 0 and same.low < 0 < same.high
