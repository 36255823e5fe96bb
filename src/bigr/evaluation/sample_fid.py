"""Sampling many images for FID: sharded, resumable, split across processes, classes balanced.

Image i gets class i mod C, so any prefix of the set is as balanced as it can be. The set is cut
into shards of `shard_size` images; shard s is sampled with generators seeded by (seed, s, batch)
and written atomically as `shard-SSSSS.npz` (uint8 images `arr_0` (n, H, W, 3) and `labels`), so
the result does not depend on how many processes share the work; rank r of w takes the shards
with s mod w == r, and a rerun skips finished shards. When every shard exists the set is merged
into `samples.npz` in the ADM reference-batch layout. Evaluation is a separate step (`bigr fid`).

Recipes (the sampling settings by name) live in `bigr.recipes`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from ..checkpoint import weights_fingerprint
from ..data.images import save_image
from ..model import BiGR
from ..outputs import atomic_write, atomic_write_text
from ..recipes import RELEASE
from ..sampler import SamplerConfig, sample_codes
from ..sampler_plan import sampler_record
from ..tokenizer import BinaryAutoencoder


def shard_path(out: Path, shard: int) -> Path:
    return out / f"shard-{shard:05d}.npz"


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _check_meta(out: Path, meta: dict) -> None:
    file = out / "meta.json"
    if file.is_file():
        old = json.loads(file.read_text())
        if "weights" not in old:  # a set begun before fingerprints were recorded
            meta = {k: v for k, v in meta.items() if k != "weights"}
        diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
        if diff == ["weights"]:
            raise ValueError(
                f"{out} holds samples drawn from other weights (the model or the tokenizer "
                "changed since they were drawn); use a new folder, or delete this one to "
                "sample again"
            )
        if diff:
            raise ValueError(
                f"{out} holds samples made with other settings ({', '.join(diff)}); "
                "use a new folder"
            )
    else:
        atomic_write_text(file, json.dumps(meta, indent=2) + "\n")


@torch.no_grad()
def sample_fid(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    out_dir: str | Path,
    *,
    num_images: int,
    sampler: SamplerConfig = RELEASE,
    batch_size: int = 32,
    shard_size: int = 1000,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    write_png: bool = False,
    model_info: dict | None = None,
    progress: bool = True,
) -> dict:
    """Sample this rank's missing shards; merge when the set is complete."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    num_classes = model.config.num_classes
    meta = {
        "num_images": num_images,
        "shard_size": shard_size,
        "seed": seed,
        "num_classes": num_classes,
        "sampler": sampler_record(sampler),
        "model": model_info or {},
        "weights": {
            "model": weights_fingerprint(model),
            "tokenizer": weights_fingerprint(tokenizer),
        },
        "format_version": 1,
    }
    _check_meta(out, meta)
    shards = range(-(-num_images // shard_size))
    mine = [s for s in shards if s % world_size == rank and not shard_path(out, s).is_file()]
    device = model.transformer.mask_token.device
    bar = None
    if progress:
        from tqdm import tqdm

        total = sum(min(shard_size, num_images - s * shard_size) for s in mine)
        bar = tqdm(total=total, desc=f"sample-fid rank {rank}", unit="img")
    for shard in mine:
        first, last = shard * shard_size, min((shard + 1) * shard_size, num_images)
        images, labels = [], []
        for b, start in enumerate(range(first, last, batch_size)):
            idx = torch.arange(start, min(start + batch_size, last))
            cls = (idx % num_classes).to(device)
            gen = distributed.generator(device, seed, "sample-fid", shard, b)
            codes = sample_codes(model, cls, sampler, generator=gen)
            pixels = tokenizer.decode(codes).clamp(0, 1)
            images.append(
                pixels.mul(255).add_(0.5).clamp_(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
            )
            labels.append(cls.cpu().numpy())
            if write_png:
                for i, image in zip(idx.tolist(), pixels, strict=True):
                    save_image(image, out / "png" / f"{i:06d}.png")
            if bar is not None:
                bar.update(len(idx))
        _write_npz(
            shard_path(out, shard), arr_0=np.concatenate(images), labels=np.concatenate(labels)
        )
    if bar is not None:
        bar.close()
    merged = merge(out)
    return {
        "out_dir": str(out),
        "shards_written": len(mine),
        "complete": merged is not None,
        "samples": str(merged) if merged else None,
    }


def read_shard(path: Path) -> dict[str, np.ndarray]:
    """A finished shard's images and labels; a damaged file is named, with what to do."""
    try:
        with np.load(path) as data:
            return {"arr_0": data["arr_0"], "labels": data["labels"]}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{path}: damaged or truncated sample shard ({type(err).__name__}); delete it and "
            "rerun the same sample-fid command: only that shard is sampled again"
        ) from None


def merge(out_dir: str | Path) -> Path | None:
    """Write `samples.npz` once every shard exists; None while some are missing."""
    out = Path(out_dir)
    meta = json.loads((out / "meta.json").read_text())
    shards = range(-(-meta["num_images"] // meta["shard_size"]))
    if not all(shard_path(out, s).is_file() for s in shards):
        return None
    target = out / "samples.npz"
    if not target.is_file():
        parts = [read_shard(shard_path(out, s)) for s in shards]
        _write_npz(
            target,
            arr_0=np.concatenate([p["arr_0"] for p in parts]),
            labels=np.concatenate([p["labels"] for p in parts]),
        )
    return target
