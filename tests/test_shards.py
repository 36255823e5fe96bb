import json

import numpy as np
import pytest
import torch
from PIL import Image

from bigr.data import hflip
from bigr.data.shards import (
    META_FILE,
    CodeShards,
    ShardError,
    ShardMeta,
    bytes_per_image,
    missing_shards,
    pack_codes,
    unpack_codes,
    write_codes,
)
from bigr.data.tokenize import tokenize_command, tokenize_dataset
from bigr.model import save_tokenizer


class TinyImages(torch.utils.data.Dataset):
    """Random 16x16 images with labels i % 3, deterministic per index."""

    def __init__(self, count: int) -> None:
        self.classes = ["a", "b", "c"]
        self.images = torch.rand(count, 3, 16, 16, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], index % 3


def _random_bits(shape, seed=0):
    return torch.randint(0, 2, shape, generator=torch.Generator().manual_seed(seed)).float()


def _meta(code_bits, count, shard_size, **kwargs):
    return ShardMeta(code_bits=code_bits, grid_size=3, count=count, shard_size=shard_size, **kwargs)


def _files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def _tokenize(tokenizer, out, **kwargs):
    options = {"batch_size": 3, "shard_size": 3, "samples_per_image": 2, "progress": False}
    return tokenize_dataset(tokenizer, TinyImages(8), out, **{**options, **kwargs})


@pytest.mark.parametrize("code_bits", [16, 24, 13])
def test_pack_round_trips_bit_exactly(code_bits):
    bits = _random_bits((4, 9, code_bits))
    packed = pack_codes(bits)
    assert packed.dtype == np.uint8 and packed.shape == (4, 9, -(-code_bits // 8))
    assert torch.equal(unpack_codes(packed, code_bits), bits)


def test_packing_is_msb_first_with_zero_padding():
    bits = torch.zeros(1, 10)
    bits[0, 0] = bits[0, 9] = 1
    assert pack_codes(bits).tolist() == [[0b1000_0000, 0b0100_0000]]


@pytest.mark.parametrize("code_bits", [16, 24, 13])
def test_shards_round_trip_across_shard_boundaries(tmp_path, code_bits):
    bits = _random_bits((10, 2, 9, code_bits))  # (N, V, L, K)
    labels = torch.arange(10) - 1
    write_codes(tmp_path, bits, labels, _meta(code_bits, 10, 4, samples_per_image=2))
    shards = CodeShards(tmp_path)
    assert len(shards) == 10 and shards.meta.num_shards == 3
    order = [9, 0, 4, 3, 7]
    codes, got_labels = shards.read(order, variants=[1, 0, 1, 0, 1])
    assert torch.equal(codes, bits[order, [1, 0, 1, 0, 1]])
    assert got_labels.tolist() == (labels[order]).tolist() and got_labels.dtype == torch.int64
    all_variants, label = shards[5]
    assert torch.equal(all_variants, bits[5]) and label == 4


def test_reader_memory_maps_and_files_hold_packed_bits(tmp_path):
    write_codes(tmp_path, _random_bits((6, 1, 9, 24)), torch.zeros(6), _meta(24, 6, 6))
    shards = CodeShards(tmp_path)
    assert isinstance(shards.codes[0], np.memmap) and isinstance(shards.labels[0], np.memmap)
    data_bytes = 6 * 9 * 3  # N·L·K/8, one byte per 8 bits
    assert data_bytes <= (tmp_path / "shard-00000.codes.npy").stat().st_size <= data_bytes + 128


def test_iteration_over_a_range_matches_random_access(tmp_path):
    bits = _random_bits((7, 1, 9, 16))
    write_codes(tmp_path, bits, torch.arange(7), _meta(16, 7, 3))
    shards = CodeShards(tmp_path)
    batches = list(shards.iter_batches(2, start=1, stop=6))
    assert [len(labels) for _, labels in batches] == [2, 2, 1]
    assert torch.equal(torch.cat([c for c, _ in batches]), bits[1:6, 0])


def test_random_variants_are_seeded_and_in_range(tmp_path):
    write_codes(
        tmp_path, _random_bits((4, 4, 9, 8)), torch.zeros(4), _meta(8, 4, 4, samples_per_image=4)
    )
    shards = CodeShards(tmp_path)
    first = shards.random_variants(100, torch.Generator().manual_seed(0))
    assert torch.equal(first, shards.random_variants(100, torch.Generator().manual_seed(0)))
    assert set(first.tolist()) == {0, 1, 2, 3}


def test_bytes_per_image_against_the_release():
    assert bytes_per_image(24, 256) == {"ours": 256 * 3 + 4, "release": 256 * 24 + 2}
    assert bytes_per_image(16, 16, num_variants=2) == {"ours": 68, "release": 2 * (256 + 2)}


def test_tokenize_stores_the_tokenizer_codes_and_flips(tmp_path, tiny_tokenizer):
    data = TinyImages(5)
    options = {"batch_size": 3, "shard_size": 3, "include_flips": True, "progress": False}
    result = tokenize_dataset(tiny_tokenizer, data, tmp_path, stochastic=False, **options)
    assert result["complete"] and result["images_encoded"] == 5 and result["shards"] == 2
    assert result["bytes_per_image"] == 2 * 16 * 2 + 4
    assert result["release_bytes_per_image"] == 2 * (16 * 16 + 2)
    shards = CodeShards(tmp_path)
    with torch.no_grad():  # batches as the shards make them: images 0-2 and 3-4
        batches = data.images.split(3)
        plain = torch.cat([tiny_tokenizer.encode(x, stochastic=False).codes for x in batches])
        flipped = torch.cat(
            [tiny_tokenizer.encode(hflip(x), stochastic=False).codes for x in batches]
        )
    assert torch.equal(shards.read(range(5), 0)[0], plain)
    assert torch.equal(shards.read(range(5), 1)[0], flipped)
    assert shards.read(range(5))[1].tolist() == [0, 1, 2, 0, 1]
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["tokenizer"]["config"]["code_bits"] == 16 and meta["classes"] == ["a", "b", "c"]


def test_stochastic_samples_are_bits_that_differ_between_samples_and_seeds(
    tmp_path, tiny_tokenizer
):
    _tokenize(tiny_tokenizer, tmp_path / "a", seed=1)
    _tokenize(tiny_tokenizer, tmp_path / "b", seed=2)
    a, b = CodeShards(tmp_path / "a"), CodeShards(tmp_path / "b")
    s0, s1 = a.read(range(8), 0)[0], a.read(range(8), 1)[0]
    assert set(s0.unique().tolist()) == {0.0, 1.0} and not torch.equal(s0, s1)
    assert not torch.equal(s0, b.read(range(8), 0)[0])


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, tiny_tokenizer):
    _tokenize(tiny_tokenizer, tmp_path / "whole")
    out = tmp_path / "resumed"
    _tokenize(tiny_tokenizer, out)
    (out / "shard-00001.codes.npy").unlink()  # killed before its codes were renamed into place
    (out / ".shard-00001.codes.npy.k3j9x.tmp").write_bytes(b"half a shard")
    assert missing_shards(out) == [1]
    with pytest.raises(ShardError, match="1 of 3 shards missing"):
        CodeShards(out)
    result = _tokenize(tiny_tokenizer, out)
    assert result["shards_written"] == 1 and result["shards_already_done"] == 2
    assert _files(out) == _files(tmp_path / "whole")


def test_two_ranks_write_what_one_rank_writes(tmp_path, tiny_tokenizer):
    _tokenize(tiny_tokenizer, tmp_path / "one")
    first = _tokenize(tiny_tokenizer, tmp_path / "two", rank=1, world_size=2)
    assert first["shards_written"] == 1 and not first["complete"]
    second = _tokenize(tiny_tokenizer, tmp_path / "two", rank=0, world_size=2)
    assert second["complete"]
    assert _files(tmp_path / "two") == _files(tmp_path / "one")


def test_resuming_with_other_settings_is_refused(tmp_path, tiny_tokenizer):
    _tokenize(tiny_tokenizer, tmp_path)
    with pytest.raises(ShardError, match="samples_per_image"):
        _tokenize(tiny_tokenizer, tmp_path, samples_per_image=1)


def test_tokenize_rejects_inconsistent_options(tmp_path, tiny_tokenizer):
    with pytest.raises(ValueError, match="samples_per_image must be 1"):
        _tokenize(tiny_tokenizer, tmp_path, stochastic=False)
    with pytest.raises(ValueError, match="rank 2"):
        _tokenize(tiny_tokenizer, tmp_path, rank=2, world_size=2)


def test_reader_refuses_folders_without_meta(tmp_path):
    with pytest.raises(ShardError, match=r"no meta\.json"):
        CodeShards(tmp_path)


def test_tokenize_command_reads_a_tokenizer_folder_and_an_image_folder(tmp_path, tiny_tokenizer):
    (tmp_path / "images").mkdir()
    for i in range(3):
        Image.new("RGB", (20, 16), (80 * i, 0, 0)).save(tmp_path / "images" / f"{i}.png")
    save_tokenizer(tiny_tokenizer, tmp_path / "tok")
    result = tokenize_command(
        tmp_path / "tok", str(tmp_path / "images"), tmp_path / "codes", rank=None, progress=False
    )
    assert result["complete"] and result["images"] == 3
    codes, labels = CodeShards(tmp_path / "codes").read([0, 1, 2])
    assert codes.shape == (3, 16, 16) and labels.tolist() == [-1, -1, -1]
