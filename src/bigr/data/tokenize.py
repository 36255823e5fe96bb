"""Tokenizing a dataset into code shards (`bigr tokenize`): the resumable multi-rank driver.

Owns: which shards a rank writes, the per-shard seeds, encoding each image into its variants
(samples and flips) and the `bigr tokenize` entry point. Stochastic samples come from a
generator seeded by (seed, shard), so the codes do not depend on the number of ranks (they
do depend on batch_size and device, which fix the order of the random draws).

Leaves to others: the on-disk format, its writer and reader (`shards.py`), images and
datasets (`datasets.py`), the tokenizer itself.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..config import config_to_json
from .captions import CAPTION_SOURCES
from .datasets import hflip, iterate_batches
from .shards import (
    ShardMeta,
    bytes_per_image,
    clear_temporaries,
    is_complete,
    missing_shards,
    pack_codes,
    prepare_directory,
    write_shard,
)


def shard_seed(seed: int, shard: int) -> int:
    """A generator seed for one shard that no other (seed, shard) pair shares by accident."""
    digest = hashlib.sha256(f"bigr-shards:{seed}:{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@torch.no_grad()
def encode_variants(
    tokenizer: torch.nn.Module,
    images: Tensor,
    samples: int,
    include_flips: bool,
    stochastic: bool,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Images (B, 3, H, W) -> bits (B, V, L, K), variants ordered as in the module docstring.

    The encoder runs once per orientation; each stochastic sample draws every bit from
    Bernoulli(p) as `encode(stochastic=True)` does; deterministic codes are p > 0.5.
    """
    variants = []
    for image_batch in (images, hflip(images)) if include_flips else (images,):
        encoded = tokenizer.encode(image_batch, stochastic=False)
        for _ in range(samples):
            if not stochastic:
                variants.append(encoded.codes)
                continue
            u = torch.rand(encoded.probs.shape, device=images.device, generator=generator)
            variants.append((u < encoded.probs).to(encoded.probs.dtype))
    return torch.stack(variants, dim=1)


def tokenize_dataset(
    tokenizer: torch.nn.Module,
    dataset: Any,
    out_dir: str | Path,
    *,
    batch_size: int = 64,
    samples_per_image: int = 1,
    stochastic: bool = True,
    include_flips: bool = False,
    shard_size: int = 10_000,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    device: str | torch.device | None = None,
    tokenizer_info: dict[str, Any] | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Encode `dataset` (items (image (3, S, S) in [0, 1], label)) into shards under `out_dir`.

    This rank writes the missing shards s with s % world_size == rank. `device` defaults to the
    tokenizer's. `tokenizer_info` (e.g. the checkpoint path) is stored in meta.json beside the
    tokenizer config. Returns counts, timing and the bytes per image here and in the release.
    """
    if not stochastic and samples_per_image != 1:
        raise ValueError("deterministic codes repeat: samples_per_image must be 1")
    if getattr(dataset, "flip", False):
        raise ValueError("pass a dataset without random flips; include_flips stores both")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    config = tokenizer.config
    device = torch.device(device) if device is not None else next(tokenizer.parameters()).device
    meta = ShardMeta(
        code_bits=config.code_bits,
        grid_size=config.grid_size,
        count=len(dataset),
        shard_size=shard_size,
        samples_per_image=samples_per_image,
        include_flips=include_flips,
        stochastic=stochastic,
        seed=seed,
        classes=list(getattr(dataset, "classes", [])),
        source=str(getattr(dataset, "source", type(dataset).__name__)),
        tokenizer={"config": config_to_json(config), **(tokenizer_info or {})},
    )
    out_dir = Path(out_dir)
    prepare_directory(out_dir, meta)
    mine = range(rank, meta.num_shards, world_size)
    todo = [s for s in mine if not is_complete(out_dir, s)]
    start = time.perf_counter()
    with tqdm(
        total=sum(len(meta.shard_range(s)) for s in todo),
        unit="img",
        desc=f"tokenize rank {rank}",
        disable=not progress,
    ) as bar:
        for shard in todo:
            clear_temporaries(out_dir, shard)
            codes, labels = _encode_shard(
                tokenizer, dataset, meta, shard, batch_size, device, num_workers, bar
            )
            write_shard(out_dir, shard, codes, labels)
    seconds = time.perf_counter() - start
    encoded = sum(len(meta.shard_range(s)) for s in todo)
    sizes = bytes_per_image(meta.code_bits, meta.num_tokens, meta.num_variants)
    return {
        "out_dir": str(out_dir),
        "images": meta.count,
        "shards": meta.num_shards,
        "shards_written": len(todo),
        "shards_already_done": len(mine) - len(todo),
        "images_encoded": encoded,
        "seconds": seconds,
        "images_per_second": encoded / seconds if encoded and seconds > 0 else 0.0,
        "complete": not missing_shards(out_dir),
        "skipped_files": [str(p) for p in getattr(dataset, "skipped", [])],
        "bytes_per_image": sizes["ours"],
        "release_bytes_per_image": sizes["release"],
    }


def _encode_shard(
    tokenizer: torch.nn.Module,
    dataset: Any,
    meta: ShardMeta,
    shard: int,
    batch_size: int,
    device: torch.device,
    num_workers: int,
    bar: tqdm,
) -> tuple[np.ndarray, np.ndarray]:
    generator = torch.Generator(device=device).manual_seed(shard_seed(meta.seed, shard))
    codes, labels = [], []
    batches = iterate_batches(
        dataset, batch_size, indices=meta.shard_range(shard), num_workers=num_workers
    )
    for images, batch_labels in batches:
        bits = encode_variants(
            tokenizer,
            images.to(device),
            meta.samples_per_image,
            meta.include_flips,
            meta.stochastic,
            generator,
        )
        codes.append(pack_codes(bits))  # (B, V, L, bytes)
        labels.append(batch_labels.numpy())
        bar.update(len(images))
    return np.concatenate(codes), np.concatenate(labels)


def tokenize_command(
    tokenizer: str | Path,
    data: str,
    out: str | Path,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    device: str | None = None,
    captions: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """`bigr tokenize`: load the tokenizer directory, open `data` (see `datasets.open_dataset`) at
    the tokenizer's image size and write shards. Rank and world size default to torchrun's
    RANK and WORLD_SIZE; `options` go to `tokenize_dataset`. `captions="fashion"` stores
    generated caption ids instead of class labels, and the caption table (see captions.py)."""
    from ..model import load_tokenizer
    from .datasets import open_dataset

    rank = int(os.environ.get("RANK", 0)) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
    if device is None:
        local = int(os.environ.get("LOCAL_RANK", 0))
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    model = load_tokenizer(tokenizer, device=device)
    dataset = open_dataset(data, model.config.image_size)
    info = {"path": str(Path(tokenizer).resolve()) if Path(tokenizer).is_dir() else str(tokenizer)}
    if captions not in (None, *CAPTION_SOURCES):
        known = ", ".join(CAPTION_SOURCES)
        raise ValueError(f"unknown caption source {captions!r}; known: {known}")
    if captions == "fashion":
        from .captions import CaptionedFashion, write_caption_table

        dataset = CaptionedFashion(dataset, seed=options.get("seed", 0))
        if rank == 0:
            Path(out).mkdir(parents=True, exist_ok=True)
            write_caption_table(out, dataset.entries)
    return tokenize_dataset(
        model, dataset, out, rank=rank, world_size=world_size, tokenizer_info=info, **options
    )
