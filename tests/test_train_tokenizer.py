import dataclasses
import json
import os
import signal

import pytest
import torch
from PIL import Image

from bigr.config import PRESETS
from bigr.data import ImageFolderDataset
from bigr.model import load_tokenizer
from bigr.tokenizer import BinaryAutoencoder
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


def test_a_discriminator_warmup_keeps_the_gan_term_off_until_it_ends(tmp_path):
    (tmp_path / "img").mkdir()
    data = _folder(tmp_path / "img")
    train = TokenizerTrainConfig(
        steps=4,
        batch_size=4,
        lr=1e-3,
        disc_start=1,
        disc_warmup=2,  # the discriminator learns from step 2, the autoencoder hears it from 4
        disc_layers=2,
        disc_channels=8,
        log_every=1,
        eval_images=0,
    )
    train_tokenizer(PRESETS["bae-tiny"], data, tmp_path / "r", train, perceptual=L2Perceptual())
    log = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [r["d_loss"] > 0 for r in log] == [False, True, True, True]
    assert [r["d_weight"] > 0 for r in log] == [False, False, False, True]
    assert log[1]["g_loss"] == log[2]["g_loss"] == 0
    with pytest.raises(ValueError, match="disc_warmup"):
        TokenizerTrainConfig(disc_warmup=-1)


def test_a_decoder_fine_tune_keeps_every_code_and_changes_the_decoder(tmp_path):
    (tmp_path / "img").mkdir()
    data = _folder(tmp_path / "img")
    base = TokenizerTrainConfig(steps=2, batch_size=4, disc_start=100, eval_images=0)
    train_tokenizer(PRESETS["bae-tiny"], data, tmp_path / "base", base, perceptual=L2Perceptual())
    start = load_tokenizer(tmp_path / "base" / "model")
    tune = TokenizerTrainConfig(
        steps=3,
        batch_size=4,
        lr=1e-2,
        disc_start=1,  # the GAN term's adaptive weight works from the decoder side alone
        disc_layers=2,
        disc_channels=8,
        freeze_encoder=True,
        codes="threshold",
        ema_every=1,
        export="raw",
        eval_images=0,
    )
    train_tokenizer(
        PRESETS["bae-tiny"],
        data,
        tmp_path / "tuned",
        tune,
        perceptual=L2Perceptual(),
        init=tmp_path / "base" / "model",
        progress=False,
    )
    tuned = load_tokenizer(tmp_path / "tuned" / "model")
    before, after = start.state_dict(), tuned.state_dict()
    fixed = {n for n, _ in start.named_parameters() if n.startswith(("encoder.", "binarizer.proj"))}
    assert fixed and all(torch.equal(before[n], after[n]) for n in fixed)
    assert not torch.equal(before["binarizer.embed.weight"], after["binarizer.embed.weight"])
    assert any(not torch.equal(before[n], after[n]) for n in after if n.startswith("decoder."))
    images = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        codes = [t.encode(images, stochastic=False).codes for t in (start, tuned)]
    assert torch.equal(*codes)
    meta = json.loads((tmp_path / "tuned" / "model" / "config.json").read_text())
    extra = meta["extra"]
    assert extra["init"].endswith("model") and extra["frozen_encoder"] is True
    log = [json.loads(r) for r in (tmp_path / "tuned" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["d_loss"] > 0 and log[-1]["d_weight"] > 0


def test_a_fine_tune_refuses_a_tokenizer_of_another_shape(tmp_path):
    (tmp_path / "img").mkdir()
    data = _folder(tmp_path / "img")
    train = TokenizerTrainConfig(steps=1, batch_size=4, disc_start=100, eval_images=0)
    train_tokenizer(PRESETS["bae-tiny"], data, tmp_path / "a", train, perceptual=L2Perceptual())
    other = dataclasses.replace(PRESETS["bae-tiny"], code_bits=PRESETS["bae-tiny"].code_bits + 1)
    with pytest.raises(ValueError, match="its config differs"):
        train_tokenizer(other, data, tmp_path / "b", train, init=tmp_path / "a" / "model")
    frozen = dataclasses.replace(train, freeze_encoder=True)
    with pytest.raises(ValueError, match="give --init"):
        train_tokenizer(PRESETS["bae-tiny"], data, tmp_path / "c", frozen)
    with pytest.raises(ValueError, match="does nothing when frozen"):
        TokenizerTrainConfig(freeze_encoder=True, code_weight=0.1)


class SignalOnCall(L2Perceptual):
    """Sends this process SIGTERM during the `at`-th step, as a session ending would."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.calls, self.at = 0, at

    def forward(self, a, b):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().forward(a, b)


def test_sigterm_saves_the_tokenizer_step_it_finished_and_resume_continues(tmp_path):
    (tmp_path / "img").mkdir()
    data = _folder(tmp_path / "img")
    cfg = dict(batch_size=4, disc_start=100, log_every=1, checkpoint_every=1000, eval_images=0)
    common = dict(perceptual=SignalOnCall(at=3), progress=False)
    stats = train_tokenizer(
        PRESETS["bae-tiny"], data, tmp_path / "run", TokenizerTrainConfig(steps=50, **cfg), **common
    )
    assert stats["stopped_by_signal"] == signal.SIGTERM and stats["step"] == 3
    assert torch.load(tmp_path / "run" / "state.pt", weights_only=True)["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again
    train_tokenizer(
        PRESETS["bae-tiny"],
        data,
        tmp_path / "run",
        TokenizerTrainConfig(steps=5, **cfg),
        perceptual=L2Perceptual(),
        resume=True,
        progress=False,
    )
    rows = [json.loads(r) for r in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]


def test_the_training_pass_can_use_thresholded_codes():
    model = BinaryAutoencoder(PRESETS["bae-tiny"]).eval()
    size = PRESETS["bae-tiny"].image_size
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        recon, encoded = model(images, stochastic=False)
        plain = model.encode(images, stochastic=False)
    assert torch.equal(encoded.codes, plain.codes) and torch.equal(recon, model.decode(plain.codes))


def test_stop_at_then_resume_equals_an_uninterrupted_cosine_run(tmp_path):
    (tmp_path / "img").mkdir()
    data = _folder(tmp_path / "img")
    cfg = dict(
        steps=5,
        batch_size=4,
        lr=1e-3,
        lr_schedule="cosine",
        disc_start=10**9,
        log_every=1,
        checkpoint_every=100,
        eval_images=0,
        perceptual_weight=0.0,
    )
    kw = dict(perceptual=L2Perceptual(), progress=False)
    straight = train_tokenizer(
        PRESETS["bae-tiny"], data, tmp_path / "a", TokenizerTrainConfig(**cfg), **kw
    )
    first = train_tokenizer(
        PRESETS["bae-tiny"], data, tmp_path / "b", TokenizerTrainConfig(stop_at=2, **cfg), **kw
    )
    assert first["step"] == 2  # stopped there, on the 5-step schedule, and saved
    assert (
        json.loads((tmp_path / "b" / "model" / "config.json").read_text())["extra"]["trained_steps"]
        == 2
    )
    resumed = train_tokenizer(
        PRESETS["bae-tiny"], data, tmp_path / "b", TokenizerTrainConfig(**cfg), resume=True, **kw
    )
    assert resumed["step"] == straight["step"] == 5
    a = load_tokenizer(tmp_path / "a" / "model").state_dict()
    b = load_tokenizer(tmp_path / "b" / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="stop_at"):
        TokenizerTrainConfig(stop_at=6, **cfg)
