"""Pre-tokenized, bit-packed code shards: written once by the tokenizer, memory-mapped by training.

Owns the on-disk format, its writers (`write_shard`, `write_codes`) and the reader
`CodeShards`. The release stores prepared codes at one byte per bit (`train_ids.bin`, uint8,
(N, K, h, w), plus uint16 labels, bigr-spec.md §3); here the K bits of a token take
ceil(K/8) bytes. Leaves to others: the resumable multi-rank driver `tokenize_dataset`
(`tokenize.py`), images and datasets (`datasets.py`), the tokenizer itself.

Format (directory, version 1):
  meta.json                       `ShardMeta`, written before any shard, checked on resume
  shard-00000.codes.npy           uint8 (n, V, L, ceil(K/8)): the packed bits of image i's
                                  variant v, token l in raster order
  shard-00000.labels.npy          int32 (n,): class id, -1 for unlabelled images
Shard s holds images [s·shard_size, (s+1)·shard_size) of the dataset. Bits are packed with
`numpy.packbits(..., bitorder="big")`: bit k of a token is bit 7 - k % 8 (MSB first) of byte
k // 8; when K is not a multiple of 8 the last byte is padded with zeros. Variant v (V =
samples_per_image · (2 if include_flips else 1)) is sample v % samples_per_image of the image,
mirrored when v >= samples_per_image.

Writing: rank r of w writes the shards s with s % w == r. A shard is written to temporary
names and renamed into place (labels first, codes last), so a shard exists only when complete;
a rerun skips complete shards and clears stale temporary files. Stochastic samples come from
a generator seeded by (seed, shard), so the codes do not depend on the number of ranks.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import Tensor

from ..outputs import atomic_write

FORMAT = "bigr-code-shards"
FORMAT_VERSION = 1
BITORDER = "big"
META_FILE = "meta.json"


class ShardError(ValueError):
    """Shards that cannot be used: missing, incomplete, or from a different run."""


@dataclass(frozen=True, kw_only=True)
class ShardMeta:
    code_bits: int
    grid_size: int
    count: int
    shard_size: int
    samples_per_image: int = 1
    include_flips: bool = False
    stochastic: bool = True
    seed: int = 0
    classes: list[str] = field(default_factory=list)
    source: str = ""
    tokenizer: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    bitorder: str = BITORDER
    codes_dtype: str = "uint8"
    labels_dtype: str = "int32"

    @property
    def num_tokens(self) -> int:
        return self.grid_size**2

    @property
    def bytes_per_token(self) -> int:
        return -(-self.code_bits // 8)

    @property
    def num_variants(self) -> int:
        return self.samples_per_image * (2 if self.include_flips else 1)

    @property
    def num_shards(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.count))

    def to_json(self) -> dict[str, Any]:
        derived = {"num_tokens": self.num_tokens, "num_variants": self.num_variants}
        data = {**dataclasses.asdict(self), **derived, "num_shards": self.num_shards}
        return json.loads(json.dumps(data, default=str))  # plain JSON types, as read back

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardMeta:
        if data.get("format") != FORMAT:
            raise ShardError(f"not a {FORMAT} directory (format {data.get('format')!r})")
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ShardError(f"shard format {data['format_version']} is newer than this bigr")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def bytes_per_image(code_bits: int, num_tokens: int, num_variants: int = 1) -> dict[str, int]:
    """Bytes one image takes here and in the release's one-byte-per-bit format (uint16 label)."""
    ours = num_variants * num_tokens * -(-code_bits // 8) + 4
    return {"ours": ours, "release": num_variants * (num_tokens * code_bits + 2)}


# -- packing -----------------------------------------------------------------------------------


def pack_codes(codes: Tensor | np.ndarray) -> np.ndarray:
    """Bits (..., K) in {0,1} -> uint8 (..., ceil(K/8)), MSB first, last byte zero-padded."""
    if isinstance(codes, Tensor):
        codes = codes.detach().cpu().numpy()
    return np.packbits(np.asarray(codes) > 0.5, axis=-1, bitorder=BITORDER)


def unpack_codes(packed: np.ndarray, code_bits: int) -> Tensor:
    """uint8 (..., ceil(K/8)) -> float32 tensor (..., K) in {0,1}."""
    bits = np.unpackbits(packed, axis=-1, count=code_bits, bitorder=BITORDER)
    return torch.from_numpy(bits).float()


# -- files -------------------------------------------------------------------------------------


def _shard_path(out_dir: Path, shard: int, kind: str) -> Path:
    return out_dir / f"shard-{shard:05d}.{kind}.npy"


def is_complete(out_dir: str | Path, shard: int) -> bool:
    """A shard is complete once both files exist (codes are renamed into place last)."""
    return all(_shard_path(Path(out_dir), shard, kind).is_file() for kind in ("labels", "codes"))


def _atomic_write(final: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write to a unique temporary sibling, fsync it, then rename it into place."""
    atomic_write(final, write)


def write_shard(out_dir: str | Path, shard: int, codes: np.ndarray, labels: np.ndarray) -> None:
    """Write packed codes (n, V, L, bytes) and labels (n,) of one shard, labels first."""
    for kind, array in (("labels", labels.astype(np.int32)), ("codes", codes.astype(np.uint8))):
        _atomic_write(_shard_path(Path(out_dir), shard, kind), lambda f, a=array: np.save(f, a))


def clear_temporaries(out_dir: Path, shard: int) -> None:
    """Delete the temporary files an interrupted write of `shard` left behind."""
    for kind in ("labels", "codes"):
        for stale in out_dir.glob(f".{_shard_path(out_dir, shard, kind).name}.*.tmp"):
            stale.unlink(missing_ok=True)


def prepare_directory(out_dir: str | Path, meta: ShardMeta) -> None:
    """Write meta.json, or check that the one already there describes the same run."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / META_FILE
    if not path.is_file():  # ranks racing here write identical text: any rename may win
        text = json.dumps(meta.to_json(), indent=2) + "\n"
        _atomic_write(path, lambda f: f.write(text.encode()))
    existing = json.loads(path.read_text())
    differ = sorted(k for k, v in meta.to_json().items() if existing.get(k) != v)
    if differ:
        raise ShardError(
            f"{out_dir} holds shards of another run (differs in: {', '.join(differ)}); "
            "use another output folder or delete it"
        )


def read_meta(path: str | Path) -> ShardMeta:
    path = Path(path)
    if not (path / META_FILE).is_file():
        raise ShardError(f"{path}: no {META_FILE}; not a code shard folder (see `bigr tokenize`)")
    return ShardMeta.from_json(json.loads((path / META_FILE).read_text()))


def missing_shards(path: str | Path) -> list[int]:
    meta = read_meta(path)
    return [s for s in range(meta.num_shards) if not is_complete(path, s)]


# -- reading -----------------------------------------------------------------------------------


class CodeShards:
    """Memory-mapped reader of a complete shard folder; `len` counts images.

    `read(indices, variants)` returns codes (B, L, K) float in {0,1} and labels (B,) int64;
    `variants` is one variant for all or one per index (see the module docstring).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.meta = read_meta(self.path)
        missing = missing_shards(self.path)
        if missing:
            raise ShardError(
                f"{self.path}: {len(missing)} of {self.meta.num_shards} shards missing "
                f"(first: {missing[0]}); rerun `bigr tokenize` with the same arguments"
            )
        self.codes = [self._open(s, "codes") for s in range(self.meta.num_shards)]
        self.labels = [self._open(s, "labels") for s in range(self.meta.num_shards)]

    def _open(self, shard: int, kind: str) -> np.ndarray:
        path = _shard_path(self.path, shard, kind)
        try:
            array = np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as err:  # truncated, or not a .npy at all
            raise ShardError(
                f"{path}: damaged or truncated shard ({err}); delete it and rerun `bigr tokenize` "
                "with the same arguments (finished shards are kept)"
            ) from None
        m = self.meta
        n = len(m.shard_range(shard))
        expected = (n, m.num_variants, m.num_tokens, m.bytes_per_token) if kind == "codes" else (n,)
        if array.shape != expected:
            raise ShardError(f"{self.path}: shard {shard} {kind} {array.shape}, want {expected}")
        return array

    def __len__(self) -> int:
        return self.meta.count

    @property
    def num_variants(self) -> int:
        return self.meta.num_variants

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        """All variants of one image: codes (V, L, K) and its label."""
        shard, offset = divmod(index, self.meta.shard_size)
        codes = unpack_codes(np.asarray(self.codes[shard][offset]), self.meta.code_bits)
        return codes, int(self.labels[shard][offset])

    def read(
        self, indices: Sequence[int] | Tensor, variants: int | Sequence[int] | Tensor = 0
    ) -> tuple[Tensor, Tensor]:
        """Codes (B, L, K) float in {0,1} and labels (B,) int64 of images `indices`."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        variant = np.broadcast_to(np.asarray(variants, dtype=np.int64), index.shape)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"image index out of range 0..{len(self) - 1}")
        packed = np.empty((index.size, self.meta.num_tokens, self.meta.bytes_per_token), np.uint8)
        labels = np.empty(index.size, np.int64)
        shard, offset = np.divmod(index, self.meta.shard_size)
        for s in np.unique(shard):
            rows = np.flatnonzero(shard == s)
            packed[rows] = self.codes[s][offset[rows], variant[rows]]
            labels[rows] = self.labels[s][offset[rows]]
        return unpack_codes(packed, self.meta.code_bits), torch.from_numpy(labels)

    def caption_embeddings(self) -> Tensor:
        """(C, T) embeddings of the caption ids stored as labels (`bigr tokenize --captions`)."""
        if not hasattr(self, "_captions"):
            from .captions import read_caption_table

            self.captions, self._captions = read_caption_table(self.path)
        return self._captions

    def random_variants(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        """One variant per image, uniform: a fresh code sample (and flip) per epoch."""
        return torch.randint(self.num_variants, (count,), generator=generator)

    def iter_batches(
        self, batch_size: int, start: int = 0, stop: int | None = None, variant: int = 0
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """(codes (B, L, K), labels (B,)) over images [start, stop) in order."""
        stop = len(self) if stop is None else min(stop, len(self))
        for first in range(start, stop, batch_size):
            yield self.read(range(first, min(first + batch_size, stop)), variant)


def write_codes(
    out_dir: str | Path, codes: Tensor | np.ndarray, labels: Tensor | np.ndarray, meta: ShardMeta
) -> None:
    """Write bits (N, V, L, K) and labels (N,) already in memory as a shard folder."""
    expected = (meta.count, meta.num_variants, meta.num_tokens, meta.code_bits)
    if tuple(codes.shape) != expected or len(labels) != meta.count:
        raise ShardError(f"codes {tuple(codes.shape)} and {len(labels)} labels, want {expected}")
    prepare_directory(out_dir, meta)
    packed = pack_codes(codes)
    labels = np.asarray(labels)
    for shard in range(meta.num_shards):
        rows = meta.shard_range(shard)
        write_shard(out_dir, shard, packed[rows.start : rows.stop], labels[rows.start : rows.stop])
