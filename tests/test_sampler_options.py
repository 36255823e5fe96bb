"""The sampler's reuse and revision options on a tiny model: keys/values kept across steps,
fewer head steps for certain tokens, and revision of committed tokens."""

import dataclasses

import pytest
import torch

from bigr.sampler import SamplerConfig, sample_codes

FAST = SamplerConfig(steps=6, head_steps=5, guidance=2.0, gumbel=0.5)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _inpainting(seed: int = 0, batch: int = 3):
    g = _gen(seed)
    known = torch.randint(0, 2, (batch, 16, 16), generator=g).float()
    keep = torch.rand(batch, 16, generator=g) < 0.4
    return known, keep


# -- keys and values kept across steps -------------------------------------------------------


def test_a_reused_cache_pass_equals_a_full_pass_when_nothing_changed(random_bigr):
    backbone = random_bigr.transformer
    g = _gen(1)
    codes = torch.randint(0, 2, (2, 16, 16), generator=g).float()
    mask = torch.rand(2, 16, generator=g) < 0.6
    labels = torch.tensor([3, 4])
    with torch.no_grad():
        full, cache = backbone.forward_keep(codes, labels, mask)
        assert torch.allclose(full, backbone(codes, labels, mask), atol=1e-6)
        reused = backbone.forward_reuse(codes, labels, mask, cache)
    assert torch.allclose(reused, full, atol=1e-5)


def test_a_reused_cache_pass_recomputes_only_the_tokens_unknown_at_the_refresh(random_bigr):
    backbone = random_bigr.transformer
    g = _gen(2)
    codes = torch.randint(0, 2, (2, 16, 16), generator=g).float()
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, :6] = True
    mask[1, 4:8] = True
    labels = torch.tensor([3, 4])
    rows = []
    hook = backbone.layers[0].feed_forward.register_forward_hook(
        lambda m, a, out: rows.append(a[0].shape[1])
    )
    try:
        with torch.no_grad():
            _, cache = backbone.forward_keep(codes, labels, mask)
            now = mask.clone()
            now[0, :3] = False  # three tokens of row 0 revealed since, with new bits
            changed = codes.clone()
            changed[0, :3] = 1 - changed[0, :3]
            reused = backbone.forward_reuse(changed, labels, now, cache)
            full = backbone(changed, labels, now)
    finally:
        hook.remove()
    # the full pass: class token + 16 tokens; the reused one: the 6 tokens unknown at the refresh
    assert rows == [17, 6, 17]
    # tokens known at the refresh keep its z; the recomputed ones approximate the full pass
    assert torch.equal(reused[1, :4], cache.z[1, :4]) and torch.equal(reused[0, 6:], cache.z[0, 6:])
    assert not torch.allclose(reused[0, :6], cache.z[0, :6])
    assert torch.allclose(reused[0, :6], full[0, :6], atol=0.5)


def test_kv_refresh_runs_a_full_pass_every_kth_step_and_keeps_known_tokens(random_bigr):
    backbone = random_bigr.transformer
    calls = []
    real_keep, real_reuse = backbone.forward_keep, backbone.forward_reuse
    backbone.forward_keep = lambda *a, **k: calls.append("full") or real_keep(*a, **k)
    backbone.forward_reuse = lambda *a, **k: calls.append("reuse") or real_reuse(*a, **k)
    known, keep = _inpainting()
    try:
        out = sample_codes(
            random_bigr,
            torch.tensor([1, 2, 3]),
            dataclasses.replace(FAST, kv_refresh=3),
            known_codes=known,
            known_mask=keep,
            generator=_gen(1),
        )
    finally:
        del backbone.forward_keep, backbone.forward_reuse
    assert calls == ["full", "reuse", "reuse", "full", "reuse", "reuse"]
    assert torch.equal(out[keep], known[keep]) and set(out.unique().tolist()) <= {0.0, 1.0}
    # switching branches (guidance interval: guided, then conditional only) forces a refresh
    calls.clear()
    backbone.forward_keep = lambda *a, **k: calls.append("full") or real_keep(*a, **k)
    backbone.forward_reuse = lambda *a, **k: calls.append("reuse") or real_reuse(*a, **k)
    window = dataclasses.replace(
        FAST, kv_refresh=6, guidance_schedule="interval", guidance_start=0.0, guidance_stop=0.5
    )
    try:
        sample_codes(random_bigr, torch.tensor([1, 2]), window, generator=_gen(1))
    finally:
        del backbone.forward_keep, backbone.forward_reuse
    assert calls == ["full", "reuse", "reuse", "full", "reuse", "reuse"]


def test_kv_refresh_one_is_the_plain_loop(random_bigr):
    labels = torch.tensor([1, 2])
    plain = sample_codes(random_bigr, labels, FAST, generator=_gen(4))
    refreshed = sample_codes(
        random_bigr, labels, dataclasses.replace(FAST, kv_refresh=1), generator=_gen(4)
    )
    assert torch.equal(plain, refreshed)
    reused = sample_codes(
        random_bigr, labels, dataclasses.replace(FAST, kv_refresh=2), generator=_gen(4)
    )
    assert not torch.equal(plain, reused)  # an approximation: other features, other draws


# -- fewer head steps for certain tokens -----------------------------------------------------


def test_certain_tokens_get_fewer_head_steps_after_the_first_step(random_bigr):
    chains = []
    original = random_bigr.head.sample
    random_bigr.head.sample = lambda z, *a, **k: (
        chains.append((k["steps"], z.shape[0])) or (original(z, *a, **k))
    )
    config = dataclasses.replace(FAST, steps=3, guidance=1.0, head_steps=6, head_steps_certain=2)
    try:
        sample_codes(random_bigr, torch.tensor([1]), config, generator=_gen(0))
    finally:
        random_bigr.head.sample = original
    # step 1: all 16 tokens at 6 steps; then the certain half (above the median) at 2 steps
    assert chains[0] == (6, 16)
    later = chains[1:]
    assert {steps for steps, _ in later} == {2, 6}
    for s in range(2):  # per unmasking step, the two chains cover its unknown tokens
        (few, a), (many, b) = sorted(later[2 * s : 2 * s + 2])
        assert (few, many) == (2, 6) and a <= b
    assert sum(n for _, n in later) == 13 + 8  # cosine counts for 16 tokens in 3 steps: 3, 5, 8
    with pytest.raises(ValueError, match="head_steps_certain"):
        sample_codes(
            random_bigr,
            torch.tensor([1]),
            dataclasses.replace(config, head_steps_certain=10_000),
        )


# -- revision --------------------------------------------------------------------------------


def test_revision_remasks_committed_tokens_in_late_steps_only(random_bigr):
    rows = []
    original = random_bigr.head.sample
    random_bigr.head.sample = lambda z, *a, **k: rows.append(z.shape[0]) or original(z, *a, **k)
    labels = torch.tensor([1])
    config = dataclasses.replace(FAST, guidance=1.0, steps=4)
    try:
        plain = sample_codes(random_bigr, labels, config, generator=_gen(0))
        plain_rows = list(rows)
        rows.clear()
        revised = sample_codes(
            random_bigr,
            labels,
            dataclasses.replace(config, revise=2, revise_after=0.5),
            generator=_gen(0),
        )
    finally:
        random_bigr.head.sample = original
    # steps 1-2 (progress 0.25, 0.5) as before; steps 3-4 also redraw 2 committed tokens
    assert plain_rows == [16, 14, 11, 6]  # cosine counts for 16 tokens in 4 steps: 2, 3, 5, 6
    assert rows == [16, 14, 13, 8]
    assert not torch.equal(plain, revised)
    with pytest.raises(ValueError, match="revise_after"):
        sample_codes(random_bigr, labels, dataclasses.replace(config, revise=1, revise_after=1.0))
