"""Image datasets, horizontal flips and batching, with Pillow and plain torch (no torchvision).

Owns: `ImageFolderDataset` (ImageNet-style class folders or a flat folder of images),
`FashionMNIST` (the idx files of the Debian package `dataset-fashion-mnist`), the release's
`RandomHorizontalFlip` with an explicit generator plus its deterministic counterpart `hflip`,
`open_dataset` (the `--data` argument of the command line) and `iterate_batches`.
Leaves to others: decoding and the release's centre crop (`images.py`), code shards
(`shards.py`), anything about models.

Conventions: an item is `(image, label)` with image a float tensor (3, S, S) in [0, 1] and label
an int in 0..C-1, or `UNLABELLED` (-1) for a flat folder. Batches are (B, 3, S, S) float and
(B,) int64.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import struct
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, get_worker_info

from .images import ImageError, load_image

UNLABELLED = -1
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FASHION_MNIST_PREFIX = {"train": "train", "test": "t10k", "fit": "train", "val": "train"}
# A validation split carved from train, for choosing settings without touching the test split:
# `fit` is the first 55,000 training images, `val` the last 5,000 (a twelfth of a smaller root).
FASHION_MNIST_VAL_SIZE = 5000
# The `--data` name of the built-in dataset, and its held-out split: the default reference for
# choosing settings (the embedded models never train on it; never the test split).
BUILTIN_DATASET = "fashion-mnist"
HELD_OUT_SPEC = f"{BUILTIN_DATASET}:val"
_FASHION_MNIST_HINT = "install the Debian package dataset-fashion-mnist or pass --data PATH"


class DatasetError(ValueError):
    """A dataset that cannot be used: missing files, no images, an unknown spec."""


# -- flips -------------------------------------------------------------------------------------


def hflip(images: Tensor) -> Tensor:
    """Mirror (..., H, W) images left to right: the deterministic flipped copy."""
    return images.flip(-1)


def random_hflip(image: Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> Tensor:
    """The release's `RandomHorizontalFlip`: flip when one uniform draw is below `p`."""
    if torch.rand(1, generator=generator).item() < p:
        return hflip(image)
    return image


# -- datasets ----------------------------------------------------------------------------------


class ImageDataset(Dataset, ABC):
    """Shared behaviour: `classes`, `image_size` and the optional random flip of every item.

    With `flip`, each item is flipped with probability 1/2 using `generator` (the global torch
    generator when None). `iterate_batches` gives every DataLoader worker its own stream.
    """

    def __init__(
        self, image_size: int, *, flip: bool = False, generator: torch.Generator | None = None
    ) -> None:
        self.image_size = image_size
        self.flip = flip
        self.generator = generator
        self.classes: list[str] = []
        self.source = type(self).__name__

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @abstractmethod
    def load(self, index: int) -> tuple[Tensor, int]:
        """The image (C, H, W) in [0, 1] and its label, before any flip."""

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.load(index)
        if self.flip:
            image = random_hflip(image, self.generator)
        return image, label


class ImageFolderDataset(ImageDataset):
    """Images under `root`, scanned recursively for png/jpg/jpeg/webp/bmp (any letter case).

    Layout: if `root` has sub-folders, each one is a class (ImageNet train layout; ids follow
    the sorted folder names, as torchvision's ImageFolder numbers them, and files directly in
    `root` are ignored); otherwise every image is `UNLABELLED`. Hidden names are skipped.

    Unreadable files are found at load time, so the scan stays one directory listing even for
    ImageNet: such an item warns once with the file name, is appended to `skipped`, and is
    replaced by the next readable image (wrapping around), so a run never stops on one bad
    file. (With DataLoader workers, `skipped` fills in the workers' copies.)
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int,
        *,
        flip: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(image_size, flip=flip, generator=generator)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such folder")
        self.source = str(self.root.resolve())
        self.classes = sorted(e.name for e in os.scandir(self.root) if _visible_dir(e))
        if self.classes:
            self.samples = [
                (path, label)
                for label, name in enumerate(self.classes)
                for path in _scan_images(self.root / name)
            ]
        else:
            self.samples = [(path, UNLABELLED) for path in _scan_images(self.root)]
        if not self.samples:
            raise DatasetError(f"{self.root}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
        self.skipped: list[Path] = []

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[Tensor, int]:
        for step in range(len(self.samples)):
            path, label = self.samples[(index + step) % len(self.samples)]
            try:
                return load_image(path, self.image_size), label
            except (ImageError, Image.DecompressionBombError) as err:
                if path not in self.skipped:
                    self.skipped.append(path)
                    warnings.warn(f"skipping unreadable image {path}: {err}", stacklevel=3)
        raise DatasetError(f"{self.root}: none of the {len(self.samples)} images can be read")


def _visible_dir(entry: os.DirEntry) -> bool:
    return not entry.name.startswith(".") and entry.is_dir()


def _scan_images(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            Path(dirpath, name)
            for name in sorted(filenames)
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return found


class FashionMNIST(ImageDataset):
    """Fashion-MNIST from its idx files (`*-ubyte` or `*-ubyte.gz`) under `root`.

    The 28x28 grayscale images become RGB by repeating the channel. Size: 28 keeps them as
    they are; every other size first pads to 32x32 with the background value 0 (so 32 keeps
    every pixel exact), then resizes bicubically to `image_size`, so all sizes share the
    framing of the padded 32x32 picture.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        image_size: int = 32,
        *,
        flip: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(image_size, flip=flip, generator=generator)
        if split not in _FASHION_MNIST_PREFIX:
            raise DatasetError(
                f"Fashion-MNIST split must be one of {', '.join(_FASHION_MNIST_PREFIX)}, "
                f"got {split!r}"
            )
        self.root = Path(root) if root is not None else FASHION_MNIST_ROOT
        self.split = split
        self.source = f"fashion-mnist:{split}"
        self.classes = list(FASHION_MNIST_CLASSES)
        prefix = _FASHION_MNIST_PREFIX[split]
        self.images = read_idx(_find_idx(self.root, f"{prefix}-images-idx3-ubyte"))  # (N, 28, 28)
        self.labels = read_idx(_find_idx(self.root, f"{prefix}-labels-idx1-ubyte"))  # (N,)
        if self.images.ndim != 3 or len(self.images) != len(self.labels):
            raise DatasetError(f"{self.root}: Fashion-MNIST {split} images and labels disagree")
        if split in ("fit", "val"):
            n = len(self.labels)
            cut = n - min(FASHION_MNIST_VAL_SIZE, max(1, n // 12))
            part = slice(None, cut) if split == "fit" else slice(cut, None)
            self.images, self.labels = self.images[part], self.labels[part]

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> tuple[Tensor, int]:
        pixels = self.images[index]
        if self.image_size != pixels.shape[0]:
            pixels = np.pad(pixels, ((2, 2), (2, 2)))  # 28 -> 32 with the black background
            if self.image_size != pixels.shape[0]:
                size = (self.image_size, self.image_size)
                pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.BICUBIC))
        gray = torch.from_numpy(pixels.astype(np.float32) / 255)  # (S, S)
        return gray.expand(3, -1, -1).clone(), int(self.labels[index])


class FirstItems(ImageDataset):
    """The first `count` items of another image dataset (its classes and flips kept)."""

    def __init__(self, dataset: ImageDataset, count: int) -> None:
        super().__init__(dataset.image_size, flip=dataset.flip, generator=dataset.generator)
        if not 1 <= count <= len(dataset):
            raise DatasetError(f"{dataset.source}[:{count}]: the dataset has {len(dataset)} images")
        self.dataset, self.count = dataset, count
        self.classes = list(dataset.classes)
        self.source = f"{dataset.source}[:{count}]"

    def __len__(self) -> int:
        return self.count

    def load(self, index: int) -> tuple[Tensor, int]:
        if not -self.count <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} images")
        return self.dataset.load(index % self.count)


def has_fashion_mnist(root: str | Path | None = None) -> bool:
    """True when the Fashion-MNIST train and test files are present."""
    root = Path(root) if root is not None else FASHION_MNIST_ROOT
    names = [f"{p}-{kind}" for p in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]
    return all(_idx_file(root, f"{name}-ubyte") is not None for name in names)


def _idx_file(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_idx(root: Path, name: str) -> Path:
    path = _idx_file(root, name)
    if path is None:
        raise DatasetError(
            f"{root}: Fashion-MNIST file {name}[.gz] not found; {_FASHION_MNIST_HINT}"
        )
    return path


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file of unsigned bytes (the MNIST format), gzipped or not, as a uint8 array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise DatasetError(f"{path}: not an idx file of unsigned bytes")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    pixels = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if pixels.size != math.prod(shape):
        raise DatasetError(f"{path}: {pixels.size} bytes of data for shape {shape}")
    return pixels.reshape(shape)


# -- opening by name ---------------------------------------------------------------------------


def open_dataset(
    spec: str,
    image_size: int,
    *,
    flip: bool = False,
    generator: torch.Generator | None = None,
) -> ImageDataset:
    """The dataset named by a `--data` argument.

    `fashion-mnist` or `fashion-mnist:train|test|fit|val` (the Debian package's files), a
    folder of Fashion-MNIST idx files (optionally `FOLDER:test`), or a folder of images; any of
    them followed by `[:N]` is its first N images (e.g. `fashion-mnist:fit[:512]`).
    """
    head = re.fullmatch(r"(.+)\[:(\d+)\]", spec)
    if head is not None:
        whole = open_dataset(head[1], image_size, flip=flip, generator=generator)
        return FirstItems(whole, int(head[2]))
    name, _, split = spec.rpartition(":")
    if split not in _FASHION_MNIST_PREFIX or not name:
        name, split = spec, "train"
    kwargs = {"image_size": image_size, "flip": flip, "generator": generator}
    if name == BUILTIN_DATASET:
        return FashionMNIST(None, split, **kwargs)
    if Path(name).is_dir() and _idx_file(Path(name), "train-images-idx3-ubyte") is not None:
        return FashionMNIST(name, split, **kwargs)
    if not Path(spec).is_dir():
        raise DatasetError(f"{spec}: no such folder (or use fashion-mnist[:test])")
    return ImageFolderDataset(spec, **kwargs)


# -- batching ----------------------------------------------------------------------------------


def iterate_batches(
    dataset: Dataset,
    batch_size: int,
    *,
    indices: Sequence[int] | None = None,
    shuffle: bool = False,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
    num_workers: int = 0,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches (images (B, 3, S, S), labels (B,) int64) over `indices` (default: all items).

    `shuffle` permutes the indices with `generator`. With `num_workers` > 0 items load in
    DataLoader worker processes; each worker re-seeds the dataset's flip generator from a seed
    drawn from `generator`, so flips differ between workers and repeat with the same seed.
    """
    order = torch.arange(len(dataset)) if indices is None else torch.as_tensor(indices)
    if shuffle:
        order = order[torch.randperm(len(order), generator=generator)]
    chunks = [c.tolist() for c in order.split(batch_size)]
    if drop_last and chunks and len(chunks[-1]) < batch_size:
        chunks.pop()
    if num_workers == 0:
        for chunk in chunks:
            yield _collate([dataset[i] for i in chunk])
        return
    loader = DataLoader(
        dataset,
        batch_sampler=chunks,
        num_workers=num_workers,
        collate_fn=_collate,
        generator=generator,
        worker_init_fn=_seed_worker,
    )
    yield from loader


def _collate(items: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
    images = torch.stack([image for image, _ in items])
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return images, labels


def _seed_worker(worker_id: int) -> None:
    info = get_worker_info()
    if getattr(info.dataset, "generator", None) is not None:
        info.dataset.generator = torch.Generator().manual_seed(info.seed)
