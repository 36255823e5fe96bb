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
