"""Image sets an evaluation reads or draws: the real images of a dataset split, class-balanced
generated sets (seeded per batch, resumable from kept codes), the deterministic codes of
images, and an FID entry of a set against a reference."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .. import distributed
from ..data import open_dataset
from ..data.shards import pack_codes, unpack_codes
from ..model import BiGR
from ..sampler import SamplerConfig, sample_codes
from ..tokenizer import BinaryAutoencoder
from .reference import ImageStatistics, compare_statistics


def real_images(spec: str, count: int, size: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
    """(count, 3, S, S) images and labels: the first `count`, or a seeded random subset."""
    data = open_dataset(spec, size)
    if count > len(data):
        raise ValueError(f"{spec} has {len(data)} images; {count} were asked for")
    if seed is None:
        index = torch.arange(count)
    else:
        index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
    pairs = [data[int(i)] for i in index]
    return torch.stack([p[0] for p in pairs]), torch.tensor([int(p[1]) for p in pairs])


@torch.no_grad()
def generate(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    sampler: SamplerConfig,
    count: int,
    *,
    batch_size: int,
    seed: int,
    codes_dir: Path | None = None,
) -> tuple[Tensor, float]:
    """`count` class-balanced images (label i % classes) and the seconds spent sampling codes
    (decoding excluded). Batch b is drawn from a generator seeded by (seed, b). With
    `codes_dir`, each batch's codes (bit-packed) and seconds are kept there and a batch already
    there is read back, so an interrupted set resumes where it stopped."""
    device = model.transformer.mask_token.device
    images, seconds = [], 0.0
    for b, start in enumerate(range(0, count, batch_size)):
        labels = torch.arange(start, min(start + batch_size, count), device=device)
        labels = labels % model.config.num_classes
        kept = _kept_batch(codes_dir, b, len(labels), model.config.code_bits)
        if kept is None:
            gen = distributed.generator(device, seed, "report", b)
            t0 = time.perf_counter()
            codes = sample_codes(model, labels, sampler, generator=gen)
            spent = time.perf_counter() - t0
            if codes_dir is not None:
                _keep_batch(codes_dir, b, codes, spent)
        else:
            codes, spent = kept[0].to(device), kept[1]
        seconds += spent
        images.append(tokenizer.decode(codes).clamp(0, 1).cpu())
    return torch.cat(images), seconds


def _kept_batch(codes_dir: Path | None, b: int, count: int, bits: int):
    """(codes, seconds) of batch b if `codes_dir` holds it for `count` images, else None."""
    if codes_dir is None:
        return None
    codes_file, meta_file = codes_dir / f"b{b:06d}.npy", codes_dir / f"b{b:06d}.json"
    if not (codes_file.is_file() and meta_file.is_file()):
        return None
    packed = np.load(codes_file, allow_pickle=False)
    if packed.shape[0] != count:
        return None
    return unpack_codes(packed, bits).float(), float(json.loads(meta_file.read_text())["seconds"])


def _keep_batch(codes_dir: Path, b: int, codes: Tensor, seconds: float) -> None:
    """Store batch b's codes (bit-packed, written atomically) and then its seconds."""
    codes_dir.mkdir(parents=True, exist_ok=True)
    tmp = codes_dir / f".b{b:06d}.{os.getpid()}.npy"
    np.save(tmp, pack_codes(codes.cpu()), allow_pickle=False)
    os.replace(tmp, codes_dir / f"b{b:06d}.npy")
    (codes_dir / f"b{b:06d}.json").write_text(json.dumps({"seconds": seconds}))


def fid_entry(stats: ImageStatistics, reference: ImageStatistics, **extra) -> dict:
    """FID, sFID (and precision/recall when both kept features) of `stats` against
    `reference`, with the set's size as `n` and `extra` fields."""
    scores = compare_statistics(stats, reference)
    return {**{k: float(v) for k, v in scores.items()}, "n": stats.num_images, **extra}


@torch.no_grad()
def encode_images(tokenizer: BinaryAutoencoder, images: Tensor, batch: int) -> Tensor:
    """(N, T, K) deterministic codes (p > 0.5) of `images` (N, 3, S, S), `batch` at a time, on
    the CPU."""
    device = next(tokenizer.parameters()).device
    return torch.cat(
        [
            tokenizer.encode(chunk.to(device), stochastic=False).codes.cpu()
            for chunk in images.split(batch)
        ]
    )
