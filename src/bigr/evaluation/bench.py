"""Benchmarks: sampling (seconds per image, analytic FLOPs, the machine's matmul rate) and
training (tokens/s with the head on masked tokens only or on every token; tokenization images/s).

`bench_sample` times the default sampling path (head on still-unknown tokens only) and a path
doing the release's amount of head work (every token, every unmasking step), on a preset with
random weights, and measures fp32 matmul GFLOP/s of the same machine in the same run (best of
several timings of the head's dominant product shape, before and after the sampling runs), so
the achieved rate can be read as a fraction of what the machine delivers.

FLOPs are counted analytically from the configuration (2 per multiply-add; matrix products
only: norms, activations, softmax and sampling are not counted).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time

import torch
from torch import Tensor

from .. import schedules
from ..config import TOKENIZER_FOR, BiGRConfig, TokenizerConfig, get_preset
from ..model import BiGR
from ..official.release_sampler import release_sample_codes
from ..sampler import SamplerConfig, plan_steps, sample_codes


def matmul_gflops(
    m: int = 1024,
    k: int = 512,
    n: int = 1536,
    seconds: float = 1.5,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> float:
    """Best observed GFLOP/s of an (m, k) x (k, n) product (the head's modulation shape)."""
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    best, deadline = float("inf"), time.perf_counter() + seconds
    for _ in range(3):
        a @ b
    while time.perf_counter() < deadline:
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def _sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def transformer_flops(config: BiGRConfig, rows: int) -> float:
    """One backbone forward on `rows` sequences."""
    d, l = config.dim, config.num_tokens + config.class_tokens
    kv = config.num_kv_heads * config.head_dim
    per_layer = 2 * l * (d * (d + 2 * kv) + d * d + 3 * d * config.ffn_hidden) + 4 * l * l * d
    embed = 2 * config.num_tokens * config.code_bits * d + (
        2 * d * 6 * d if config.use_adaln else 0
    )
    return rows * (config.depth * per_layer + embed)


def head_flops(config: BiGRConfig, tokens: int, copies: int, head_steps: int) -> float:
    """The Bernoulli head on `tokens` rows (x `copies` for guidance), over `head_steps` steps."""
    w, k, d = config.head.width, config.code_bits, config.dim
    per_row_step = 2 * (config.head.depth * (3 * w * w + 2 * w * w) + w * (w + k) + w * k)
    per_step = copies * tokens * per_row_step + 2 * tokens * k * w + 2 * (256 * w + w * w)
    return copies * tokens * 2 * d * w + head_steps * per_step


def release_flops(config: BiGRConfig, sampler: SamplerConfig, batch: int) -> dict[str, float]:
    """Analytic FLOPs of the release's algorithm (`bigr.official.release_sampler`): both
    halves on every token at every step, and every denoiser call embedding condition and time
    per token."""
    n, w, k, d = config.num_tokens, config.head.width, config.code_bits, config.dim
    body = 2 * (config.head.depth * (3 * w * w + 2 * w * w) + w * (w + k) + w * k)
    per_row_call = body + 2 * d * w + 2 * (256 * w + w * w)  # + c_embedder + t_embedder
    steps = len(plan_steps([n] * batch, n, sampler))
    transformer = steps * transformer_flops(config, 2 * batch)
    head = steps * sampler.head_steps * 2 * batch * n * per_row_call
    return {"transformer": transformer, "head": head, "total": transformer + head}


def sampling_flops(config: BiGRConfig, sampler: SamplerConfig, batch: int) -> dict[str, float]:
    """Analytic FLOPs of one `sample_codes` call generating `batch` images from scratch."""
    n = config.num_tokens
    plan = plan_steps([n] * batch, n, sampler)
    transformer = head = 0.0
    for step in plan:
        copies = 1 if step.guidance in (0.0, 1.0) else 2
        tokens = n if sampler.head_tokens == "all" else max(step.unknown_before)
        transformer += transformer_flops(config, copies * batch)
        head += head_flops(config, batch * tokens, copies, sampler.head_steps)
    return {"transformer": transformer, "head": head, "total": transformer + head}


def random_model(config: BiGRConfig, seed: int = 0, device: str | torch.device = "cpu") -> BiGR:
    """Release initialisation plus small noise, so no layer is exactly zero."""
    torch.manual_seed(seed)
    model = BiGR(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.to(device).eval()


def bench_sample(
    preset: str = "bench",
    *,
    batch: int = 4,
    steps: int = 20,
    head_steps: int = 100,
    guidance: float = 3.0,
    gumbel: float = 0.01,
    paths: tuple[str, ...] = ("default", "official_work"),
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    repeats: int = 1,
) -> dict:
    config = get_preset(preset)
    if not isinstance(config, BiGRConfig):
        raise ValueError(f"preset {preset!r} is not a BiGR generator")
    model = random_model(config, device=device).to(dtype)
    labels = torch.arange(batch, device=device) % config.num_classes
    base = SamplerConfig(steps=steps, head_steps=head_steps, guidance=guidance, gumbel=gumbel)
    variants = {
        "default": base,
        "official_work": dataclasses.replace(base, head_tokens="all"),
        "release": base,
    }
    unknown = sorted(set(paths) - set(variants))
    if unknown:
        raise ValueError(f"unknown sampling paths {unknown}; known: {', '.join(variants)}")
    matmul_before = matmul_gflops(device=device, dtype=dtype)
    results = {}
    for name in paths:
        sampler = variants[name]
        run = release_sample_codes if name == "release" else sample_codes
        count = release_flops if name == "release" else sampling_flops
        flops = count(config, sampler, batch)
        times = []
        for r in range(repeats):
            generator = torch.Generator(device).manual_seed(r)
            _sync(device)
            start = time.perf_counter()
            with torch.autocast(
                torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32
            ):
                run(model, labels, sampler, generator=generator)
            _sync(device)
            times.append(time.perf_counter() - start)
        seconds = min(times)
        results[name] = {
            "seconds_per_image": seconds / batch,
            "images_per_second": batch / seconds,
            "gflop_per_image": flops["total"] / batch / 1e9,
            "gflop_per_image_head": flops["head"] / batch / 1e9,
            "achieved_gflops": flops["total"] / seconds / 1e9,
        }
    matmul = max(matmul_before, matmul_gflops(device=device, dtype=dtype))
    for entry in results.values():
        entry["fraction_of_matmul"] = entry["achieved_gflops"] / matmul
    out = {
        "preset": preset,
        "settings": {
            "batch": batch,
            "steps": steps,
            "head_steps": head_steps,
            "guidance": guidance,
            "gumbel": gumbel,
            "order": base.order,
            "dtype": str(dtype).replace("torch.", ""),
            "repeats": repeats,
        },
        "machine": _machine(device),
        "matmul_gflops": matmul,
        "paths": results,
    }
    for other in ("official_work", "release"):
        if "default" in results and other in results:
            out[f"speedup_vs_{other}"] = (
                results[other]["seconds_per_image"] / results["default"]["seconds_per_image"]
            )
    return out


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
    b, l, k = batch, config.num_tokens, config.code_bits
    g = torch.Generator().manual_seed(0)
    codes = (torch.rand(b, l, k, generator=g) < 0.5).float().to(device)
    labels = torch.randint(0, config.num_classes, (b,), generator=g).to(device)
    # One fixed mask for every timed step, at the mean masked count of the release's cosine
    # draw (the head's work is linear in that count, so this is the average step's work; a
    # single random draw ranges from 1 token to all of them).
    count = round(sum(schedules.training_mask_count(s, l) for s in range(l)) / l)
    ranks = torch.rand(b, l, generator=g).argsort(dim=1).argsort(dim=1)
    mask = (ranks < count).to(device)
    t = torch.randint(1, config.head.diffusion_steps + 1, (b, l), generator=g).to(device)
    noise = torch.rand(b, l, k, generator=g).to(device)
    heads = {"masked_only": "masked", "all_tokens": "all"}
    models = {name: random_model(config, device=device).train() for name in heads}
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in heads}
    losses: dict[str, float] = {}
    # The two paths alternate step by step, so drift of a shared machine hits both alike.
    for i in range(warmup + iters):
        for name, head_tokens in heads.items():
            _sync(device)
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
            _sync(device)
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
    head = _bench_head(models["masked_only"], mask, codes, warmup, iters, device, autocast_on)
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
        "machine": _machine(device),
        "train": paths,
        "speedup_masked_only": paths["all_tokens"]["seconds_per_step"]
        / paths["masked_only"]["seconds_per_step"],
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
    times: dict[str, list[float]] = {"masked_only": [], "all_tokens": []}
    for i in range(warmup + iters):
        for name in times:
            _sync(device)
            start = time.perf_counter()
            with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=autocast_on):
                if name == "masked_only":
                    out = model.head.loss(z[flat], x[flat])
                else:
                    out = model.head.loss(z, x, weight=flat)
            out["loss"].backward()
            _sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    seconds = {name: min(v) for name, v in times.items()}
    return {
        "seconds_masked_only": seconds["masked_only"],
        "seconds_all_tokens": seconds["all_tokens"],
        "speedup_masked_only": seconds["all_tokens"] / seconds["masked_only"],
    }


def bench_tokenize(preset: str, *, batch: int = 4, iters: int = 3, device: str = "cpu") -> dict:
    """Images/s of `bigr tokenize`'s inner work: encode to deterministic codes and bit-pack."""
    from ..shards import pack_codes
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
            _sync(device)
            start = time.perf_counter()
            pack_codes(model.encode(images, stochastic=False).codes)
            _sync(device)
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


def _machine(device: str) -> dict:
    info = {
        "device": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


TRAIN_VARIANTS = ("eager-fp32", "eager-bf16", "compile-fp32", "compile-bf16")


def bench_train_variants(
    preset: str = "bench",
    *,
    batch: int = 8,
    iters: int = 3,
    warmup: int = 2,
    variants: tuple[str, ...] = TRAIN_VARIANTS,
    device: str = "cpu",
    overrides: dict | None = None,
) -> dict:
    """Seconds per optimizer step of bigr's training step (head on masked tokens) run eagerly or
    under `torch.compile`, in fp32 or bf16 autocast, interleaved step by step; the FLOPs of one
    step counted by torch's FLOP counter (matrix products, forward + backward) give each
    variant's achieved GFLOP/s, beside the fp32 matmul rate measured in the same run.

    Every variant starts from the same weights and sees the same batch, so their losses after
    the same number of steps are comparable (printed, to show the fast paths compute the same).
    """
    from torch.utils.flop_counter import FlopCounterMode

    unknown = sorted(set(variants) - set(TRAIN_VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(TRAIN_VARIANTS)}")
    config = get_preset(preset)
    if not isinstance(config, BiGRConfig):
        raise ValueError(f"preset {preset!r} is not a BiGR generator")
    config = dataclasses.replace(config, **(overrides or {}))
    b, l, k = batch, config.num_tokens, config.code_bits
    g = torch.Generator().manual_seed(0)
    codes = (torch.rand(b, l, k, generator=g) < 0.5).float().to(device)
    labels = torch.randint(0, max(config.num_classes, 1), (b,), generator=g).to(device)
    count = round(sum(schedules.training_mask_count(s, l) for s in range(l)) / l)
    mask = (torch.rand(b, l, generator=g).argsort(1).argsort(1) < count).to(device)
    t = torch.randint(1, config.head.diffusion_steps + 1, (b, l), generator=g).to(device)
    noise = torch.rand(b, l, k, generator=g).to(device)
    inputs = dict(mask=mask, t=t, noise=noise, drop_labels=False)

    runs = {}
    for name in variants:
        model = random_model(config, device=device).train()
        loss_fn = torch.compile(model.training_loss) if name.startswith("compile") else None
        runs[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4), loss_fn)

    def step(name: str) -> float:
        model, opt, loss_fn = runs[name]
        with torch.autocast(torch.device(device).type, torch.bfloat16, enabled="bf16" in name):
            out = (loss_fn or model.training_loss)(codes, labels, **inputs)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(out["loss"].detach())

    counter_model = random_model(config, device=device).train()
    with FlopCounterMode(display=False) as counter:
        counter_model.training_loss(codes, labels, **inputs)["loss"].backward()
    flops = float(counter.get_total_flops())
    del counter_model
    rate_before = matmul_gflops(device=device)
    times: dict[str, list[float]] = {name: [] for name in variants}
    first: dict[str, float] = {}
    losses: dict[str, float] = {}
    for i in range(warmup + iters):
        for name in variants:  # interleaved: drift of a shared machine hits all alike
            _sync(device)
            start = time.perf_counter()
            losses[name] = step(name)
            _sync(device)
            elapsed = time.perf_counter() - start
            if i == 0:
                first[name] = elapsed  # includes compilation
            if i >= warmup:
                times[name].append(elapsed)
    rate = max(rate_before, matmul_gflops(device=device))
    base = min(times[variants[0]])
    result = {}
    for name in variants:
        seconds = min(times[name])
        result[name] = {
            "seconds_per_step": seconds,
            "first_step_seconds": first[name],
            "tokens_per_second": b * l / seconds,
            "gflops": flops / seconds / 1e9,
            "fraction_of_matmul": flops / seconds / 1e9 / rate,
            "speedup": base / seconds,
            "loss_after": losses[name],
        }
    return {
        "preset": preset,
        "overrides": {
            k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
            for k, v in (overrides or {}).items()
        },
        "settings": {"batch": b, "tokens_per_image": l, "iters": iters, "warmup": warmup},
        "machine": _machine(device),
        "step_gflop": flops / 1e9,
        "matmul_gflops": rate,
        "variants": result,
    }
