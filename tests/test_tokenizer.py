import dataclasses

import pytest
import torch

from bigr.config import PRESETS, TokenizerConfig
from bigr.tokenizer import BinaryAutoencoder, codes_to_grid, grid_to_codes


def _images(n=2, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_codes_are_exactly_bits_and_probabilities_are_probabilities(tiny_tokenizer):
    enc = tiny_tokenizer.encode(_images(), generator=torch.Generator().manual_seed(0))
    assert enc.codes.shape == (2, 16, 16) == enc.probs.shape
    assert set(enc.codes.unique().tolist()) <= {0.0, 1.0}
    assert bool(((enc.probs > 0) & (enc.probs < 1)).all())


def test_deterministic_codes_threshold_the_probabilities(tiny_tokenizer):
    enc = tiny_tokenizer.encode(_images(), stochastic=False)
    assert torch.equal(enc.codes, (enc.probs > 0.5).float())


def test_stochastic_codes_are_reproducible_with_a_seed(tiny_tokenizer):
    a = tiny_tokenizer.encode(_images(), generator=torch.Generator().manual_seed(7)).codes
    b = tiny_tokenizer.encode(_images(), generator=torch.Generator().manual_seed(7)).codes
    c = tiny_tokenizer.encode(_images(), generator=torch.Generator().manual_seed(8)).codes
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_straight_through_gradient_reaches_the_encoder(tiny_tokenizer):
    tiny_tokenizer.train()
    recon, _ = tiny_tokenizer(_images(), generator=torch.Generator().manual_seed(0))
    recon.mean().backward()
    grad = tiny_tokenizer.encoder.blocks[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_decode_shape_and_layout_round_trip(tiny_tokenizer):
    codes = torch.randint(0, 2, (3, 16, 16)).float()
    assert tiny_tokenizer.decode(codes).shape == (3, 3, 16, 16)
    assert torch.equal(grid_to_codes(codes_to_grid(codes)), codes)
    grid = codes_to_grid(codes)
    assert torch.equal(grid[:, :, 1, 2], codes[:, 1 * 4 + 2])  # token n = row * G + column


def test_wrong_inputs_are_refused(tiny_tokenizer):
    with pytest.raises(ValueError, match="16x16"):
        tiny_tokenizer.encode(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="16-bit"):
        tiny_tokenizer.decode(torch.zeros(1, 16, 8))


def test_any_block_layout_builds(tiny_tokenizer):
    config = TokenizerConfig(
        base_channels=32,
        channel_mult=(1, 2, 2),
        res_blocks=1,
        attn_resolutions=(),
        decoder_res_blocks=2,
        latent_channels=64,
        code_bits=8,
        image_size=32,
    )
    model = BinaryAutoencoder(config).eval()
    enc = model.encode(_images(size=32))
    assert enc.codes.shape == (2, 64, 8)
    assert model.decode(enc.codes).shape == (2, 3, 32, 32)
    # attention only where the resolution is listed: none here but the two middle blocks
    from bigr.tokenizer import AttnBlock

    n_attn = sum(isinstance(b, AttnBlock) for b in [*model.encoder.blocks, *model.decoder.blocks])
    assert n_attn == 2
    bigger = dataclasses.replace(PRESETS["bae-tiny"], attn_resolutions=(4, 8))
    n_attn = sum(isinstance(b, AttnBlock) for b in BinaryAutoencoder(bigger).encoder.blocks)
    assert n_attn == 2 + 2 + 1
