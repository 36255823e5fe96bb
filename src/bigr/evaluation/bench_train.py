"""Training benchmarks: tokens/s of a training step with the head on masked tokens only or on
every token (`bench_train`), and tokenization images/s (`bench_tokenize`).

Leaves to others: bigr's step against the release's, eager vs compiled, fp32 vs bf16
(`bench_train_variants.py`); the sampling benchmark and the shared measuring helpers
(`bench.py`).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from .. import schedules
from ..config import TOKENIZER_FOR, BiGRConfig, TokenizerConfig, get_preset
from ..model import BiGR
from .bench import machine_info, random_model, sync


def bench_train(
    preset: str = "bench",
    *,
    batch: int = 8,
    iters: int = 3,
    warmup: int = 1,
    tokenize_batch: int = 4,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict:
    """Training throughput of `preset` (random weights, random codes, AdamW steps) with the head
    on masked tokens only (ours) and on every token (the release's work; same loss and gradient),
    and tokenization throughput of its tokenizer (deterministic codes, bit-packed).

    Tokens/s counts image tokens of the batch (B x L) per optimizer step, whatever the path.
    """
    config = get_preset(preset)
    if not isinstance(config, BiGRConfig):
        raise ValueError(f"preset {preset!r} is not a BiGR generator")
    autocast_on = precision == "bf16"
    b, l = batch, config.num_tokens
    codes, labels, mask, t, noise = training_batch(config, b, config.num_classes, device)
    heads = {"head_unknown": "unknown", "head_all": "all"}
    models = {name: random_model(config, device=device).train() for name in heads}
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in heads}
    losses: dict[str, float] = {}
    # The two paths alternate step by step, so drift of a shared machine hits both alike.
    for i in range(warmup + iters):
        for name, head_tokens in heads.items():
            sync(device)
            start = time.perf_counter()
            with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=autocast_on):
                out = models[name].training_loss(
                    codes,
                    labels,
                    mask=mask,
                    t=t,
                    noise=noise,
                    drop_labels=False,
                    head_tokens=head_tokens,
                )
            out["loss"].backward()
            opts[name].step()
            opts[name].zero_grad(set_to_none=True)
            sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
            losses[name] = float(out["loss"].detach())
    paths = {}
    for name in heads:
        seconds = min(times[name])
        paths[name] = {
            "seconds_per_step": seconds,
            "tokens_per_second": b * l / seconds,
            "images_per_second": b / seconds,
            "loss": losses[name],
        }
    head = _bench_head(models["head_unknown"], mask, codes, warmup, iters, device, autocast_on)
    del models, opts
    result = {
        "preset": preset,
        "settings": {
            "batch": b,
            "tokens_per_image": l,
            "masked_fraction": float(mask.float().mean()),
            "iters": iters,
            "precision": precision,
        },
        "machine": machine_info(device),
        "train": paths,
        "speedup_head_unknown": paths["head_all"]["seconds_per_step"]
        / paths["head_unknown"]["seconds_per_step"],
        "head": head,
    }
    result["tokenize"] = bench_tokenize(
        TOKENIZER_FOR.get(preset, ""), batch=tokenize_batch, iters=iters, device=device
    )
    return result


def _bench_head(
    model: BiGR,
    mask: Tensor,
    codes: Tensor,
    warmup: int,
    iters: int,
    device: str | torch.device,
    autocast_on: bool,
) -> dict:
    """Seconds of the transcoder's loss forward + backward alone, on the masked tokens (ours)
    and on every token (the release): the part of a step that the restriction saves."""
    b, l, k = codes.shape
    g = torch.Generator().manual_seed(1)
    z = torch.randn(b * l, model.config.dim, generator=g).to(device).requires_grad_(True)
    x = codes.reshape(b * l, k)
    flat = mask.reshape(-1)
    times: dict[str, list[float]] = {"head_unknown": [], "head_all": []}
    for i in range(warmup + iters):
        for name in times:
            sync(device)
            start = time.perf_counter()
            with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=autocast_on):
                if name == "head_unknown":
                    out = model.head.loss(z[flat], x[flat])
                else:
                    out = model.head.loss(z, x, weight=flat)
            out["loss"].backward()
            sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    seconds = {name: min(v) for name, v in times.items()}
    return {
        "seconds_head_unknown": seconds["head_unknown"],
        "seconds_head_all": seconds["head_all"],
        "speedup_head_unknown": seconds["head_all"] / seconds["head_unknown"],
    }


def bench_tokenize(preset: str, *, batch: int = 4, iters: int = 3, device: str = "cpu") -> dict:
    """Images/s of `bigr tokenize`'s inner work: encode to deterministic codes and bit-pack."""
    from ..data.shards import pack_codes
    from ..tokenizer import BinaryAutoencoder

    if not preset:
        return {"skipped": "no tokenizer paired with this preset"}
    config = get_preset(preset)
    if not isinstance(config, TokenizerConfig):
        raise ValueError(f"preset {preset!r} is not a tokenizer")
    torch.manual_seed(0)
    model = BinaryAutoencoder(config).to(device).eval()
    images = torch.rand(
        batch, config.in_channels, config.image_size, config.image_size, device=device
    )
    times = []
    with torch.no_grad():
        for i in range(iters + 1):
            sync(device)
            start = time.perf_counter()
            pack_codes(model.encode(images, stochastic=False).codes)
            sync(device)
            if i:
                times.append(time.perf_counter() - start)
    seconds = min(times)
    return {
        "tokenizer": preset,
        "image_size": config.image_size,
        "batch": batch,
        "seconds_per_batch": seconds,
        "images_per_second": batch / seconds,
    }


def training_batch(
    config: BiGRConfig, batch: int, num_labels: int, device: str | torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Random codes (B, L, K), labels (B,) in [0, num_labels), a fixed mask (B, L), diffusion
    times (B, L) and noise (B, L, K), all drawn from one generator seeded 0."""
    b, l, k = batch, config.num_tokens, config.code_bits
    g = torch.Generator().manual_seed(0)
    codes = (torch.rand(b, l, k, generator=g) < 0.5).float().to(device)
    labels = torch.randint(0, num_labels, (b,), generator=g).to(device)
    # One fixed mask for every timed step, at the mean masked count of the release's cosine
    # draw (the head's work is linear in that count, so this is the average step's work; a
    # single random draw ranges from 1 token to all of them).
    count = round(sum(schedules.training_mask_count(s, l) for s in range(l)) / l)
    ranks = torch.rand(b, l, generator=g).argsort(dim=1).argsort(dim=1)
    mask = (ranks < count).to(device)
    t = torch.randint(1, config.head.diffusion_steps + 1, (b, l), generator=g).to(device)
    noise = torch.rand(b, l, k, generator=g).to(device)
    return codes, labels, mask, t, noise
