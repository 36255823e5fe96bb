import math

import pytest
import torch
import torch.nn.functional as F

from bigr.config import HeadConfig
from bigr.denoiser import timestep_features
from bigr.diffusion_head import BernoulliHead, bit_loss
from bigr.draws import TorchDraws


def _head(seed=0, **kwargs):
    torch.manual_seed(seed)
    head = BernoulliHead(HeadConfig(dim=32, depth=2, **kwargs), code_bits=8, cond_dim=16).eval()
    return head


def _randomise(head):
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return head


def test_release_initialisation_outputs_zero_logits():
    head = _head()
    logits = head.denoiser(torch.randint(0, 2, (5, 8)).float(), torch.arange(5), torch.randn(5, 16))
    assert torch.count_nonzero(logits) == 0


def test_timestep_features_are_cos_then_sin():
    f = timestep_features(torch.tensor([0, 3]))
    assert f.shape == (2, 256)
    assert torch.allclose(f[0, :128], torch.ones(128)) and torch.allclose(
        f[0, 128:], torch.zeros(128)
    )
    assert math.isclose(f[1, 0].item(), math.cos(3.0), abs_tol=1e-6)
    assert math.isclose(f[1, 128].item(), math.sin(3.0), abs_tol=1e-6)


def _balanced_loss(x0, x_t, raw=None):
    """The class-balanced wBCE (flip prediction, gamma 0, alpha -1) of rows of bits."""
    x0, x_t = torch.tensor(x0), torch.tensor(x_t)
    raw = torch.zeros_like(x0) if raw is None else raw
    loss, _ = bit_loss(raw, x0, x_t, predict_flip=True, focal_gamma=0.0, alpha=-1)
    return loss


def test_class_balanced_bce_of_two_bits_by_hand():
    # At logit 0 every bit's BCE is ln 2, so the loss is ln 2 times the bit's weight. Two
    # flips of two (target 1, 1): rho = 1, the ones weigh (1 - 1) + 1/2 = 0.5 each. One
    # flip of two: rho = 1/2, each bit weighs 1/2 + 1/2 = 1. No flip: rho = 0, zeros weigh 1/2.
    ln2 = math.log(2)
    loss = _balanced_loss([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0]] * 3)
    expected = torch.tensor([[0.5, 0.5], [1.0, 1.0], [0.5, 0.5]]) * ln2
    assert torch.allclose(loss, expected)


def test_class_balance_weighs_the_flips_of_the_noisy_bits_not_the_clean_bits():
    # x0 all ones but x_t differs in the last bit only: one flip of four (rho = 1/4). The
    # flip weighs 3/4 + 1/4 = 1; the three kept bits 1/4 + 1/4 = 1/2.
    loss = _balanced_loss([[1.0, 1.0, 1.0, 1.0]], [[1.0, 1.0, 1.0, 0.0]])
    assert torch.allclose(loss / math.log(2), torch.tensor([[0.5, 0.5, 0.5, 1.0]]))


def test_class_balance_gives_the_minority_value_the_larger_gradient():
    # Target (1, 0, 0, 0) at logit 0: d loss / d raw = weight (sigmoid(0) - y): -1/2 on the
    # single one (weight 1), +1/8 on each zero (weight 1/2); the flipped target (0, 1, 1, 1)
    # mirrors it.
    for x0, sign in (([[1.0, 0.0, 0.0, 0.0]], 1.0), ([[0.0, 1.0, 1.0, 1.0]], -1.0)):
        raw = torch.zeros(1, 4, requires_grad=True)
        _balanced_loss(x0, [[0.0] * 4], raw).sum().backward()
        expected = sign * torch.tensor([[-0.5, 0.25, 0.25, 0.25]])
        assert torch.allclose(raw.grad, expected)


def test_class_balanced_bce_vanishes_at_perfect_predictions():
    x0, x_t = [[1.0, 0.0, 0.0, 1.0]], [[0.0, 0.0, 1.0, 1.0]]  # flips (1, 0, 1, 0)
    sure = torch.tensor([[30.0, -30.0, 30.0, -30.0]], requires_grad=True)
    loss = _balanced_loss(x0, x_t, sure)
    loss.sum().backward()
    assert loss.max() < 1e-12 and sure.grad.abs().max() < 1e-12
    wrong = _balanced_loss(x0, x_t, -sure.detach())
    # sure and wrong: BCE ~ 30 per bit; two flips of four (rho = 1/2) weigh 1/2 + 1/4 each
    assert torch.allclose(wrong, torch.full((1, 4), 30.0 * 0.75))


def test_flip_prediction_plain_bce_equals_bce_on_flips():
    raw, x0, x_t = (
        torch.randn(6, 8),
        torch.randint(0, 2, (6, 8)).float(),
        torch.randint(0, 2, (6, 8)).float(),
    )
    loss, acc = bit_loss(raw, x0, x_t, predict_flip=True, focal_gamma=None, alpha=-1)
    flips = (x0 != x_t).float()
    assert torch.allclose(
        loss, F.binary_cross_entropy_with_logits(raw, flips, reduction="none"), atol=1e-6
    )
    logits0 = (1 - 2 * x_t) * raw
    assert math.isclose(acc.item(), ((logits0 > 0).float() == x0).float().mean().item())


def test_focal_factor_downweights_easy_bits():
    raw = torch.tensor([[5.0, -5.0]])
    x0 = torch.tensor([[1.0, 1.0]])
    plain, _ = bit_loss(raw, x0, torch.zeros(1, 2), predict_flip=False, focal_gamma=None, alpha=0)
    focal, _ = bit_loss(raw, x0, torch.zeros(1, 2), predict_flip=False, focal_gamma=2.0, alpha=0)
    assert focal[0, 0] < plain[0, 0] * 1e-3 and focal[0, 1] > plain[0, 1] * 0.9


def test_loss_is_differentiable_and_includes_the_aux_term():
    head = _randomise(_head(aux_weight=0.5))
    head.train()
    z, x0 = torch.randn(10, 16), torch.randint(0, 2, (10, 8)).float()
    out = head.loss(z, x0, generator=torch.Generator().manual_seed(0))
    assert out["loss"] > out["bce_loss"] and "aux_loss" in out
    out["loss"].backward()
    assert head.denoiser.c_embedder.weight.grad.abs().sum() > 0


def test_sample_returns_probabilities_and_is_reproducible():
    head = _randomise(_head())
    z = torch.randn(7, 16)
    a = head.sample(z, steps=10, draws=TorchDraws(torch.Generator().manual_seed(0)))
    b = head.sample(z, steps=10, draws=TorchDraws(torch.Generator().manual_seed(0)))
    assert a.shape == (7, 8) and torch.equal(a, b) and bool(((a >= 0) & (a <= 1)).all())


def test_guidance_one_equals_the_conditional_pass():
    head = _randomise(_head())
    z, zu = torch.randn(4, 16), torch.randn(4, 16)
    single = head.sample(z, steps=5, draws=TorchDraws(torch.Generator().manual_seed(1)))
    guided = head.sample(
        z, zu, guidance=1.0, steps=5, draws=TorchDraws(torch.Generator().manual_seed(1))
    )
    assert torch.allclose(single, guided, atol=1e-6)
    other = head.sample(
        z, zu, guidance=3.0, steps=5, draws=TorchDraws(torch.Generator().manual_seed(1))
    )
    assert not torch.allclose(single, other)


def test_an_oracle_denoiser_makes_the_chain_end_at_the_clean_bits(monkeypatch):
    # A network that predicts exactly which bits of x_t differ from x0 is the oracle: the
    # posterior chain must then end at x0, whatever the noise.
    import bigr.diffusion_head as dh

    head = _head(diffusion_steps=16)
    x0 = torch.randint(0, 2, (64, 8)).float()

    class Oracle:
        def logits(self, x_t, t_index):
            return ((x_t != x0).float() * 2 - 1).unsqueeze(0) * 30.0

    monkeypatch.setattr(dh, "FusedDenoiser", lambda *args, **kwargs: Oracle())
    p0 = head.sample(
        torch.zeros(64, 16), steps=16, draws=TorchDraws(torch.Generator().manual_seed(0))
    )
    assert torch.equal((p0 > 0.5).float(), x0)


def test_fused_sampling_form_matches_the_module():
    from bigr.denoiser import FusedDenoiser

    net = _randomise(_head()).denoiser
    x, c = torch.randint(0, 2, (9, 8)).float(), torch.randn(18, 16)  # two condition copies
    expected = net(torch.cat([x, x]), torch.full((18,), 37), c).view(2, 9, 8)
    for chunk in (4, 7, 1024):  # several chunks (even or not), or one
        fused = FusedDenoiser(net, net.c_embedder(c), copies=2, chunk_rows=chunk).logits(x, 37)
        assert torch.allclose(fused, expected, atol=1e-5)


def test_direct_head_learns_x0_in_one_call_and_samples_without_draws():
    import dataclasses

    from bigr.config import PRESETS, HeadConfig
    from bigr.draws import RecordedDraws
    from bigr.model import BiGR
    from bigr.sampler import SamplerConfig, sample_codes

    head = HeadConfig(dim=64, depth=2, predict_flip=False, focal_gamma=None, direct=True)
    config = dataclasses.replace(PRESETS["bigr-tiny"], class_dropout=0.0, head=head)
    torch.manual_seed(0)
    model = BiGR(config)
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 2, (2, 16, 16), generator=g).float()
    labels, mask = torch.arange(2), torch.ones(2, 16, dtype=torch.bool)
    before = model.training_loss(codes, labels, mask=mask)["loss"].item()
    assert before == pytest.approx(math.log(2), abs=1e-5)  # zero-initialised output: p = 1/2
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    for _ in range(300):
        loss = model.training_loss(codes, labels, mask=mask, generator=g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert model.training_loss(codes, labels, mask=mask)["loss"].item() < 0.2 * before
    # sampling: the head draws nothing (an empty recorded uniform stream is never touched
    # except by the revealed bits themselves, one call per unmasking step)
    draws = RecordedDraws(torch.rand(10_000, generator=g))
    sampler = SamplerConfig(steps=2, guidance=1.0, gumbel=0.0, head_steps=50)
    out = sample_codes(model, labels, sampler, draws=draws)
    assert out.shape == codes.shape and len(draws.call_sizes) == 2
    # guidance mixes the two branches' logits: 1 is the conditional one, 0 the other
    z, z_other = torch.randn(5, config.dim, generator=g), torch.randn(5, config.dim, generator=g)
    alone = model.head.sample(z)
    torch.testing.assert_close(model.head.sample(z, z_other, guidance=1.0), alone)
    torch.testing.assert_close(
        model.head.sample(z, z_other, guidance=0.0), model.head.sample(z_other)
    )
    with pytest.raises(ValueError, match="predict_flip=false"):
        dataclasses.replace(config, head=dataclasses.replace(head, predict_flip=True)).validate()
