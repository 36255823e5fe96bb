import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from bigr.data import (
    FASHION_MNIST_CLASSES,
    UNLABELLED,
    DatasetError,
    FashionMNIST,
    ImageFolderDataset,
    has_fashion_mnist,
    hflip,
    iterate_batches,
    open_dataset,
    random_hflip,
    read_idx,
)

needs_fashion_mnist = pytest.mark.skipif(
    not has_fashion_mnist(),
    reason="Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)",
)


def _save(path, color, size=(20, 24), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


@pytest.fixture
def class_tree(tmp_path):
    _save(tmp_path / "cat" / "a.png", (255, 0, 0))
    _save(tmp_path / "cat" / "deep" / "b.JPG", (250, 0, 0), fmt="JPEG")
    _save(tmp_path / "dog" / "c.webp", (0, 0, 255))
    _save(tmp_path / "dog" / "d.bmp", (0, 0, 255))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    _save(tmp_path / ".hidden" / "e.png", (0, 255, 0))
    return tmp_path


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.fixture
def small_fashion_root(tmp_path):
    """Five train and three test images in both idx flavours (gzipped train, raw test)."""
    root = tmp_path / "fashion"
    root.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n, suffix in (("train", 5, ".gz"), ("t10k", 3, "")):
        images = rng.integers(0, 256, (n, 28, 28))
        _write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10)
    return root


def test_class_folders_are_sorted_classes_scanned_recursively(class_tree):
    ds = ImageFolderDataset(class_tree, 16)
    assert ds.classes == ["cat", "dog"]
    assert [label for _, label in ds.samples] == [0, 0, 1, 1]
    image, label = ds[1]  # cat/deep/b.JPG
    assert image.shape == (3, 16, 16) and label == 0
    assert image.min() >= 0 and image.max() <= 1 and image[0].mean() > 0.9


def test_flat_folder_is_unlabelled(tmp_path):
    _save(tmp_path / "x.png", (1, 2, 3))
    _save(tmp_path / "y.jpeg", (1, 2, 3), fmt="JPEG")
    ds = ImageFolderDataset(tmp_path, 8)
    assert ds.classes == [] and len(ds) == 2
    assert all(ds[i][1] == UNLABELLED for i in range(2))


def test_items_use_the_release_centre_crop(tmp_path):
    img = Image.new("RGB", (64, 32), (0, 0, 0))
    img.paste((255, 255, 255), (16, 0, 48, 32))  # white middle, black sides
    img.save(tmp_path / "wide.png")
    image, _ = ImageFolderDataset(tmp_path, 16)[0]
    assert image.min() > 0.95  # the crop keeps only the white square


def test_unreadable_file_is_reported_skipped_and_replaced(class_tree):
    bad = class_tree / "cat" / "broken.png"
    bad.write_bytes(b"definitely not a png")
    ds = ImageFolderDataset(class_tree, 16)
    index = [p for p, _ in ds.samples].index(bad)
    with pytest.warns(UserWarning, match="broken.png"):
        image, _ = ds[index]
    assert ds.skipped == [bad]
    assert image.shape == (3, 16, 16)  # the next readable file stands in
    assert len(list(iterate_batches(ds, 2))) == 3  # a full pass never raises


def test_folder_errors_are_one_line(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        ImageFolderDataset(tmp_path / "missing", 16)
    with pytest.raises(DatasetError, match="no images"):
        ImageFolderDataset(tmp_path, 16)
    (tmp_path / "bad.png").write_bytes(b"junk")
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="none of the 1"):
        ImageFolderDataset(tmp_path, 16)[0]


def test_hflip_mirrors_and_is_an_involution():
    x = torch.arange(12.0).reshape(1, 3, 2, 2)
    assert torch.equal(hflip(x)[..., 0], x[..., 1])
    assert torch.equal(hflip(hflip(x)), x)


def test_random_hflip_matches_the_release_draw_and_is_seeded():
    x = torch.rand(3, 4, 4)
    decisions = []
    for seed in range(64):
        flipped = random_hflip(x, torch.Generator().manual_seed(seed))
        expected = torch.rand(1, generator=torch.Generator().manual_seed(seed)) < 0.5
        assert torch.equal(flipped, hflip(x) if expected else x)
        decisions.append(bool(expected))
    assert 16 < sum(decisions) < 48


def test_dataset_flips_repeat_with_the_same_generator(tmp_path):
    img = Image.new("RGB", (16, 16), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 8, 16))  # white left half: a flip is visible
    img.save(tmp_path / "half.png")

    def items(seed):
        gen = torch.Generator().manual_seed(seed)
        ds = ImageFolderDataset(tmp_path, 16, flip=True, generator=gen)
        return [ds[0][0] for _ in range(16)]

    first, again = items(3), items(3)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    plain = ImageFolderDataset(tmp_path, 16)[0][0]
    assert {torch.equal(a, plain) for a in first} == {True, False}
    assert all(torch.equal(a, plain) or torch.equal(a, hflip(plain)) for a in first)


def test_iterate_batches_covers_every_index_once(class_tree):
    ds = ImageFolderDataset(class_tree, 8)
    batches = list(iterate_batches(ds, 3))
    assert [b[0].shape[0] for b in batches] == [3, 1]
    assert batches[0][1].dtype == torch.int64
    assert torch.cat([b[1] for b in batches]).tolist() == [0, 0, 1, 1]
    assert len(list(iterate_batches(ds, 3, drop_last=True))) == 1


def test_shuffled_batches_repeat_with_the_seed_and_workers_agree(class_tree):
    ds = ImageFolderDataset(class_tree, 8)

    def labels(num_workers):
        gen = torch.Generator().manual_seed(5)
        batches = iterate_batches(ds, 2, shuffle=True, generator=gen, num_workers=num_workers)
        return torch.cat([b[1] for b in batches]).tolist()

    assert labels(0) == labels(0) == labels(2)
    assert sorted(labels(0)) == [0, 0, 1, 1]


def test_worker_flips_repeat_with_the_seed(tmp_path):
    img = Image.new("RGB", (16, 16), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 8, 16))
    for i in range(8):
        img.save(tmp_path / f"{i}.png")

    def left_halves():
        ds = ImageFolderDataset(tmp_path, 16, flip=True, generator=torch.Generator())
        gen = torch.Generator().manual_seed(7)
        batches = iterate_batches(ds, 2, generator=gen, num_workers=2)
        return torch.cat([images[:, 0, 0, 0] for images, _ in batches]).tolist()

    first = left_halves()
    assert first == left_halves() and set(first) == {0.0, 1.0}


def test_idx_files_gzipped_or_not_from_any_root(small_fashion_root):
    train = FashionMNIST(small_fashion_root, "train", image_size=28)
    test = FashionMNIST(small_fashion_root, "test", image_size=28)
    assert (len(train), len(test)) == (5, 3)
    raw = read_idx(small_fashion_root / "t10k-images-idx3-ubyte")
    image, label = test[2]
    assert label == 2 and image.shape == (3, 28, 28)
    assert torch.equal(image[1] * 255, torch.tensor(raw[2]).float())
    assert torch.equal(image[0], image[2])


def test_fashion_mnist_pads_to_32_exactly_and_resizes_other_sizes(small_fashion_root):
    raw = read_idx(small_fashion_root / "train-images-idx3-ubyte.gz")
    padded, _ = FashionMNIST(small_fashion_root, image_size=32)[0]
    assert padded.shape == (3, 32, 32)
    assert torch.equal(padded[0, 2:30, 2:30] * 255, torch.tensor(raw[0]).float())
    assert padded[:, :2].eq(0).all() and padded[:, :, -2:].eq(0).all()
    resized, _ = FashionMNIST(small_fashion_root, image_size=16)[0]
    assert resized.shape == (3, 16, 16) and resized.min() >= 0 and resized.max() <= 1


def test_missing_fashion_mnist_names_the_package(tmp_path):
    with pytest.raises(DatasetError, match="dataset-fashion-mnist or pass --data"):
        FashionMNIST(tmp_path)
    with pytest.raises(DatasetError, match="must be one of train, test, fit, val"):
        FashionMNIST(tmp_path, "validation")


def test_open_dataset_specs(class_tree, small_fashion_root):
    assert isinstance(open_dataset(str(class_tree), 16), ImageFolderDataset)
    fm = open_dataset(f"{small_fashion_root}:test", 32)
    assert isinstance(fm, FashionMNIST) and fm.split == "test" and len(fm) == 3
    assert open_dataset(str(small_fashion_root), 32).split == "train"
    with pytest.raises(DatasetError, match="no such folder"):
        open_dataset(str(class_tree / "nope"), 16)


def test_fit_and_val_partition_the_training_split(small_fashion_root):
    train = FashionMNIST(small_fashion_root, "train", image_size=28)
    fit = open_dataset(f"{small_fashion_root}:fit", 28)
    val = open_dataset(f"{small_fashion_root}:val", 28)
    assert (len(fit), len(val)) == (4, 1) and fit.source.endswith(":fit")
    items = [fit[i][0] for i in range(len(fit))] + [val[0][0]]
    assert all(torch.equal(a, train[i][0]) for i, a in enumerate(items))


@needs_fashion_mnist
def test_installed_fashion_mnist_has_both_splits_and_ten_classes():
    train, test = open_dataset("fashion-mnist", 32), open_dataset("fashion-mnist:test", 32)
    assert (len(train), len(test)) == (60_000, 10_000)
    fit, val = open_dataset("fashion-mnist:fit", 32), open_dataset("fashion-mnist:val", 32)
    assert (len(fit), len(val)) == (55_000, 5_000)
    assert torch.equal(val[0][0], train[55_000][0])
    assert train.classes == list(FASHION_MNIST_CLASSES) and len(train.classes) == 10
    assert sorted(set(test.labels.tolist())) == list(range(10))
    image, label = train[0]
    assert image.shape == (3, 32, 32) and 0 <= label < 10 and image.max() > 0.5


def test_a_data_spec_with_a_head_slice_is_its_first_images(tmp_path):
    from bigr.data import DatasetError, open_dataset

    for i in range(5):
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(tmp_path / f"{i}.png")
    whole = open_dataset(str(tmp_path), 8)
    head = open_dataset(f"{tmp_path}[:3]", 8)
    assert len(head) == 3 and head.source.endswith("[:3]")
    assert all(torch.equal(head[i][0], whole[i][0]) for i in range(3))
    with pytest.raises(IndexError):
        head[3]
    with pytest.raises(DatasetError, match="has 5 images"):
        open_dataset(f"{tmp_path}[:6]", 8)
