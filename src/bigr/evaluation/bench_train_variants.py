"""The training step timed as each codebase runs it (`bench_train_variants`): bigr's step or the
release's default script's (B-AE encoding of every batch, or one byte per bit read from disk;
the transcoder on every token), eager or under `torch.compile`, fp32 or bf16 autocast, with
bigr's counted FLOPs and the matmul rate of the same run (`bigr bench train --variants`).

Leaves to others: the head-on-masked-tokens benchmark and tokenization (`bench_train.py`), the
shared measuring helpers (`bench.py`).
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import TOKENIZER_FOR, BiGRConfig, get_preset
from .bench import machine_info, matmul_gflops, random_model, sync
from .bench_train import training_batch

TRAIN_PATHS = ("bigr", "release", "release_prepared")
TRAIN_MODES = ("eager", "compile")
TRAIN_PRECISIONS = ("fp32", "bf16")
TRAIN_VARIANTS = tuple(
    f"{mode}-{precision}" for mode in TRAIN_MODES for precision in TRAIN_PRECISIONS
) + tuple(
    f"{path}-{mode}-{precision}"
    for path in TRAIN_PATHS[1:]
    for mode in TRAIN_MODES
    for precision in TRAIN_PRECISIONS
)


@dataclasses.dataclass(frozen=True)
class TrainVariant:
    """One timed training step: whose step (`path`), `mode` and `precision`.

    - `bigr`: codes bit-packed on disk (as `bigr tokenize` writes them), unpacked per batch; the
      transcoder's loss on the masked tokens only.
    - `release`: the release's default script: every batch of (decoded) images is encoded by the
      frozen B-AE in fp32 under no_grad into stochastic bits, and the transcoder's loss runs on
      every token (masked ones weighted 1, the rest 0; same loss and gradient).
    - `release_prepared`: the release's `--use_prepared_data`: one byte per bit on disk laid
      out (N, K, h, w), read per batch; the transcoder on every token.
    """

    path: str
    mode: str
    precision: str

    @classmethod
    def parse(cls, name: str) -> TrainVariant:
        parts = name.split("-")
        if len(parts) == 2:
            parts = ["bigr", *parts]
        if (
            len(parts) != 3
            or parts[0] not in TRAIN_PATHS
            or parts[1] not in TRAIN_MODES
            or parts[2] not in TRAIN_PRECISIONS
        ):
            raise ValueError(f"unknown variants [{name!r}]; known: {', '.join(TRAIN_VARIANTS)}")
        return cls(*parts)

    @property
    def head_tokens(self) -> str:
        return "unknown" if self.path == "bigr" else "all"


def bench_train_variants(
    preset: str = "bench",
    *,
    batch: int = 8,
    iters: int = 3,
    warmup: int = 2,
    variants: tuple[str, ...] = TRAIN_VARIANTS[:4],
    device: str = "cpu",
    overrides: dict | None = None,
) -> dict:
    """Seconds per optimizer step of training variants (`TrainVariant`: bigr's step or the
    release's, eager or under `torch.compile`, fp32 or bf16 autocast), each including getting
    its batch of codes the way that path gets it, interleaved step by step; the FLOPs of bigr's
    step counted by torch's FLOP counter (matrix products, forward + backward) give each
    variant's achieved GFLOP/s (for the release's paths: bigr's useful FLOPs per second, so the
    rate reads as useful work), beside the fp32 matmul rate measured in the same run.

    Every variant starts from the same weights and the same mask; `bigr` and
    `release_prepared` read the same codes in the same order, so their losses after the same
    number of steps agree (printed, to show the fast paths compute the same thing); the
    `release` path's codes come from a random B-AE, so its loss differs.
    """
    parsed = {name: TrainVariant.parse(name) for name in variants}
    config = get_preset(preset)
    if not isinstance(config, BiGRConfig):
        raise ValueError(f"preset {preset!r} is not a BiGR generator")
    config = dataclasses.replace(config, **(overrides or {}))
    b, l = batch, config.num_tokens
    codes, labels, mask, t, noise = training_batch(config, b, max(config.num_classes, 1), device)
    inputs = dict(mask=mask, t=t, noise=noise, drop_labels=False)
    with tempfile.TemporaryDirectory() as tmp:
        data = _BenchData(config, preset, b, Path(tmp), {v.path for v in parsed.values()}, device)
        steps = {
            name: _variant_step(config, v, data, labels, inputs, device)
            for name, v in parsed.items()
        }
        flops = _step_flops(config, codes, labels, inputs, device)
        rate_before = matmul_gflops(device=device)
        times, first, losses = _time_interleaved(steps, warmup, iters, device)
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
        "machine": machine_info(device),
        "step_gflop": flops / 1e9,
        "matmul_gflops": rate,
        "variants": result,
    }


class _BenchData:
    """Batches of codes as each path gets them: `bigr` unpacks bit-packed codes from a file,
    `release_prepared` reads one byte per bit from a file, `release` encodes decoded images
    with a frozen random B-AE (the preset's tokenizer with the generator's code width). Batch i
    is rows [i*b, (i+1)*b) modulo the `BATCHES` batches held, the same rows for every path."""

    BATCHES = 4

    def __init__(
        self,
        config: BiGRConfig,
        preset: str,
        batch: int,
        tmp: Path,
        paths: set[str],
        device: str | torch.device,
    ) -> None:
        from ..data.shards import pack_codes

        self.batch, self.bits, self.device = batch, config.code_bits, device
        n = batch * self.BATCHES
        g = torch.Generator().manual_seed(2)
        bits = (torch.rand(n, config.num_tokens, config.code_bits, generator=g) < 0.5).numpy()
        self.packed = self.bytes = self.images = None
        self.tokenizer = None
        if "bigr" in paths:
            np.save(tmp / "packed.npy", pack_codes(bits))
            self.packed = np.load(tmp / "packed.npy", mmap_mode="r")
        if "release_prepared" in paths:
            h = config.grid_size
            grid = bits.reshape(n, h, h, self.bits).transpose(0, 3, 1, 2)
            path = tmp / "train_ids.bin"
            grid.astype(np.uint8).tofile(path)
            self.bytes = np.memmap(path, dtype=np.uint8, mode="r", shape=grid.shape)
        if "release" in paths:
            self.tokenizer = _release_tokenizer(config, preset).to(device).eval()
            size = self.tokenizer.config.image_size
            channels = self.tokenizer.config.in_channels
            self.images = torch.rand(n, channels, size, size, generator=g)

    def codes(self, path: str, index: int) -> Tensor:
        from ..data.shards import unpack_codes

        start = (index % self.BATCHES) * self.batch
        rows = slice(start, start + self.batch)
        if path == "bigr":
            return unpack_codes(np.array(self.packed[rows]), self.bits).to(self.device)
        if path == "release_prepared":
            grid = torch.from_numpy(np.array(self.bytes[rows])).float()  # (B, K, h, w)
            return grid.flatten(2).transpose(1, 2).contiguous().to(self.device)
        with torch.no_grad(), torch.autocast(torch.device(self.device).type, enabled=False):
            return self.tokenizer.encode(self.images[rows].to(self.device)).codes.detach()


def _release_tokenizer(config: BiGRConfig, preset: str) -> torch.nn.Module:
    """A random B-AE of the preset's paired tokenizer with the generator's code width."""
    from ..tokenizer import BinaryAutoencoder

    name = TOKENIZER_FOR.get(preset)
    if name is None:
        raise ValueError(
            f"preset {preset!r} has no paired tokenizer, so the release's step (a B-AE "
            "encoding every batch) cannot be timed; use the release_prepared path"
        )
    tok = dataclasses.replace(get_preset(name), code_bits=config.code_bits)
    if tok.grid_size != config.grid_size:
        raise ValueError(
            f"tokenizer {name!r} makes a {tok.grid_size}x{tok.grid_size} grid but the "
            f"generator expects {config.grid_size}x{config.grid_size}"
        )
    torch.manual_seed(0)
    return BinaryAutoencoder(tok)


def _variant_step(
    config: BiGRConfig,
    variant: TrainVariant,
    data: _BenchData,
    labels: Tensor,
    inputs: dict,
    device: str | torch.device,
) -> Callable[[], float]:
    """One optimizer step of a fresh random model run as `variant`, its batch fetched the way
    its path fetches it; returns the loss."""
    model = random_model(config, device=device).train()
    loss_fn = torch.compile(model.training_loss) if variant.mode == "compile" else None
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast_on = variant.precision == "bf16"
    count = itertools.count()

    def step() -> float:
        codes = data.codes(variant.path, next(count))
        with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=autocast_on):
            out = (loss_fn or model.training_loss)(
                codes, labels, head_tokens=variant.head_tokens, **inputs
            )
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(out["loss"].detach())

    return step


def _step_flops(
    config: BiGRConfig, codes: Tensor, labels: Tensor, inputs: dict, device: str | torch.device
) -> float:
    """FLOPs of one training step (forward + backward) by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter_model = random_model(config, device=device).train()
    with FlopCounterMode(display=False) as counter:
        counter_model.training_loss(codes, labels, **inputs)["loss"].backward()
    return float(counter.get_total_flops())


def _time_interleaved(
    steps: dict[str, Callable[[], float]], warmup: int, iters: int, device: str | torch.device
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float]]:
    """Timed steps after `warmup`, the first step's seconds (compilation included) and the
    last loss, per variant."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    first: dict[str, float] = {}
    losses: dict[str, float] = {}
    for i in range(warmup + iters):
        for name, step in steps.items():  # interleaved: drift of a shared machine hits all alike
            sync(device)
            start = time.perf_counter()
            losses[name] = step()
            sync(device)
            elapsed = time.perf_counter() - start
            if i == 0:
                first[name] = elapsed  # includes compilation
            if i >= warmup:
                times[name].append(elapsed)
    return times, first, losses
