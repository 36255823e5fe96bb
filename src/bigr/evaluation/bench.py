"""Sampling benchmark (seconds per image, analytic FLOPs, the machine's matmul rate) and the
measuring helpers the training benchmarks (`bench_train.py`, `bench_train_variants.py`) share.

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
import functools
import os
import platform
import time
from collections.abc import Callable

import torch

from ..config import BiGRConfig, get_preset
from ..model import BiGR, compile_backbone
from ..official.release_sampler import release_sample_codes
from ..official.strategies import RELEASE_WORK
from ..sampler import sample_codes
from ..sampler_plan import SamplerConfig, plan_steps, revises_at


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
    for _ in range(3):
        a @ b
    best, deadline = float("inf"), time.perf_counter() + seconds
    while best == float("inf") or time.perf_counter() < deadline:  # at least one timing
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def timed_sampling(sample, model: BiGR, labels: torch.Tensor, sampler: SamplerConfig, *, seed: int):
    """Seconds of one call of a sampling path (`sample_codes`, or the release's
    `release_sample_codes`) on `labels`, its generator seeded by `seed`, device synchronised.
    An untimed two-image call of the same path with few steps (enough for a pass on kept keys
    and values) comes first, so that compiling a `--compile` backbone (dynamic shapes: once)
    is never timed."""
    device = labels.device
    steps = max(2, sampler.kv_refresh + 1)
    warm = dataclasses.replace(sampler, steps=steps, head_steps=min(sampler.head_steps, 2))
    with torch.no_grad():
        sample(model, labels[:2], warm, generator=torch.Generator(device).manual_seed(seed))
    generator = torch.Generator(device).manual_seed(seed)
    sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        sample(model, labels, sampler, generator=generator)
    sync(device)
    return time.perf_counter() - start


def sync(device: str | torch.device) -> None:
    """Wait for queued GPU work, so a timer reads the work done (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def transformer_flops(config: BiGRConfig, rows: int, queries: int | None = None) -> float:
    """One backbone forward on `rows` sequences; with `queries`, a pass that recomputes only
    that many tokens per sequence against kept keys and values (`forward_reuse`)."""
    d, l = config.dim, config.num_tokens + config.class_tokens
    a = l if queries is None else queries
    kv = config.num_kv_heads * config.head_dim
    per_layer = 2 * a * (d * (d + 2 * kv) + d * d + 3 * d * config.ffn_hidden) + 4 * a * l * d
    embed = 2 * config.num_tokens * config.code_bits * d + (
        2 * d * 6 * d if config.use_adaln else 0
    )
    return rows * (config.depth * per_layer + embed)


def head_flops(config: BiGRConfig, tokens: int, copies: int, head_steps: int) -> float:
    """The Bernoulli head on `tokens` rows (x `copies` for guidance), over `head_steps` steps."""
    w, k, d = config.head.dim, config.code_bits, config.dim
    per_row_step = 2 * (config.head.depth * (3 * w * w + 2 * w * w) + w * (w + k) + w * k)
    per_step = copies * tokens * per_row_step + 2 * tokens * k * w + 2 * (256 * w + w * w)
    return copies * tokens * 2 * d * w + head_steps * per_step


def release_flops(config: BiGRConfig, sampler: SamplerConfig, batch: int) -> dict[str, float]:
    """Analytic FLOPs of the release's algorithm (`bigr.official.release_sampler`): both
    halves on every token at every step, and every denoiser call embedding condition and time
    per token."""
    n, w, k, d = config.num_tokens, config.head.dim, config.code_bits, config.dim
    body = 2 * (config.head.depth * (3 * w * w + 2 * w * w) + w * (w + k) + w * k)
    per_row_call = body + 2 * d * w + 2 * (256 * w + w * w)  # + c_embedder + t_embedder
    steps = len(plan_steps([n] * batch, n, sampler))
    transformer = steps * transformer_flops(config, 2 * batch)
    head = steps * sampler.head_steps * 2 * batch * n * per_row_call
    return {"transformer": transformer, "head": head, "total": transformer + head}


def sampling_flops(
    config: BiGRConfig, sampler: SamplerConfig, batch: int, *, head_all: bool = False
) -> dict[str, float]:
    """Analytic FLOPs of one `sample_codes` call generating `batch` images from scratch (with
    the head on every token if `head_all`: `bigr.official.strategies.RELEASE_WORK`), following
    the loop's options: the unconditional branch's reuse, kept keys and values (a partial pass
    recomputes the tokens unknown at the last refresh), revision (its tokens join the step's
    unknown ones) and fewer head steps for the more certain half (the tokens above the median:
    half of them, rounded down)."""
    n = config.num_tokens
    plan = plan_steps([n] * batch, n, sampler)
    transformer = head = 0.0
    guided = 0  # guided steps so far: the unconditional branch runs on every uncond_every-th
    kv_branches, kv_age, kv_tokens = "", 0, n  # the kept keys/values: branches, age, unknown
    for i, step in enumerate(plan):
        copies = 1 if step.guidance in (0.0, 1.0) else 2
        unknown = max(step.unknown_before)
        if revises_at(sampler, i):
            unknown = min(unknown + sampler.revise, n)
        tokens = n if head_all else unknown
        backbone, branches = (
            copies,
            {0.0: "unconditional", 1.0: "conditional"}.get(step.guidance, "both"),
        )
        if copies == 2:
            if guided % sampler.uncond_every:
                backbone, branches = 1, "conditional"
            guided += 1
        queries = None
        if sampler.kv_refresh > 1:
            if kv_branches == branches and kv_age < sampler.kv_refresh:
                kv_age, queries = kv_age + 1, max(kv_tokens, unknown)
            else:
                kv_branches, kv_age, kv_tokens = branches, 1, unknown
        transformer += transformer_flops(config, backbone * batch, queries)
        if sampler.head_steps_certain and i > 0 and not head_all:
            sure = tokens // 2
            head += head_flops(config, batch * sure, copies, sampler.head_steps_certain)
            head += head_flops(config, batch * (tokens - sure), copies, step.head_steps)
        else:
            head += head_flops(config, batch * tokens, copies, step.head_steps)
    return {"transformer": transformer, "head": head, "total": transformer + head}


def _path(name: str) -> tuple[Callable, Callable]:
    """The sampling function of a path and its FLOP count: the release's algorithm, bigr's loop
    doing the release's head work, or bigr's default loop."""
    if name == "release":
        return release_sample_codes, release_flops
    if name == "head_all":
        return (
            functools.partial(sample_codes, strategy=RELEASE_WORK),
            functools.partial(sampling_flops, head_all=True),
        )
    return sample_codes, sampling_flops


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
    paths: tuple[str, ...] = ("default", "head_all"),
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    repeats: int = 1,
    compile: bool = False,
    compile_mode: str | None = None,
    recipes_from: str | None = "bigr:fashion",
) -> dict:
    """Seconds per image of each sampling path on a random-weight preset (best of `repeats`),
    its analytic GFLOP and the matmul rate of the same run. `compile` wraps the backbone in
    `torch.compile` for every path (the head's loops stay eager: bigr's fused one and the
    release's per-call one alike); compilation happens in `timed_sampling`'s untimed warm-up
    call, so it is not counted. A path `recipe-NAME` samples with bigr's default path at the
    named recipe of `recipes_from` (e.g. `recipe-fast`: the embedded model's fast recipe) on
    this preset's random weights: the recipe's speed, not its quality."""
    config = get_preset(preset)
    if not isinstance(config, BiGRConfig):
        raise ValueError(f"preset {preset!r} is not a BiGR generator")
    model = random_model(config, device=device).to(dtype)
    if compile:
        compile_backbone(model, mode=compile_mode)
    labels = torch.arange(batch, device=device) % config.num_classes
    base = SamplerConfig(steps=steps, head_steps=head_steps, guidance=guidance, gumbel=gumbel)
    variants = {"default": base, "head_all": base, "release": base}
    for name in paths:
        if name.startswith("recipe-"):
            from ..recipes import recipe

            variants[name] = recipe(name.removeprefix("recipe-"), recipes_from)
    unknown = sorted(set(paths) - set(variants))
    if unknown:
        raise ValueError(f"unknown sampling paths {unknown}; known: {', '.join(variants)}")
    matmul_before = matmul_gflops(device=device, dtype=dtype)
    results = {}
    for name in paths:
        sampler = variants[name]
        run, count = _path(name)
        flops = count(config, sampler, batch)
        times = []
        for r in range(repeats):  # each call warms up (compiles) untimed first
            with torch.autocast(
                torch.device(device).type, dtype=dtype, enabled=dtype != torch.float32
            ):
                times.append(timed_sampling(run, model, labels, sampler, seed=r))
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
            "compile": compile,
            "compile_mode": compile_mode or "default",
        },
        "machine": machine_info(device),
        "matmul_gflops": matmul,
        "paths": results,
    }
    for other in ("head_all", "release"):
        if "default" in results and other in results:
            out[f"speedup_vs_{other}"] = (
                results[other]["seconds_per_image"] / results["default"]["seconds_per_image"]
            )
    return out


def machine_info(device: str) -> dict:
    """The machine a result was measured on (device, torch, threads, processor, GPU)."""
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
