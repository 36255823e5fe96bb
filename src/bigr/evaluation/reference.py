"""Feature statistics of image sets: from folders, tensors, or ADM reference batches (.npz).

Owns `ImageStatistics` (Gaussian statistics of the FID pool features and the sFID spatial
features, plus the pool features themselves for precision/recall), computing them with an
`InceptionFeatures` extractor over any source of [0, 1] images, saving/loading them as `.npz`
with the ADM evaluator's key names (`mu`, `sigma`, `mu_s`, `sigma_s`), and `compare_statistics`,
which turns a sample set and a reference set into the metric dict. The formulas live in
`metrics.py`, the network in `inception.py`, image decoding in `bigr.data.images`.
"""

from __future__ import annotations

import dataclasses
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..data.images import ImageError, center_crop, open_image, to_rgb, to_tensor
from ..outputs import atomic_write
from .inception import InceptionFeatures
from .metrics import GaussianStats, fid, precision_recall, sfid

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class UnreadableImageWarning(UserWarning):
    """An image file in a folder could not be decoded and was skipped."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImageStatistics:
    pool: GaussianStats  # (2048,), (2048, 2048)
    spatial: GaussianStats | None = None  # (2023,), (2023, 2023)
    features: np.ndarray | None = None  # (N, 2048) pool features, needed for precision/recall
    num_images: int = 0  # 0 when unknown (statistics read from a file without features)


class _Moments:
    """Streaming mean and covariance in float64 (no N x D array is kept)."""

    def __init__(self) -> None:
        self.count, self.total, self.outer = 0, None, None

    def add(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        if self.total is None:
            self.total, self.outer = np.zeros(x.shape[1]), np.zeros((x.shape[1],) * 2)
        self.count += len(x)
        self.total += x.sum(axis=0)
        self.outer += x.T @ x

    def stats(self) -> GaussianStats:
        if self.count < 2:
            raise ValueError(f"need at least 2 images for a covariance, got {self.count}")
        mu = self.total / self.count
        sigma = (self.outer - self.count * np.outer(mu, mu)) / (self.count - 1)
        return GaussianStats(mu, sigma)


def compute_statistics(
    batches: Iterable[Tensor],
    extractor: InceptionFeatures,
    *,
    keep_features: bool = True,
    total: int | None = None,
    desc: str = "inception features",
) -> ImageStatistics:
    """Statistics of (B, 3, H, W) [0, 1] image batches; `total` (images) sizes the progress bar."""
    pool, spatial, kept = _Moments(), _Moments(), []
    with tqdm(total=total, desc=desc, unit="img") as bar:
        for images in batches:
            out = extractor(images)  # moves the batch to the extractor's device
            pool_np = out.pool.cpu().numpy()
            pool.add(pool_np)
            spatial.add(out.spatial.cpu().numpy())
            if keep_features:
                kept.append(pool_np.astype(np.float32))
            bar.update(len(images))
    features = np.concatenate(kept) if keep_features and kept else None
    return ImageStatistics(
        pool=pool.stats(), spatial=spatial.stats(), features=features, num_images=pool.count
    )


# ---- sources -------------------------------------------------------------------------------


def find_images(folder: str | Path) -> list[Path]:
    """Image files under `folder` (recursive; png/jpg/jpeg/webp, any case), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: no such folder")
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def _read_or_warn(path: Path, size: int | None = None) -> Tensor | None:
    try:
        if size is not None:  # the release's centre crop, as generated samples are made
            return to_tensor(center_crop(to_rgb(open_image(path)), size))
        return to_tensor(open_image(path))
    except ImageError as err:
        warnings.warn(f"skipping {err}", UnreadableImageWarning, stacklevel=3)
        return None


def folder_batches(
    paths: Iterable[Path], batch_size: int, size: int | None = None
) -> Iterator[Tensor]:
    """(B, 3, H, W) batches of readable images, centre-cropped to `size` when given (then
    every batch is full); without it a batch ends early where the image size changes."""
    batch: list[Tensor] = []
    for path in paths:
        image = _read_or_warn(path, size)
        if image is None:
            continue
        if batch and (len(batch) == batch_size or image.shape != batch[0].shape):
            yield torch.stack(batch)
            batch = []
        batch.append(image)
    if batch:
        yield torch.stack(batch)


def tensor_batches(images: Tensor | Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    """Re-batch a (N, 3, H, W) tensor, or pass through an iterable of (B, 3, H, W) batches."""
    if isinstance(images, Tensor):
        if images.ndim == 3:
            images = images[None]
        yield from images.split(batch_size)
    else:
        yield from images


def statistics_from_folder(
    folder: str | Path,
    extractor: InceptionFeatures,
    *,
    batch_size: int = 50,
    keep_features: bool = True,
    size: int | None = None,
    limit: int | None = None,
) -> ImageStatistics:
    """Statistics of the readable images under `folder` (the first `limit`), centre-cropped
    to `size` when given; unreadable files warn and are skipped."""
    paths = find_images(folder)[:limit]
    if not paths:
        raise ImageError(f"{folder}: no {'/'.join(IMAGE_SUFFIXES)} images found")
    return compute_statistics(
        folder_batches(paths, batch_size, size),
        extractor,
        keep_features=keep_features,
        total=len(paths),
        desc=str(folder),
    )


def statistics_from_images(
    images: Tensor | Iterable[Tensor],
    extractor: InceptionFeatures,
    *,
    batch_size: int = 50,
    keep_features: bool = True,
) -> ImageStatistics:
    """Statistics of [0, 1] images given as one (N, 3, H, W) tensor or an iterable of batches."""
    total = len(images) if isinstance(images, Tensor) else None
    batches = tensor_batches(images, batch_size)
    return compute_statistics(batches, extractor, keep_features=keep_features, total=total)


# ---- files ---------------------------------------------------------------------------------


def uint8_batches(array: np.ndarray | Iterable[np.ndarray], batch_size: int) -> Iterator[Tensor]:
    """(B, 3, H, W) [0, 1] float batches of NHWC uint8 images (an array, or array batches)."""
    chunks = (
        (array[s : s + batch_size] for s in range(0, len(array), batch_size))
        if isinstance(array, np.ndarray)
        else array
    )
    for chunk in chunks:
        chunk = torch.from_numpy(np.ascontiguousarray(chunk))
        yield chunk.permute(0, 3, 1, 2).float().div_(255)  # NHWC uint8 → (B, 3, H, W) [0, 1]


@dataclasses.dataclass(frozen=True)
class NpzImages:
    """The uint8 NHWC image array `key` of an `.npz`, read one batch at a time straight from
    the archive (stored or deflated), so memory is bounded by the batch, not the set."""

    path: Path
    key: str
    shape: tuple[int, ...]

    @classmethod
    def open(cls, path: str | Path, key: str = "arr_0") -> NpzImages:
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as f:
                shape, fortran, dtype = _npy_header(f)
        except KeyError:
            raise ValueError(f"{path}: no '{key}' image array") from None
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3 or fortran:
            raise ValueError(
                f"{path}: '{key}' must be uint8 images (N, H, W, 3) in C order, got {dtype} {shape}"
            )
        return cls(path, key, tuple(shape))

    def __len__(self) -> int:
        return self.shape[0]

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[np.ndarray]:
        count = len(self) if limit is None else min(limit, len(self))
        row = int(np.prod(self.shape[1:]))
        with zipfile.ZipFile(self.path) as archive, archive.open(f"{self.key}.npy") as f:
            _npy_header(f)
            for start in range(0, count, batch_size):
                n = min(batch_size, count - start)
                data = f.read(n * row)
                if len(data) != n * row:
                    raise ValueError(f"{self.path}: '{self.key}' ends early (truncated?)")
                # a writable buffer: torch warns about (and refuses to write) read-only ones
                yield np.frombuffer(bytearray(data), np.uint8).reshape(n, *self.shape[1:])


def _npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    read = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in read:
        raise ValueError(f"unsupported .npy version {version}")
    return read[version](f)


def load_statistics(
    path: str | Path, extractor: InceptionFeatures | None = None, *, batch_size: int = 50
) -> ImageStatistics:
    """Statistics from a `.npz`: one written by `save_statistics`, or an ADM reference batch.

    Stored `mu`/`sigma` (and `mu_s`/`sigma_s`) are used as they are, as the ADM evaluator does.
    When the file holds images (`arr_0`, uint8 NHWC) and an extractor is given, their features
    are computed for precision/recall, and for any statistics the file lacks.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("a single array, not an .npz archive")
            keys = set(data.files)
            stored = {k: data[k] for k in keys - {"arr_0"}}  # the images stay in the file
        images = NpzImages.open(path) if "arr_0" in keys and extractor is not None else None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not an .npz of FID statistics or images ({err})") from None
    computed = None
    if images is not None:
        batches = uint8_batches(images.batches(batch_size), batch_size)
        computed = compute_statistics(batches, extractor, total=len(images), desc=str(path))
    elif "mu" not in stored:
        hint = "pass an extractor to compute them from arr_0" if "arr_0" in keys else ""
        raise ValueError(f"{path}: no `mu`/`sigma` statistics stored; {hint}".rstrip("; "))
    pool = GaussianStats(stored["mu"], stored["sigma"]) if "mu" in stored else computed.pool
    spatial = computed.spatial if computed is not None else None
    if "mu_s" in stored:
        spatial = GaussianStats(stored["mu_s"], stored["sigma_s"])
    features = computed.features if computed is not None else stored.get("features")
    num_images = computed.num_images if computed is not None else int(stored.get("num_images", 0))
    return ImageStatistics(pool=pool, spatial=spatial, features=features, num_images=num_images)


def save_statistics(stats: ImageStatistics, path: str | Path) -> Path:
    """Write `stats` as `.npz` with ADM key names (+ `features`, `num_images` when known)."""
    arrays = {"mu": stats.pool.mu, "sigma": stats.pool.sigma, "num_images": stats.num_images}
    if stats.spatial is not None:
        arrays |= {"mu_s": stats.spatial.mu, "sigma_s": stats.spatial.sigma}
    if stats.features is not None:
        arrays["features"] = stats.features
    # a file object keeps numpy from appending `.npz`
    return atomic_write(path, lambda f: np.savez(f, **arrays))


# ---- comparison ----------------------------------------------------------------------------


def compare_statistics(
    sample: ImageStatistics, reference: ImageStatistics, *, k: int = 3
) -> dict[str, float]:
    """FID always; sFID when both have spatial statistics; precision/recall when both have
    features (k-NN manifolds with `k` neighbours)."""
    result = fid(sample.pool, reference.pool)
    if sample.spatial is not None and reference.spatial is not None:
        result |= sfid(sample.spatial, reference.spatial)
    if sample.features is not None and reference.features is not None:
        result |= precision_recall(reference.features, sample.features, k=k)
    return result
