import dataclasses

import pytest
import torch

from bigr.config import PRESETS
from bigr.draws import TorchDraws
from bigr.model import BiGR
from bigr.official.strategies import RELEASE_INPAINTING, RELEASE_WORK
from bigr.sampler import BIGR, SamplerConfig, plan_steps, sample_codes, token_scores

FAST = SamplerConfig(steps=4, head_steps=5, guidance=2.0, gumbel=0.5)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_known_tokens_never_change(random_bigr):
    g = _gen(0)
    known = torch.randint(0, 2, (3, 16, 16), generator=g).float()
    keep = torch.rand(3, 16, generator=g) < 0.5
    for config, strategy in (
        (FAST, BIGR),
        (FAST, RELEASE_INPAINTING),
        (FAST, RELEASE_WORK),
        (dataclasses.replace(FAST, reveal_certain=0.2), BIGR),
        (dataclasses.replace(FAST, revise=5, revise_after=0.0), BIGR),
        (dataclasses.replace(FAST, revise=5, revise_after=0.5), BIGR),
        (dataclasses.replace(FAST, kv_refresh=2, head_steps_certain=2), BIGR),
    ):
        out = sample_codes(
            random_bigr,
            torch.tensor([1, 2, 3]),
            config,
            known_codes=known,
            known_mask=keep,
            generator=_gen(1),
            strategy=strategy,
        )
        assert torch.equal(out[keep], known[keep])
        assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_same_seed_same_codes_other_seed_other_codes(random_bigr):
    labels = torch.tensor([0, 5])
    a = sample_codes(random_bigr, labels, FAST, generator=_gen(3))
    b = sample_codes(random_bigr, labels, FAST, generator=_gen(3))
    c = sample_codes(random_bigr, labels, FAST, generator=_gen(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("guidance", [0.0, 1.0, 4.0])
def test_guidance_zero_and_one_run_a_single_pass(random_bigr, guidance):
    calls = []
    hook = random_bigr.transformer.register_forward_hook(
        lambda m, a, out: calls.append(out.shape[0])
    )
    try:
        sample_codes(
            random_bigr,
            torch.tensor([1, 2]),
            dataclasses.replace(FAST, guidance=guidance),
            generator=_gen(0),
        )
    finally:
        hook.remove()
    assert set(calls) == ({4} if guidance == 4.0 else {2})


def test_head_runs_only_on_unknown_tokens(random_bigr):
    rows = []
    original = random_bigr.head.sample
    random_bigr.head.sample = lambda z, *a, **k: rows.append(z.shape[0]) or original(z, *a, **k)
    try:
        sample_codes(
            random_bigr,
            torch.tensor([1]),
            dataclasses.replace(FAST, steps=3, guidance=1.0),
            generator=_gen(0),
        )
        assert rows == [16, 13, 8]  # cosine counts for 16 tokens in 3 steps: 3, 5, 8
        rows.clear()
        sample_codes(
            random_bigr,
            torch.tensor([1]),
            dataclasses.replace(FAST, steps=3, guidance=1.0),
            generator=_gen(0),
            strategy=RELEASE_WORK,
        )
        assert rows == [16, 16, 16]
    finally:
        random_bigr.head.sample = original


def test_entropy_and_confidence_orders_differ_where_they_should():
    # token 0: bits (1.0, 0.55): mean confidence 0.55, entropy 0.69 nats
    # token 1: bits (0.8, 0.8):  mean confidence 0.60, entropy 1.00 nats
    probs = torch.tensor([[[1.0, 0.55], [0.8, 0.8]]])
    unknown = torch.ones(1, 2, dtype=torch.bool)
    draws = TorchDraws(_gen(0))
    assert token_scores("confidence", probs, unknown, draws).argmax().item() == 1
    assert token_scores("entropy", probs, unknown, draws).argmax().item() == 0
    assert token_scores("raster", probs, unknown, draws).argmax().item() == 0
    known = torch.tensor([[False, True]])
    assert token_scores("entropy", probs, known, draws)[0, 0] == float("-inf")


@pytest.mark.parametrize("bits", [4, 16, 32])
def test_gumbel_noise_perturbs_entropy_and_confidence_equally(bits):
    # Three tokens: certain (bits at 0 or 1), half-certain, fair coins. Both certainty scores
    # must span the same range whatever K, so one temperature reorders them equally often.
    certain = torch.tensor([0.0, 1.0]).repeat(bits // 2)
    half = torch.cat([certain[: bits // 2], torch.full((bits // 2,), 0.5)])
    fair = torch.full((bits,), 0.5)
    probs = torch.stack([certain, half, fair]).unsqueeze(0)  # (1, 3, K)
    unknown = torch.ones(1, 3, dtype=torch.bool)
    draws = TorchDraws(_gen(0))
    scores = {o: token_scores(o, probs, unknown, draws)[0] for o in ("entropy", "confidence")}
    for order, score in scores.items():
        assert score[0].item() == pytest.approx(1.0), order
        assert score[1].item() == pytest.approx(0.5), order
        assert score[2].item() == pytest.approx(0.0, abs=1e-6), order
    noise = TorchDraws(_gen(1)).gumbel((4000, 3), torch.device("cpu"))
    flips = {
        order: ((score + 0.3 * noise).argmax(1) != 0).float().mean().item()
        for order, score in scores.items()
    }
    assert 0.05 < flips["entropy"] < 0.95  # the noise matters at this temperature...
    assert flips["entropy"] == pytest.approx(flips["confidence"], abs=1e-6)  # ...equally


@pytest.mark.parametrize("grid", [8, 16, 32])
def test_any_grid_size_samples(grid):
    config = dataclasses.replace(PRESETS["bigr-tiny"], grid_size=grid)
    torch.manual_seed(0)
    model = BiGR(config).eval()
    out = sample_codes(
        model,
        torch.tensor([1]),
        dataclasses.replace(FAST, steps=3, head_steps=2),
        generator=_gen(0),
    )
    assert out.shape == (1, grid * grid, 16)


def test_bad_options_are_refused(random_bigr):
    with pytest.raises(ValueError, match="order"):
        sample_codes(random_bigr, torch.tensor([1]), SamplerConfig(order="spiral"))
    with pytest.raises(ValueError, match="guidance"):
        sample_codes(random_bigr, torch.tensor([1]), SamplerConfig(guidance=-1))


def _record_predictions(monkeypatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Patch the sampler's reveal step to keep (unknown mask, probabilities) of each step."""
    import bigr.sampler

    calls = []
    real = bigr.sampler.reveal_bits

    def record(codes, unknown, probs, *args, **kwargs):
        calls.append((unknown.clone(), probs.clone()))
        return real(codes, unknown, probs, *args, **kwargs)

    monkeypatch.setattr(bigr.sampler, "reveal_bits", record)
    return calls


def _revealed_bits(calls, codes) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampled bits of the tokens each step revealed, and those tokens' probabilities."""
    unknown = [u for u, _ in calls] + [torch.zeros_like(calls[0][0])]
    revealed = [unknown[i] & ~unknown[i + 1] for i in range(len(calls))]
    assert torch.stack(revealed).sum(0).eq(1).all()  # every token revealed exactly once
    bits = torch.cat([codes[r] for r in revealed])
    probs = torch.cat([p[r] for r, (_, p) in zip(revealed, calls, strict=True)])
    return bits, probs


def test_threshold_bits_are_the_revealed_probabilities_above_one_half(random_bigr, monkeypatch):
    calls = _record_predictions(monkeypatch)
    config = dataclasses.replace(FAST, bits="threshold", order="entropy", gumbel_schedule="down")
    codes = sample_codes(random_bigr, torch.tensor([1, 2]), config, generator=_gen(0))
    assert len(calls) == config.steps
    bits, probs = _revealed_bits(calls, codes)
    assert torch.equal(bits, (probs > 0.5).float())


def test_bernoulli_bits_follow_but_do_not_equal_the_thresholded_probabilities(
    random_bigr, monkeypatch
):
    calls = _record_predictions(monkeypatch)
    config = dataclasses.replace(FAST, order="entropy", gumbel_schedule="down")
    codes = sample_codes(random_bigr, torch.tensor([1, 2]), config, generator=_gen(0))
    bits, probs = _revealed_bits(calls, codes)
    assert not bits[probs == 0].any() and bits[probs == 1].all()  # sure bits are kept
    assert not torch.equal(bits, (probs > 0.5).float())  # uncertain ones are drawn


def test_label_mixes_at_the_end_weights_sample_exactly_the_single_classes(random_bigr):
    def sample(labels, weights=None):
        return sample_codes(random_bigr, labels, FAST, condition_weights=weights, generator=_gen(0))

    pair = torch.tensor([[1, 2]])
    first, second = sample(torch.tensor([1])), sample(torch.tensor([2]))
    assert not torch.equal(first, second)
    assert torch.equal(sample(pair, torch.tensor([[1.0, 0.0]])), first)
    assert torch.equal(sample(pair, torch.tensor([[0.0, 1.0]])), second)


def test_a_label_mix_conditions_on_the_weighted_class_embedding(random_bigr):
    # A mix of classes 1 and 2 acts as a class whose embedding is that mix: spare class 3 is
    # given the mixed embedding, computed here from the table.
    weights = torch.tensor([0.3, 0.7])
    pair, spare = torch.tensor([[1, 2]]), torch.tensor([3])
    g = _gen(1)
    codes = torch.randint(0, 2, (1, 16, 16), generator=g).float()
    mask = torch.rand(1, 16, generator=g) < 0.5
    backbone = random_bigr.transformer
    z_mixed = backbone(codes, pair, mask, condition_weights=weights[None])
    for single in (1, 2):
        assert not torch.allclose(z_mixed, backbone(codes, torch.tensor([single]), mask))
    config = dataclasses.replace(FAST, guidance=1.0)  # the conditional pass alone
    mixed = sample_codes(
        random_bigr, pair, config, condition_weights=weights[None], generator=_gen(0)
    )
    table = backbone.class_embed.weight
    with torch.no_grad():
        table[3] = weights[0] * table[1] + weights[1] * table[2]
    assert torch.allclose(z_mixed, backbone(codes, spare, mask), atol=1e-6)
    assert torch.equal(mixed, sample_codes(random_bigr, spare, config, generator=_gen(0)))


def test_progress_is_reported_before_the_first_step_and_after_each(random_bigr):
    calls: list[tuple[int, int]] = []
    labels = torch.tensor([1, 2])
    sample_codes(
        random_bigr, labels, FAST, generator=_gen(0), progress=lambda d, t: calls.append((d, t))
    )
    total = len(plan_steps([16, 16], 16, FAST))
    assert calls == [(i, total) for i in range(total + 1)]


def test_guidance_interval_guides_only_inside_it_and_skips_the_unconditional_pass(random_bigr):
    config = SamplerConfig(
        steps=4,
        head_steps=3,
        guidance=2.5,
        gumbel=0.0,
        guidance_schedule="interval",
        guidance_start=0.0,
        guidance_stop=0.5,
    )
    plan = plan_steps([16, 16], 16, config)
    assert [s.guidance for s in plan] == [2.5, 2.5, 1.0, 1.0]
    rows: list[int] = []
    handle = random_bigr.transformer.register_forward_hook(
        lambda module, args, out: rows.append(out.shape[0])
    )
    try:
        sample_codes(random_bigr, torch.tensor([1, 2]), config, generator=_gen(0))
    finally:
        handle.remove()
    assert rows == [4, 4, 2, 2]  # both halves, then the conditional half alone
    with pytest.raises(ValueError, match="guidance interval"):
        SamplerConfig(guidance_start=0.7, guidance_stop=0.2).validate()


def test_reveal_certain_reveals_sure_tokens_early_and_skips_steps(random_bigr):
    calls = []
    hook = random_bigr.transformer.register_forward_hook(lambda m, a, out: calls.append(1))
    labels = torch.tensor([1, 2, 3])
    config = dataclasses.replace(FAST, steps=8, guidance=1.0)
    try:
        outs = {}
        for threshold in (0.0, 1.0, 0.05, 1e-9):
            calls.clear()
            run = dataclasses.replace(config, reveal_certain=threshold)
            outs[threshold] = sample_codes(random_bigr, labels, run, generator=_gen(5))
            outs[threshold, "calls"] = len(calls)
    finally:
        hook.remove()
    for threshold in (0.0, 1.0, 0.05, 1e-9):
        assert set(outs[threshold].unique().tolist()) <= {0.0, 1.0}
    # nothing is perfectly certain: the plan runs unchanged, every step, the same draws
    assert torch.equal(outs[1.0], outs[0.0]) and outs[1.0, "calls"] == outs[0.0, "calls"] == 8
    # a low bar reveals more tokens early, so fewer steps need the network
    assert outs[1e-9, "calls"] == 1  # every token is at least that certain: all at once
    # a middling bar: some tokens wait for later steps, but the plan's tail is skipped
    assert 1 < outs[0.05, "calls"] < 8
    with pytest.raises(ValueError, match="reveal_certain"):
        sample_codes(random_bigr, labels, dataclasses.replace(config, reveal_certain=1.5))


def test_head_steps_ramp_over_the_loop(random_bigr):
    config = dataclasses.replace(FAST, steps=5, head_steps=20, head_steps_last=4, guidance=1.0)
    assert [s.head_steps for s in plan_steps([16], 16, config)] == [20, 16, 12, 8, 4]
    assert [s.head_steps for s in plan_steps([16], 16, FAST)] == [5] * 4
    seen = []
    original = random_bigr.head.sample
    random_bigr.head.sample = lambda *a, **k: seen.append(k["steps"]) or original(*a, **k)
    try:
        sample_codes(random_bigr, torch.tensor([1]), config, generator=_gen(0))
    finally:
        random_bigr.head.sample = original
    assert seen == [20, 16, 12, 8, 4]
    with pytest.raises(ValueError, match="head_steps_last"):
        sample_codes(
            random_bigr, torch.tensor([1]), dataclasses.replace(config, head_steps_last=999)
        )


def test_unconditional_branch_is_reused_between_refreshes(random_bigr):
    calls = []
    hook = random_bigr.transformer.register_forward_hook(
        lambda m, a, out: calls.append(out.shape[0])
    )
    labels = torch.tensor([1, 2])
    g = _gen(0)
    known = torch.randint(0, 2, (2, 16, 16), generator=g).float()
    keep = torch.rand(2, 16, generator=g) < 0.3
    config = dataclasses.replace(FAST, steps=6, guidance=3.0, uncond_every=3)
    try:
        out = sample_codes(
            random_bigr, labels, config, known_codes=known, known_mask=keep, generator=_gen(1)
        )
    finally:
        hook.remove()
    # both halves (4 rows) on guided steps 0 and 3, the conditional half (2 rows) otherwise
    assert calls == [4, 2, 2, 4, 2, 2]
    assert torch.equal(out[keep], known[keep]) and set(out.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="uncond_every"):
        sample_codes(random_bigr, labels, dataclasses.replace(config, uncond_every=0))


# -- the ladder's rungs, each alone --------------------------------------------------------


def test_guided_features_batches_both_branches_and_keeps_or_reuses_the_unconditional(
    random_bigr,
):
    from bigr.sampler import Conditioning, UncondReuse, guided_features

    g = _gen(2)
    codes = torch.randint(0, 2, (2, 16, 16), generator=g).float()
    unknown = torch.rand(2, 16, generator=g) < 0.6
    cond = Conditioning(torch.tensor([3, 4]))
    backbone = random_bigr.transformer
    null = backbone.null_condition(2, "cpu")
    with torch.no_grad():
        z_cond, z_uncond = guided_features(random_bigr, codes, unknown, cond, 2.0)
        assert torch.allclose(z_cond, backbone(codes, cond.condition, unknown), atol=1e-5)
        assert torch.allclose(z_uncond, backbone(codes, null, unknown), atol=1e-5)
        (only,) = guided_features(random_bigr, codes, unknown, cond, 1.0)
        assert torch.allclose(only, z_cond, atol=1e-5)
        (only,) = guided_features(random_bigr, codes, unknown, cond, 0.0)
        assert torch.allclose(only, z_uncond, atol=1e-5)
        reuse = UncondReuse(every=2)
        first = guided_features(random_bigr, codes, unknown, cond, 2.0, reuse)
        later = guided_features(random_bigr, 1 - codes, unknown, cond, 2.0, reuse)
    assert later[1] is first[1] and reuse.age == 2 and not reuse.fresh()


def test_head_probabilities_fill_only_the_rows_named(random_bigr):
    from bigr.sampler import head_probabilities, unknown_rows

    unknown = torch.zeros(2, 16, dtype=torch.bool)
    unknown[0, [1, 5]] = True
    unknown[1, [7]] = True
    rows = unknown_rows(unknown, 2)
    assert rows[0].tolist() == [1, 5] and rows[1, 0].item() == 7  # unknown first, padded
    z = torch.randn(2, 16, random_bigr.config.dim, generator=_gen(0))
    probs = head_probabilities(random_bigr, (z, z), rows, 2.0, 3, FAST, TorchDraws(_gen(1)))
    touched = probs.ne(0).any(-1)
    assert touched[0].nonzero().flatten().tolist() == [1, 5]
    assert set(touched[1].nonzero().flatten().tolist()) <= {7, rows[1, 1].item()}
    everywhere = head_probabilities(random_bigr, (z,), None, 1.0, 3, FAST, TorchDraws(_gen(1)))
    assert everywhere.shape == (2, 16, random_bigr.config.code_bits)
    assert ((everywhere > 0) & (everywhere < 1)).float().mean() > 0.5


def test_choose_tokens_takes_each_rows_count_of_its_best_scores():
    from bigr.sampler import choose_tokens

    scores = torch.tensor([[0.1, 0.9, float("-inf"), 0.5], [0.3, 0.2, 0.8, 0.7]])
    index, take = choose_tokens(scores, torch.tensor([[1], [3]]), 3)
    assert index.tolist() == [[1, 3, 0], [2, 3, 0]]
    assert take.tolist() == [[True, False, False], [True, True, True]]


def test_reveal_bits_writes_only_the_taken_tokens_and_marks_them_known():
    from bigr.sampler import reveal_bits

    codes = torch.zeros(1, 4, 2)
    unknown = torch.ones(1, 4, dtype=torch.bool)
    probs = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]])
    index, take = torch.tensor([[1, 2]]), torch.tensor([[True, False]])
    reveal_bits(codes, unknown, probs, index, take, "threshold", TorchDraws(_gen(0)))
    assert codes[0].tolist() == [[0, 0], [1, 1], [0, 0], [0, 0]]
    assert unknown.tolist() == [[True, False, True, True]]


def test_reveal_scores_add_gumbel_noise_only_at_a_positive_temperature():
    from bigr.sampler import reveal_scores
    from bigr.sampler_plan import Step

    probs = torch.rand(2, 16, 16, generator=_gen(0))
    unknown = torch.rand(2, 16, generator=_gen(1)) < 0.5
    plain = Step([1, 1], [8, 8], 1.0, 0.0, "confidence", 5)
    noisy = dataclasses.replace(plain, gumbel=1.0)
    base = reveal_scores(plain, probs, unknown, TorchDraws(_gen(2)))
    assert torch.equal(base, token_scores("confidence", probs, unknown, TorchDraws(_gen(2))))
    moved = reveal_scores(noisy, probs, unknown, TorchDraws(_gen(2)))
    assert not torch.equal(moved[unknown], base[unknown])
    assert moved[~unknown].eq(float("-inf")).all()
