"""The Python API refuses inputs of the wrong shape or kind with a line that says what it
expected, where PyTorch would raise a matmul error or silently broadcast."""

import pytest
import torch

from bigr import PRESETS, BiGR, SamplerConfig, sample_codes

FAST = SamplerConfig(steps=2, head_steps=2)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return BiGR(PRESETS["bigr-tiny"]).eval()


def test_codes_of_another_bit_width_or_grid_are_named(model):
    for shape in ((2, 16, 8), (2, 9, 16), (16, 16)):
        with pytest.raises(ValueError, match=r"\(B, 16 tokens, 16 bits\)"):
            model.pooled_features(torch.zeros(shape), layer=0)


def test_known_codes_and_masks_must_match_the_batch_and_model(model):
    fixed = torch.zeros(1, 16, dtype=torch.bool)
    with pytest.raises(ValueError, match="known_codes must be"):
        sample_codes(model, torch.tensor([1]), FAST, known_codes=torch.zeros(1, 16, 8),
                     known_mask=fixed)  # fmt: skip
    with pytest.raises(TypeError, match="bool tensor"):
        sample_codes(model, torch.tensor([1]), FAST, known_codes=torch.zeros(1, 16, 16),
                     known_mask=fixed.float() * 255)  # fmt: skip
    with pytest.raises(ValueError, match=r"known_mask must be \(2, 16\)"):
        sample_codes(model, torch.tensor([1, 2]), FAST, known_codes=torch.zeros(2, 16, 16),
                     known_mask=fixed)  # fmt: skip
    with pytest.raises(ValueError, match="no known_codes"):
        sample_codes(model, torch.tensor([1]), FAST, known_mask=~fixed)


def test_conditions_of_the_wrong_kind_are_named(model):
    for condition, message in (
        (torch.tensor([11]), "class ids must be in"),
        (torch.tensor([1.5]), "integers"),
        (torch.tensor([[1, 2]]), "shape"),
        ([1, 2], "tensor"),
    ):
        with pytest.raises(ValueError, match=message):
            sample_codes(model, condition, FAST)


@pytest.fixture(scope="module")
def tokenizer():
    from bigr import BinaryAutoencoder

    return BinaryAutoencoder(PRESETS["bae-tiny"]).eval()


def test_codes_that_are_not_bits_are_refused(model, tokenizer):
    for codes, message in (
        (torch.full((1, 16, 16), 3.0), r"bits 0 and 1, got values in \[3, 3\]"),
        (torch.full((1, 16, 16), float("nan")), "NaN or infinite"),
        ([[0] * 16] * 16, "must be a (torch )?tensor"),
    ):
        error = TypeError if isinstance(codes, list) else ValueError
        with pytest.raises(error, match=message):
            model.pooled_features(codes, layer=0)
        with pytest.raises(error, match=message):
            tokenizer.decode(codes)
    bits = torch.randint(0, 2, (2, 16, 16))  # integer or boolean bits are bits
    floats = model.pooled_features(bits.float(), layer=0)
    assert torch.equal(model.pooled_features(bits, layer=0), floats)
    assert torch.equal(model.pooled_features(bits.bool(), layer=0), floats)


def test_images_outside_zero_one_are_refused_with_a_hint(tokenizer):
    images = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="divide by 255"):
        tokenizer.encode(images * 255)
    with pytest.raises(TypeError, match="floating point"):
        tokenizer.encode((images * 255).byte())
    with pytest.raises(ValueError, match="NaN"):
        tokenizer.encode(torch.full((1, 3, 16, 16), float("nan")))
    tokenizer.encode(images.clamp(0, 1) * 1.0005)  # rounding overshoot is tolerated


def test_sampler_settings_and_generators_of_the_wrong_kind(model):
    with pytest.raises(TypeError, match="must be a SamplerConfig"):
        sample_codes(model, torch.tensor([1]), {"steps": 2})
    with pytest.raises(TypeError, match=r"torch\.Generator"):
        sample_codes(model, torch.tensor([1]), FAST, generator=5)
    for change, message in (
        ({"guidance": 1e308}, r"guidance must be in \[0, 1000\]"),
        ({"head_temperature": 1e-30}, "head_temperature must be in"),
        ({"gumbel": 1e39}, "gumbel temperature must be in"),
    ):
        with pytest.raises(ValueError, match=message):
            sample_codes(model, torch.tensor([1]), SamplerConfig(steps=2, head_steps=2, **change))


def test_app_masks_must_be_bool_and_images_in_zero_one(model, tokenizer):
    from bigr.apps import inpaint, interpolate, outpaint

    image = torch.rand(3, 16, 16)
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[:8] = True
    for bad in (mask.to(torch.uint8) * 255, mask.float()):
        with pytest.raises(TypeError, match=r"bool tensor.*mask > 0"):
            inpaint(model, tokenizer, image, bad, sampler=FAST)
        with pytest.raises(TypeError, match="bool tensor"):
            outpaint(model, tokenizer, image, bad, sampler=FAST)
    with pytest.raises(ValueError, match="divide by 255"):
        inpaint(model, tokenizer, image * 255, mask, sampler=FAST)
    with pytest.raises(ValueError, match="at least one interpolation weight"):
        interpolate(model, tokenizer, 1, 2, [], sampler=FAST)
    done = inpaint(model, tokenizer, image, mask, sampler=FAST)
    assert done.images.shape == (1, 3, 16, 16)


def test_a_batch_that_cannot_fit_is_refused_before_allocating(model, monkeypatch):
    from bigr import memory

    per_image = memory.sampling_bytes(model.config, 1, guided=True)
    monkeypatch.setattr(memory, "available_bytes", lambda device: 5 * per_image)
    message = r"sampling 64 images at once.*at most 5 at once"
    with pytest.raises(MemoryError, match=message):
        sample_codes(model, torch.ones(64, dtype=torch.long), FAST)
    assert sample_codes(model, torch.ones(5, dtype=torch.long), FAST).shape == (5, 16, 16)
