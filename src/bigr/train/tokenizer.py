"""Training the binary autoencoder (the B-AE objective of bigr-spec.md §1.7, inherited from BLD).

Loss = L1 reconstruction + perceptual (an LPIPS-style distance on the FID Inception, the
network available offline; the release used VGG16 LPIPS) + adaptive-weight hinge GAN term from
a PatchGAN discriminator switched on at `disc_start`, + an optional code regulariser
mean(p (1 - p)) (the release applied the sigmoid twice there; weight 0 by default). The
discriminator trains with the hinge loss. EMA of the autoencoder; bf16 autocast on GPUs.

Like generator training, every random draw of a step (images, flips, code samples) comes from
generators seeded by (seed, step), so a killed run resumes exactly. Under torchrun the models
are wrapped in DDP; the adaptive weight uses each rank's own gradients, as the release does.

A run may start from an exported tokenizer (`init`) and train its decoder side only
(`freeze_encoder`: the encoder and the code projection stay fixed, so every image keeps its
codes and a generator trained on them stays valid), on thresholded codes (`codes="threshold"`,
the codes `bigr tokenize --deterministic` writes and the generator learns) if asked: the way to
sharpen a tokenizer's reconstructions (e.g. with a late GAN phase) after its generator exists.
SIGTERM / SIGINT save the step just finished and stop (`train/stop.py`).

Outputs in the run folder: `model/` (EMA tokenizer, `load_tokenizer`), `state.pt`, `log.jsonl`,
`loss.png`, `recon/step_*.png` (held-out images over their reconstructions).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import distributed, schedules
from ..checkpoint import EMA, load_state
from ..config import TokenizerConfig, config_to_json, require_choice, require_ranges
from ..tokenizer import BinaryAutoencoder
from .guards import check_finite, check_resume_config
from .step_draws import batch_indices
from .stop import StopRequest
from .tokenizer_run import (
    append_log,
    evaluate_reconstruction,
    evaluate_run,
    psnr,
    read_log,
    save_run,
)

__all__ = [
    "PatchDiscriminator",
    "TokenizerTrainConfig",
    "evaluate_reconstruction",
    "psnr",
    "train_tokenizer",
]


@dataclass(frozen=True, kw_only=True)
class TokenizerTrainConfig:
    steps: int = 10000
    stop_at: int = 0  # >0: checkpoint and stop after this step; the schedule still spans `steps`
    batch_size: int = 32  # global
    lr: float = 1e-4
    warmup_steps: int = 0
    lr_schedule: str = "constant"  # the release; or "cosine" (decay to min_lr at `steps`)
    min_lr: float = 0.0
    disc_lr: float | None = None  # None: same as lr
    perceptual_weight: float = 1.0
    perceptual_resolution: int = 128
    perceptual_start: int = 0  # step at which the perceptual term switches on
    perceptual_images: int = 0  # images per rank the perceptual term sees (0: the whole batch)
    disc_start: int = 2000
    # steps from disc_start in which only the discriminator learns: the autoencoder's GAN term
    # waits until it judges something (0: both start at disc_start, as the release does)
    disc_warmup: int = 0
    disc_weight_max: float = 1.0
    disc_layers: int = 3
    disc_channels: int = 64
    code_weight: float = 0.0
    ema_decay: float = 0.995
    ema_every: int = 10  # the release's EMA: beta 0.995 every 10 steps
    export: str = "ema"  # weights written to model/: "ema" or "raw" (the trained weights)
    flip: bool = True
    # Decoder-side fine-tuning: the encoder and the code projection stay fixed (so every image
    # keeps its codes, and a generator trained on them stays valid); only the decoder and the
    # bits' embedding learn.
    freeze_encoder: bool = False
    codes: str = "bernoulli"  # what the decoder sees: Bernoulli draws (release) or "threshold"
    precision: str = "auto"
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    eval_every: int = 500
    eval_images: int = 64  # held-out images for PSNR and the reconstruction grid

    def __post_init__(self) -> None:
        require_ranges(
            self,
            {
                "steps": "pos",
                "stop_at": "nonneg",
                "batch_size": "pos",
                "lr": "pos",
                "warmup_steps": "nonneg",
                "min_lr": "nonneg",
                "perceptual_weight": "nonneg",
                "perceptual_resolution": "pos",
                "perceptual_start": "nonneg",
                "perceptual_images": "nonneg",
                "ema_every": "pos",
                "log_every": "pos",
                "checkpoint_every": "pos",
                "eval_every": "pos",
                "eval_images": "nonneg",
                **dict.fromkeys(("disc_start", "disc_warmup", "disc_weight_max"), "nonneg"),
                **dict.fromkeys(("code_weight", "seed"), "nonneg"),
                **dict.fromkeys(("disc_lr", "disc_layers", "disc_channels"), "pos"),
                "ema_decay": "prob",  # 1 would keep the EMA at its initialisation
            },
        )
        require_choice(self, "lr_schedule", schedules.LR_SCHEDULES)
        require_choice(self, "export", ("ema", "raw"))
        require_choice(self, "codes", ("bernoulli", "threshold"))
        if self.freeze_encoder and self.code_weight > 0:
            raise ValueError("code_weight regularises the encoder: it does nothing when frozen")
        require_choice(self, "precision", ("auto", "fp32", "bf16"))
        if self.stop_at > self.steps:
            raise ValueError(f"stop_at ({self.stop_at}) must be at most steps ({self.steps})")

    @property
    def last_step(self) -> int:
        """The step this invocation trains up to: `stop_at` if set, else `steps`."""
        return self.stop_at or self.steps


class PatchDiscriminator(nn.Module):
    """The 3-layer PatchGAN of the release (4x4 convs, BatchNorm, LeakyReLU 0.2)."""

    def __init__(self, in_channels: int = 3, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < layers else 1
            seq += [
                nn.Conv2d(channels * prev, channels * mult, 4, stride, 1, bias=False),
                nn.BatchNorm2d(channels * mult),
                nn.LeakyReLU(0.2, True),
            ]
        seq.append(nn.Conv2d(channels * mult, 1, 4, 1, 1))
        self.main = nn.Sequential(*seq)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())


def adaptive_weight(nll: Tensor, g_loss: Tensor, last: Tensor, maximum: float) -> Tensor:
    """||grad nll|| / (||grad g|| + 1e-4) at the decoder's last layer, clamped to [0, max]."""
    g_nll = torch.autograd.grad(nll, last, retain_graph=True)[0]
    g_gan = torch.autograd.grad(g_loss, last, retain_graph=True)[0]
    return (g_nll.norm() / (g_gan.norm() + 1e-4)).clamp(0, maximum).detach()


def _images(dataset, indices: Tensor, flips: Tensor | None) -> Tensor:
    batch = torch.stack([dataset[int(i)][0] for i in indices])
    if flips is not None:
        batch = torch.where(flips.view(-1, 1, 1, 1), batch.flip(-1), batch)
    return batch


@dataclass
class TokenizerRun:
    """Everything a tokenizer run holds between steps."""

    ctx: distributed.Context
    model: BinaryAutoencoder
    disc: PatchDiscriminator
    net: nn.Module  # the model, wrapped in DDP under torchrun
    dnet: nn.Module
    ema: EMA
    opt: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    perceptual: nn.Module | None
    start: int
    log: list[dict]
    eval_images: Tensor | None
    init: str | None = None  # the exported tokenizer the run started from

    def autocast(self, train: TokenizerTrainConfig) -> contextlib.AbstractContextManager:
        use_bf16 = train.precision == "bf16" or (
            train.precision == "auto" and self.ctx.device.type == "cuda"
        )
        if not use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=torch.bfloat16)


def _setup(
    config: TokenizerConfig,
    out: Path,
    train: TokenizerTrainConfig,
    *,
    held_out,
    resume: bool,
    device: str | None,
    perceptual: nn.Module | None,
    init: str | Path | None = None,
) -> TokenizerRun:
    """Models, optimizers and the resumed state (if any); the log truncated to that state."""
    ctx = distributed.setup(device)
    if train.batch_size % ctx.world_size:
        raise ValueError(
            f"global batch {train.batch_size} is not divisible by {ctx.world_size} ranks"
        )
    torch.manual_seed(train.seed)
    fresh = not (resume and (out / "state.pt").is_file())
    if train.freeze_encoder and init is None and fresh:
        raise ValueError("freeze_encoder keeps the codes of a trained tokenizer: give --init")
    model = BinaryAutoencoder(config).to(ctx.device).train()
    if init is not None:
        model.load_state_dict(_warm_start(config, init).state_dict())
    if train.freeze_encoder:
        for param in model.encoder_side():
            param.requires_grad_(False)
    disc = PatchDiscriminator(config.in_channels, train.disc_channels, train.disc_layers)
    disc = disc.to(ctx.device).train()
    if perceptual is None and train.perceptual_weight > 0:
        from ..perceptual import InceptionPerceptual

        perceptual = InceptionPerceptual(resolution=train.perceptual_resolution)
    if perceptual is not None:
        perceptual = perceptual.to(ctx.device)
    ema = EMA(model, train.ema_decay)
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=train.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=train.disc_lr or train.lr)
    start = 0
    if not fresh:
        state = load_state(out / "state.pt", ctx.device)
        check_resume_config(str(out / "state.pt"), state.get("config"), config)
        model.load_state_dict(state["model"])
        disc.load_state_dict(state["disc"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        opt_d.load_state_dict(state["opt_d"])
        start = state["step"]
    net, dnet = model, disc
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        net, dnet = DDP(model, device_ids=ids), DDP(disc, device_ids=ids)
    eval_images = None
    if held_out is not None and len(held_out):
        count = min(train.eval_images, len(held_out))
        eval_images = torch.stack([held_out[i][0] for i in range(count)])
    log = [r for r in read_log(out / "log.jsonl") if r["step"] <= start]
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return TokenizerRun(
        ctx,
        model,
        disc,
        net,
        dnet,
        ema,
        opt,
        opt_d,
        perceptual,
        start,
        log,
        eval_images,
        None if init is None else str(init),
    )


def _warm_start(config: TokenizerConfig, init: str | Path) -> BinaryAutoencoder:
    """The exported tokenizer `init`, which must have the config being trained."""
    from ..model import load_tokenizer

    warm = load_tokenizer(init)
    if config_to_json(warm.config) != config_to_json(config):
        raise ValueError(f"--init {init}: its config differs from the one being trained")
    return warm


def tokenizer_step(step: int, run: TokenizerRun, dataset, train: TokenizerTrainConfig) -> dict:
    """One optimizer step of the autoencoder (and of the discriminator once it is on)."""
    ctx = run.ctx
    g = distributed.generator("cpu", train.seed, "tokenizer-step", step)
    indices = batch_indices(step, train.batch_size, len(dataset), train.seed)
    flips = torch.rand(train.batch_size, generator=g) < 0.5 if train.flip else None
    per_rank = train.batch_size // ctx.world_size
    rows = slice(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
    x = _images(dataset, indices[rows], None if flips is None else flips[rows]).to(ctx.device)
    code_gen = distributed.generator(ctx.device, train.seed, "codes", step, ctx.rank)
    lr = schedules.run_learning_rate(step, train)
    for group in run.opt.param_groups:
        group["lr"] = lr
    gan_on = step >= train.disc_start  # the discriminator learns
    adversarial = step >= train.disc_start + train.disc_warmup  # ... and the autoencoder hears it
    with run.autocast(train):
        recon, enc = run.net(x, code_gen, stochastic=train.codes == "bernoulli")
        rec = (x - recon.float()).abs().mean()
        p_loss = rec.new_zeros(())
        if run.perceptual is not None and step >= train.perceptual_start:
            part = slice(None, train.perceptual_images or None)
            p_loss = run.perceptual(x[part], recon[part].float()).mean()
        nll = rec + train.perceptual_weight * p_loss
        loss, g_loss, d_weight = nll, rec.new_zeros(()), rec.new_zeros(())
        if adversarial:
            g_loss = -run.dnet(recon.float()).mean()
            last = run.model.decoder.blocks[-1].weight
            d_weight = adaptive_weight(nll, g_loss, last, train.disc_weight_max)
            loss = loss + d_weight * g_loss
        if train.code_weight > 0:
            loss = loss + train.code_weight * (enc.probs * (1 - enc.probs)).mean()
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    check_finite(step + 1, lr, loss=float(loss.detach()))  # before the step reaches the weights
    run.opt.step()
    d_loss = rec.new_zeros(())
    if gan_on:
        with run.autocast(train):
            d_loss = hinge_d_loss(run.dnet(x), run.dnet(recon.detach().float()))
        run.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        run.opt_d.step()
    if (step + 1) % train.ema_every == 0:
        run.ema.update(run.model)
    values = torch.stack([loss, rec, p_loss, g_loss, d_weight, d_loss]).detach().float().tolist()
    names = ("loss", "l1", "perceptual", "g_loss", "d_weight", "d_loss")
    return {"step": step + 1, **dict(zip(names, values, strict=True)), "lr": lr}


def _bookkeeping(out: Path, run: TokenizerRun, stats: dict, train: TokenizerTrainConfig, t0: float):
    """Main rank: held-out PSNR and grids, the log, checkpoints."""
    done = stats["step"]
    if run.eval_images is not None and (done % train.eval_every == 0 or done == train.steps):
        stats |= evaluate_run(out, done, run.model, run.ema, run.eval_images, train.export)
    if done % train.log_every == 0 or done == train.steps or "psnr" in stats:
        stats["seconds"] = time.perf_counter() - t0
        append_log(out, run.log, stats)
    if done % train.checkpoint_every == 0 or done in (train.steps, train.stop_at):
        save_run(out, done, run, train)


def train_tokenizer(
    config: TokenizerConfig,
    dataset,
    out_dir: str | Path,
    train: TokenizerTrainConfig,
    *,
    held_out=None,
    resume: bool = False,
    device: str | None = None,
    perceptual: nn.Module | None = None,
    progress: bool = True,
    init: str | Path | None = None,
) -> dict[str, float]:
    """Train from scratch, from the exported tokenizer `init`, or resume; `held_out` (a
    dataset) feeds PSNR and recon grids. SIGTERM / SIGINT save the finished step and return
    (`stopped_by_signal` in the result)."""
    out = Path(out_dir)
    run = _setup(
        config,
        out,
        train,
        held_out=held_out,
        resume=resume,
        device=device,
        perceptual=perceptual,
        init=init,
    )
    ctx = run.ctx
    bar = None
    if progress and ctx.is_main:
        from tqdm import tqdm

        bar = tqdm(total=train.steps, initial=run.start, desc="train-tokenizer", unit="step")
    stats: dict[str, float] = {}
    t0 = time.perf_counter()
    try:  # the bar ends its line before any error is printed
        with StopRequest() as stop:
            for step in range(run.start, train.last_step):
                stats = tokenizer_step(step, run, dataset, train)
                stopping = stop.requested(ctx)
                if ctx.is_main:
                    _bookkeeping(out, run, stats, train, t0)
                    unsaved = stats["step"] % train.checkpoint_every and step + 1 < train.last_step
                    if stopping and unsaved:
                        save_run(out, stats["step"], run, train)  # the step just finished
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(l1=f"{stats['l1']:.4f}")
                distributed.barrier(ctx)
                if stopping:
                    stats["stopped_by_signal"] = stopping
                    break
    finally:
        if bar is not None:
            bar.close()
    if run.start >= train.last_step and ctx.is_main:  # a finished run resumed: re-export only
        stats = {"step": run.start, "reexport": train.export}
        if run.eval_images is not None:
            model, ema = run.model, run.ema
            stats |= evaluate_run(out, run.start, model, ema, run.eval_images, train.export)
        append_log(out, run.log, stats)
        save_run(out, run.start, run, train)
    distributed.teardown(ctx)
    return stats
