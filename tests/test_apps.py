import dataclasses
import importlib

import pytest
import torch

from bigr.apps import (
    box_mask,
    edit,
    enrich,
    inpaint,
    interpolate,
    lattice_groups,
    outpaint,
    token_mask,
)
from bigr.apps.common import decode, encode
from bigr.apps.enrich import low_resolution
from bigr.config import PRESETS, TokenizerConfig
from bigr.model import BiGR
from bigr.official import load_official
from bigr.sampler import SamplerConfig, sample_codes
from bigr.tokenizer import BinaryAutoencoder

FAST = SamplerConfig(steps=3, head_steps=4, guidance=2.0, gumbel=0.0, schedule="linear")


@pytest.fixture(scope="module")
def pair(reference_dir):
    """The converted official tiny checkpoints: a matching 16 px, 4x4-grid, 16-bit pair."""
    model, _ = load_official(reference_dir / "tiny" / "tiny_bigr_ckpt.pt", PRESETS["bigr-tiny"])
    tokenizer, _ = load_official(
        reference_dir / "tiny_bae" / "tiny_binaryae_ema.th", PRESETS["bae-tiny"]
    )
    return model, tokenizer


def _image(seed=0, size=16):
    return torch.rand(3, size, size, generator=torch.Generator().manual_seed(seed))


def test_token_mask_rules():
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[0:4, 0:4] = True  # token 0 fully
    mask[4:6, 4:8] = True  # half of token 5 (its top rows)
    mask[9, 9] = True  # one pixel of token 10
    assert token_mask(mask, 4, "any").nonzero().flatten().tolist() == [0, 5, 10]
    assert token_mask(mask, 4, "all").nonzero().flatten().tolist() == [0]
    assert token_mask(mask, 4, "majority").nonzero().flatten().tolist() == [0, 5]
    assert token_mask(mask, 4, "official").nonzero().flatten().tolist() == [0, 5]  # top-left pixels
    with pytest.raises(ValueError, match="rule"):
        token_mask(mask, 4, "some")


def test_inpaint_keeps_known_tokens_and_blends_outside(pair):
    model, tokenizer = pair
    image, mask = _image(), box_mask(16, (0.25, 0.25, 0.75, 0.75))
    result = inpaint(
        model,
        tokenizer,
        image,
        mask,
        num=3,
        sampler=FAST,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.images.shape == (3, 3, 16, 16)
    known = ~result.regenerated
    original_codes = encode(tokenizer, image)[0]
    assert torch.equal(result.codes[:, known], original_codes[known].expand(3, -1, -1))
    assert torch.equal(result.images[:, :, ~mask], image[:, ~mask].expand(3, -1, -1))
    assert not torch.equal(result.codes[0], result.codes[1])  # three different fills


def test_outpaint_regenerates_around_the_kept_region(pair):
    model, tokenizer = pair
    keep = box_mask(16, (0.25, 0.25, 0.75, 0.75))
    result = outpaint(
        model, tokenizer, _image(), keep, sampler=FAST, generator=torch.Generator().manual_seed(0)
    )
    assert result.regenerated.view(4, 4)[1:3, 1:3].logical_not().all()  # the centre is kept
    assert result.regenerated.sum() == 12


def test_outpaint_feathers_the_seam_by_default_and_pastes_hard_when_asked(pair):
    model, tokenizer = pair
    image, keep = _image(), box_mask(16, (0.25, 0.25, 0.75, 0.75))

    def run(**kwargs):
        gen = torch.Generator().manual_seed(0)
        return outpaint(model, tokenizer, image, keep, sampler=FAST, generator=gen, **kwargs)

    soft, hard = run(), run(feather_radius=0)
    assert torch.equal(soft.raw, hard.raw)  # the same samples; only the blend differs
    inside = keep.clone()
    assert torch.equal(hard.images[0][:, inside], image[:, inside])  # a hard paste keeps all
    # the default softens the kept box's border (half a token: 2 px here) but keeps its core
    core = box_mask(16, (0.375, 0.375, 0.625, 0.625))
    assert torch.equal(soft.images[0][:, core], image[:, core])
    border = keep & ~box_mask(16, (0.3125, 0.3125, 0.6875, 0.6875))
    assert not torch.equal(soft.images[0][:, border], image[:, border])


def test_edit_checks_the_class_and_uses_it(pair):
    model, tokenizer = pair
    image, mask = _image(), box_mask(16, (0.0, 0.0, 0.5, 1.0))
    with pytest.raises(ValueError, match="out of range"):
        edit(model, tokenizer, image, mask, condition=10, sampler=FAST)
    a = edit(
        model,
        tokenizer,
        image,
        mask,
        condition=1,
        sampler=FAST,
        generator=torch.Generator().manual_seed(0),
    )
    b = edit(
        model,
        tokenizer,
        image,
        mask,
        condition=8,
        sampler=FAST,
        generator=torch.Generator().manual_seed(0),
    )
    assert not torch.equal(a.codes, b.codes)


def test_interpolation_endpoints_equal_plain_class_samples(pair):
    model, tokenizer = pair
    config = dataclasses.replace(FAST, schedule="cosine")
    images, codes = interpolate(model, tokenizer, 2, 7, [0.0, 0.5, 1.0], sampler=config, seed=3)
    assert images.shape == (3, 3, 16, 16)
    for frame, label in ((0, 2), (2, 7)):
        plain = sample_codes(
            model, torch.tensor([label]), config, generator=torch.Generator().manual_seed(3)
        )
        assert torch.equal(codes[frame], plain[0])


def test_lattice_groups_partition_the_grid():
    groups = lattice_groups(8, 2, 4, torch.Generator().manual_seed(0))
    assert len(groups) == 4 and all(g.sum() == 16 for g in groups)
    assert torch.stack(groups).sum(0).eq(1).all()
    cell = groups[0].view(8, 8)[:2, :2]
    assert cell.sum() == 1  # one sub-position per cell in each group


def _record_enrich_calls(monkeypatch) -> list[dict]:
    """Patch enrichment's sampler calls to keep what each was given and what it returned."""
    module = importlib.import_module("bigr.apps.enrich")  # `bigr.apps.enrich` is the function
    calls = []

    def record(model, condition, config, *, known_codes, known_mask, generator):
        out = sample_codes(
            model,
            condition,
            config,
            known_codes=known_codes,
            known_mask=known_mask,
            generator=generator,
        )
        calls.append(
            dict(condition=condition, config=config, known=known_codes, mask=known_mask, out=out)
        )
        return out

    monkeypatch.setattr(module, "sample_codes", record)
    return calls


def test_enrich_regenerates_each_lattice_in_turn_from_the_blurry_codes(pair, monkeypatch):
    model, tokenizer = pair
    calls = _record_enrich_calls(monkeypatch)
    small = _image(size=8)
    result = enrich(model, tokenizer, small, ds=2, rounds=2, groups=4, sampler=FAST, seed=0)
    assert torch.equal(result.low_res, low_resolution(small, 2))
    blurry = encode(tokenizer, result.low_res)
    assert len(calls) == 2 * 4 and torch.equal(calls[0]["known"], blurry)
    for i, call in enumerate(calls):
        keep = call["mask"][0]
        # unconditional: the null class, guidance as a single pass
        assert call["condition"].tolist() == [model.config.null_class]
        assert call["config"].guidance == 1.0
        # one sub-position of every 2x2 cell of the 4x4 grid is regenerated, the rest is kept
        assert (~keep).view(2, 2, 2, 2).sum((1, 3)).eq(1).all()
        assert torch.equal(call["out"][:, keep], call["known"][:, keep])
        if i:  # each lattice starts from the previous one's result
            assert torch.equal(call["known"], calls[i - 1]["out"])
    for first in (0, 4):  # each round regenerates every token exactly once
        regenerated = torch.stack([~c["mask"][0] for c in calls[first : first + 4]])
        assert regenerated.sum(0).eq(1).all()
        changed = calls[first + 3]["out"] != calls[first]["known"]
        assert changed.any()  # and the round changes the image
    rounds = [blurry, calls[3]["out"], calls[7]["out"]]
    assert torch.equal(result.codes, rounds[-1])
    for image, codes in zip(result.images, rounds, strict=True):
        assert torch.equal(image, decode(tokenizer, codes)[0])


def test_more_enrichment_rounds_continue_the_same_chain(pair):
    model, tokenizer = pair
    small = _image(size=8)
    one, two = (
        enrich(model, tokenizer, small, ds=2, rounds=r, sampler=FAST, seed=0) for r in (1, 2)
    )
    assert torch.equal(two.images[:2], one.images)  # the first round is the same round
    assert not torch.equal(two.codes, one.codes)  # the second changes it further


def test_mismatched_pair_is_refused(pair):
    model, _ = pair
    other = BinaryAutoencoder(dataclasses.replace(PRESETS["bae-tiny"], code_bits=8))
    with pytest.raises(ValueError, match="16-bit codes; the tokenizer makes 8-bit"):
        inpaint(model, other, _image(), box_mask(16, (0, 0, 0.5, 0.5)), sampler=FAST)


def test_apps_work_on_an_8x8_grid():
    torch.manual_seed(0)
    tokenizer = BinaryAutoencoder(
        TokenizerConfig(
            base_channels=32,
            channel_mult=(1, 1, 2),
            attn_resolutions=(),
            latent_channels=32,
            code_bits=16,
            image_size=32,
        )
    ).eval()
    model = BiGR(dataclasses.replace(PRESETS["bigr-tiny"], grid_size=8)).eval()
    result = inpaint(
        model, tokenizer, _image(size=32), box_mask(32, (0.5, 0.5, 1.0, 1.0)), sampler=FAST
    )
    assert result.regenerated.sum() == 16 and result.images.shape == (1, 3, 32, 32)
