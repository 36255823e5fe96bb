"""`bigr fid` and `bigr probe` end to end, with a small stand-in feature network for FID (the real
Inception is covered by test_evaluation_inception.py; its 2048-d square roots take seconds)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from bigr.cli import main
from bigr.data.shards import ShardMeta, write_codes
from bigr.evaluation.inception import InceptionOutput


class StandIn(torch.nn.Module):
    """Per-channel means and a coarse 2x2 layout as 'features'."""

    def forward(self, images):
        pooled = torch.nn.functional.adaptive_avg_pool2d(images, 2).flatten(1)  # (B, 12)
        return InceptionOutput(pooled, images.mean((2, 3)))


@pytest.fixture
def stand_in(monkeypatch):
    import bigr.evaluation.inception as inception

    monkeypatch.setattr(inception, "InceptionFeatures", StandIn)


def _folder(path, n, shift, seed):
    path.mkdir()
    g = np.random.default_rng(seed)
    for i in range(n):
        arr = np.clip(g.normal(0.5 + shift, 0.2, (16, 16, 3)), 0, 1)
        Image.fromarray((arr * 255).astype(np.uint8)).save(path / f"{i}.png")
    return path


def test_fid_command_orders_sets_by_distance(stand_in, tmp_path):
    ref = _folder(tmp_path / "ref", 60, 0.0, 0)
    _folder(tmp_path / "near", 60, 0.0, 1)
    _folder(tmp_path / "far", 60, 0.2, 2)
    results = {}
    for name in ("near", "far"):
        assert (
            main(
                [
                    "fid",
                    str(tmp_path / name),
                    "--ref",
                    str(ref),
                    "--out",
                    str(tmp_path / f"{name}.json"),
                ]
            )
            == 0
        )
        results[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert results["near"]["fid"] < results["far"]["fid"]
    assert {"fid", "sfid", "precision", "recall", "num_samples"} <= set(results["near"])
    assert results["near"]["num_samples"] == 60


def test_kept_reference_statistics_are_reused_only_where_they_fit(
    stand_in, tmp_path, capsys, monkeypatch
):
    """`--ref-stats` keeps the reference's statistics for the next call: the same comparison
    gives the same numbers from them; one over another number of reference images, or other
    features, is refused instead of measured against the wrong reference."""
    ref = _folder(tmp_path / "ref", 40, 0.0, 0)
    samples = _folder(tmp_path / "samples", 30, 0.1, 1)
    kept = tmp_path / "kept" / "ref.npz"

    def fid(*extra: str) -> dict:
        out = tmp_path / "out.json"
        argv = ["fid", str(samples), "--ref", str(ref), "--out", str(out), *extra]
        assert main(argv) == 0, capsys.readouterr().err
        return json.loads(out.read_text())

    fresh = fid()
    first = fid("--ref-stats", str(kept))
    assert kept.is_file() and first["num_reference"] == 30
    ref.rename(tmp_path / "moved")  # the kept file alone must now serve as the reference
    again = fid("--ref-stats", str(kept))
    assert again == first == fresh
    (tmp_path / "moved").rename(ref)

    argv = ["fid", str(samples), "--ref", str(ref), "--num", "20", "--ref-stats", str(kept)]
    assert main(argv) == 1
    assert "30 reference images, this comparison uses 20" in capsys.readouterr().err

    # all of a smaller reference: a later call asking for more still means all of it
    whole = tmp_path / "whole.npz"
    assert fid("--ref-num", "40", "--ref-stats", str(whole))["num_reference"] == 40
    assert fid("--ref-num", "60", "--ref-stats", str(whole))["num_reference"] == 40
    argv[-1] = str(whole)
    with monkeypatch.context() as patch:  # a known count is refused before the slow measuring

        def measured(*args, **kwargs):
            raise RuntimeError("the samples were measured before the refusal")

        patch.setattr("bigr.evaluation.reference.statistics_from_folder", measured)
        patch.setattr("bigr.evaluation.reference.compute_statistics", measured)
        assert main([*argv, "--ref-num", "30"]) == 1
        assert "40 reference images" in capsys.readouterr().err
        packed = tmp_path / "samples.npz"  # an .npz of samples: its 30 images are counted now
        np.savez(packed, arr_0=np.zeros((30, 16, 16, 3), np.uint8))
        assert main(["fid", str(packed), "--ref", str(ref), "--ref-stats", str(whole)]) == 1
        assert "40 reference images, this comparison uses 30" in capsys.readouterr().err
        # other features (pixel means on an 8x8 grid: 192 dimensions, not 12): refused too
        argv = ["fid", str(samples), "--ref", str(ref), "--features", "pixels"]
        assert main([*argv, "--ref-stats", str(kept)]) == 1
        assert "12-dimensional features, this comparison's have 192" in capsys.readouterr().err
        assert main([*argv[:3], str(kept), "--features", "pixels"]) == 1  # statistics as --ref
        assert f"--ref {kept} holds statistics of 12-dimensional" in capsys.readouterr().err


def test_probe_command_runs_with_baselines(random_bigr, tmp_path):
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 40), ("test", 20)):
        labels = torch.arange(n) % 4
        codes = torch.randint(0, 2, (n, 1, 16, 16), generator=g)
        codes[:, 0, :, 0] = (labels[:, None] % 2).expand(-1, 16)  # bit 0 carries half the class
        meta = ShardMeta(
            code_bits=16,
            grid_size=4,
            count=n,
            shard_size=32,
            samples_per_image=1,
            include_flips=False,
            stochastic=False,
            seed=0,
            classes=[str(i) for i in range(4)],
            source="random",
            tokenizer={},
        )
        write_codes(tmp_path / split, codes, labels, meta)
    random_bigr.save_pretrained(tmp_path / "model")
    out = tmp_path / "probe.json"
    assert (
        main(
            [
                "probe",
                "--model",
                str(tmp_path / "model"),
                "--train-codes",
                str(tmp_path / "train"),
                "--test-codes",
                str(tmp_path / "test"),
                "--layers",
                "0,1",
                "--epochs",
                "3",
                "--batch-size",
                "16",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"layer 0", "layer 1", "tokenizer bits"}
    assert results["tokenizer bits"]["top1"] >= 40  # the planted bit gives half of the class away
    # the features went to memory-mapped files; kept where --features-dir says, equal to the
    # in-memory extraction; the default layers are the middle, three quarters in and the last
    kept = tmp_path / "features"
    common = ["probe", "--model", str(tmp_path / "model"), "--train-codes",
              str(tmp_path / "train"), "--test-codes", str(tmp_path / "test"), "--epochs", "1",
              "--baselines", ""]  # fmt: skip
    assert main([*common, "--features-dir", str(kept)]) == 0
    depth = random_bigr.config.depth
    names = {f"layer{i}.npy" for i in sorted({depth // 2, 3 * depth // 4, depth - 1})}
    assert {p.name for p in (kept / "train").iterdir()} == names
    from bigr.data.shards import CodeShards
    from bigr.evaluation.probe import layer_features

    codes = [c for c, _ in CodeShards(tmp_path / "train").iter_batches(16)]
    memory = layer_features(random_bigr, codes, [depth - 1])[depth - 1]
    stored = np.load(kept / "train" / f"layer{depth - 1}.npy")
    np.testing.assert_array_equal(stored, memory.numpy())


def test_a_probe_on_memory_maps_equals_one_on_tensors(tmp_path):
    from bigr.evaluation.probe import ProbeConfig, train_probe, write_store

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (64, 12), generator=g)
    y = (x[:, 0] + 2 * x[:, 1]).long()
    stored = write_store(tmp_path / "x.npy", x.split(10), 64, 12)
    config = ProbeConfig(epochs=3, batch_size=16, warmup_epochs=1)
    in_memory = train_probe(x.float(), y, x.float(), y, config)
    mapped = train_probe(stored, y, stored, y, config)
    assert mapped["top1"] == in_memory["top1"] and mapped["top5"] == in_memory["top5"]
