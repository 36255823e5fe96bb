"""Data at the edges of the model: images, datasets, code shards and captions.

Modules:
- `datasets.py`: image datasets (class folders, flat folders, Fashion-MNIST), flips, batching
  and `open_dataset`, the `--data` argument of the command line;
- `images.py`: image files and tensors (decoding, the release's centre crop, PNGs and grids);
- `shards.py`: the on-disk format of bit-packed code shards, its writers and reader;
- `tokenize.py`: `bigr tokenize`, the resumable multi-rank driver that writes shards;
- `captions.py`: generated Fashion-MNIST captions and the caption table beside shards;
- `text_encoder.py`: the all-MiniLM-L6-v2 text encoder that embeds captions.

The names of `datasets.py` (and `ImageError`, `load_image`) are re-exported here
(`from bigr.data import open_dataset`); the other modules are imported by their own path
(`bigr.data.shards`, ...).
"""

from .datasets import (
    BUILTIN_DATASET,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ROOT,
    FASHION_MNIST_VAL_SIZE,
    HELD_OUT_SPEC,
    IMAGE_EXTENSIONS,
    UNLABELLED,
    DatasetError,
    FashionMNIST,
    FirstItems,
    ImageDataset,
    ImageFolderDataset,
    has_fashion_mnist,
    hflip,
    iterate_batches,
    open_dataset,
    random_hflip,
    read_idx,
)
from .images import ImageError, load_image

__all__ = [
    "BUILTIN_DATASET",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "FASHION_MNIST_VAL_SIZE",
    "HELD_OUT_SPEC",
    "IMAGE_EXTENSIONS",
    "UNLABELLED",
    "DatasetError",
    "FashionMNIST",
    "FirstItems",
    "ImageDataset",
    "ImageError",
    "ImageFolderDataset",
    "has_fashion_mnist",
    "hflip",
    "iterate_batches",
    "load_image",
    "open_dataset",
    "random_hflip",
    "read_idx",
]
