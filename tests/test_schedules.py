import math

import torch

from bigr import schedules


def test_cosine_reveal_counts_match_the_release():
    # bigr-spec.md §4.1, N = 256
    assert schedules.reveal_counts(256, 20) == [
        1,
        3,
        4,
        5,
        7,
        8,
        10,
        11,
        13,
        13,
        15,
        16,
        17,
        17,
        19,
        18,
        20,
        19,
        20,
        20,
    ]
    assert schedules.reveal_counts(256, 25) == [
        1,
        2,
        2,
        4,
        4,
        5,
        7,
        7,
        8,
        9,
        10,
        11,
        11,
        12,
        13,
        13,
        14,
        15,
        14,
        15,
        16,
        16,
        15,
        16,
        16,
    ]


def test_reveal_counts_always_sum_to_the_total():
    for schedule in schedules.MASK_SCHEDULES:
        for total in (0, 1, 7, 64, 1024):
            for steps in (1, 3, 20):
                counts = schedules.reveal_counts(total, steps, schedule)
                assert sum(counts) == total and min(counts) >= 0 and len(counts) == steps


def test_training_mask_count_range():
    counts = [schedules.training_mask_count(s, 256) for s in range(256)]
    assert counts[0] == 256 and min(counts) == 1 and max(counts) == 256
    assert abs(sum(counts) / 256 / 256 - 2 / math.pi) < 0.01


def test_noise_tables_match_the_closed_form():
    tables = schedules.noise_tables(256)
    t = torch.arange(257, dtype=torch.float64)
    assert torch.allclose(tables["k_final"].double(), 1 - t / 256, atol=1e-6)
    assert torch.allclose(tables["b_final"].double(), t / 512, atol=1e-6)
    assert tables["beta"][0] == 1 and tables["beta"][-1] == 0


def test_sampling_timesteps_of_the_release():
    steps = schedules.sampling_timesteps(256, 100)
    assert steps[:4] == [256, 253, 250, 248] and steps[-3:] == [6, 3, 1]
    assert len(set(steps)) == 100 and steps == sorted(steps, reverse=True)
    assert schedules.sampling_timesteps(16, 16) == list(range(16, 0, -1))


def test_posterior_with_closed_form_keep_equals_iterated_kernel():
    beta = schedules.noise_tables(256)["beta"].double()
    kf, bf = (
        schedules.noise_tables(256)["k_final"].double(),
        schedules.noise_tables(256)["b_final"].double(),
    )
    p0 = torch.rand(50, dtype=torch.float64)
    x = torch.randint(0, 2, (50,)).double()
    for t, s in [(256, 253), (100, 98), (2, 1), (256, 1)]:
        q1, q0 = x.clone(), 1 - x
        for m in range(t - s):
            q1, q0 = schedules.one_step(q1, beta[t - m]), schedules.one_step(q0, beta[t - m])
        a1, a0 = kf[s] * p0 + bf[s], kf[s] * (1 - p0) + bf[s]
        expected = a1 * q1 / (a1 * q1 + a0 * q0)
        keep = schedules.transition_keep(beta.tolist(), t, s)
        got = schedules.posterior_prob(p0, x, kf[s], bf[s], keep)
        assert torch.allclose(got, expected, atol=1e-12)


def test_guidance_and_gumbel_ramps():
    assert schedules.guidance_at(3.0, "constant", 0.5) == 3.0
    assert schedules.guidance_at(3.0, "linear", 0.5) == 2.0
    assert schedules.gumbel_temperature_at(1.0, "down", 0.25) == 0.75
    assert schedules.gumbel_temperature_at(1.0, "up", 0.25) == 0.25
