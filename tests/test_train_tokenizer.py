import json

import pytest
import torch
from PIL import Image

from bigr.config import PRESETS
from bigr.data import ImageFolderDataset
from bigr.model import load_tokenizer
from bigr.train.tokenizer import (
    PatchDiscriminator,
    TokenizerTrainConfig,
    adaptive_weight,
    psnr,
    train_tokenizer,
)


def _folder(tmp_path, n=12):
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        arr = (torch.rand(16, 16, 3, generator=g) * 255).byte().numpy()
        Image.fromarray(arr).save(tmp_path / f"{i}.png")
    return ImageFolderDataset(tmp_path, 16)


class L2Perceptual(torch.nn.Module):
    """A stand-in perceptual distance so the test does not need the Inception weights."""

    def forward(self, a, b):
        return (a - b).pow(2).flatten(1).mean(1)


def test_tokenizer_training_runs_and_resumes_exactly(tmp_path):
    (tmp_path / "img").mkdir()
    data = _folder(tmp_path / "img")
    cfg = dict(
        batch_size=4,
        lr=1e-3,
        disc_start=2,
        disc_layers=2,
        disc_channels=8,
        ema_every=1,
        ema_decay=0.9,
        log_every=1,
        checkpoint_every=2,
        eval_every=3,
        eval_images=4,
    )
    straight = train_tokenizer(
        PRESETS["bae-tiny"],
        data,
        tmp_path / "a",
        TokenizerTrainConfig(steps=6, **cfg),
        held_out=data,
        perceptual=L2Perceptual(),
        progress=False,
    )
    train_tokenizer(
        PRESETS["bae-tiny"],
        data,
        tmp_path / "b",
        TokenizerTrainConfig(steps=3, **cfg),
        held_out=data,
        perceptual=L2Perceptual(),
        progress=False,
    )
    train_tokenizer(
        PRESETS["bae-tiny"],
        data,
        tmp_path / "b",
        TokenizerTrainConfig(steps=6, **cfg),
        held_out=data,
        perceptual=L2Perceptual(),
        resume=True,
        progress=False,
    )
    a, b = (torch.load(tmp_path / n / "state.pt", weights_only=True) for n in ("a", "b"))
    for part in ("model", "disc", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert log[0]["d_loss"] == 0 and log[-1]["d_loss"] > 0  # the discriminator starts at step 2
    assert "psnr" in log[2] and straight["step"] == 6
    assert (tmp_path / "a" / "recon" / "step_0000006.png").is_file() and (
        tmp_path / "a" / "loss.png"
    ).is_file()
    assert load_tokenizer(tmp_path / "a" / "model").config == PRESETS["bae-tiny"]
    assert {"psnr_ema", "psnr_raw"} <= set(log[2])
    # resuming a finished run with export="raw" re-exports the trained (not averaged) weights
    train_tokenizer(
        PRESETS["bae-tiny"],
        data,
        tmp_path / "a",
        TokenizerTrainConfig(steps=6, export="raw", **cfg),
        held_out=data,
        perceptual=L2Perceptual(),
        resume=True,
        progress=False,
    )
    exported = load_tokenizer(tmp_path / "a" / "model").state_dict()
    assert all(torch.equal(exported[k], a["model"][k]) for k in exported)
    assert not all(torch.equal(exported[k], a["ema"][k]) for k in exported if k in a["ema"])


def test_adaptive_weight_balances_gradient_norms():
    w = torch.nn.Parameter(torch.ones(3))
    nll = (w * torch.tensor([2.0, 0.0, 0.0])).sum()
    g = (w * torch.tensor([0.0, 1.0, 0.0])).sum()
    assert torch.isclose(adaptive_weight(nll, g, w, 10.0), torch.tensor(2.0 / (1 + 1e-4)))
    assert adaptive_weight(nll, g, w, 0.5) == 0.5


def test_patch_discriminator_and_psnr():
    d = PatchDiscriminator(3, 8, 3)
    assert d(torch.rand(2, 3, 32, 32)).shape[:2] == (2, 1)
    x = torch.rand(2, 3, 8, 8)
    assert torch.isinf(psnr(x, x)).logical_not().all() and psnr(x, x)[0] > 90
    assert abs(psnr(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.1))[0].item() - 20.0) < 1e-4


def test_inception_perceptual_distance_is_zero_for_equal_images_and_differentiable():
    from bigr.perceptual import InceptionPerceptual

    p = InceptionPerceptual(resolution=64, stages=("conv_2", "conv_4"))
    a = torch.rand(2, 3, 16, 16)
    b = (a + 0.2 * torch.randn_like(a)).clamp(0, 1).requires_grad_()
    assert p(a, a).abs().max() < 1e-6
    d = p(a, b)
    assert (d > 0).all()
    d.sum().backward()
    assert b.grad.abs().sum() > 0
    assert not any(q.requires_grad for q in p.net.parameters())


def test_cosine_learning_rate_and_a_late_perceptual_term(tmp_path):
    from bigr import schedules

    (tmp_path / "img").mkdir()
    data = _folder(tmp_path / "img")
    train = TokenizerTrainConfig(
        steps=6,
        batch_size=4,
        lr=1e-3,
        warmup_steps=2,
        lr_schedule="cosine",
        min_lr=1e-5,
        perceptual_start=3,
        disc_start=100,
        log_every=1,
        checkpoint_every=6,
        eval_every=6,
        eval_images=4,
    )
    train_tokenizer(
        PRESETS["bae-tiny"],
        data,
        tmp_path / "run",
        train,
        perceptual=L2Perceptual(),
        progress=False,
    )
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    rows = [r for r in log if "lr" in r]
    expected = [
        schedules.learning_rate(s, 1e-3, warmup=2, total=6, schedule="cosine", minimum=1e-5)
        for s in range(6)
    ]
    assert [r["lr"] for r in rows] == expected
    assert [r["perceptual"] > 0 for r in rows] == [False] * 3 + [True] * 3


class CountingPerceptual(L2Perceptual):
    def __init__(self):
        super().__init__()
        self.sizes = []

    def forward(self, a, b):
        self.sizes.append(len(a))
        return super().forward(a, b)


def test_the_perceptual_term_can_see_part_of_the_batch(tmp_path):
    (tmp_path / "img").mkdir()
    data = _folder(tmp_path / "img")
    seen = CountingPerceptual()
    train = TokenizerTrainConfig(
        steps=2, batch_size=4, perceptual_images=2, disc_start=100, log_every=1, eval_images=0
    )
    train_tokenizer(PRESETS["bae-tiny"], data, tmp_path / "run", train, perceptual=seen)
    assert seen.sizes == [2, 2]


def test_tokenizer_training_settings_are_range_checked():
    with pytest.raises(ValueError, match="perceptual_images must be >= 0"):
        TokenizerTrainConfig(perceptual_images=-1)
    with pytest.raises(ValueError, match="batch_size must be > 0"):
        TokenizerTrainConfig(batch_size=0)
