import copy
import json

import numpy as np
import pytest
import torch

from bigr.checkpoint import weights_fingerprint
from bigr.config import PRESETS
from bigr.evaluation.probe import LARS, ProbeConfig, layer_features, train_probe
from bigr.evaluation.sample_fid import merge, sample_fid, shard_path
from bigr.recipes import recipe
from bigr.sampler import SamplerConfig
from bigr.tokenizer import BinaryAutoencoder

FAST = SamplerConfig(steps=2, head_steps=3, guidance=2.0, gumbel=0.0)


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(0)
    return BinaryAutoencoder(PRESETS["bae-tiny"]).eval()


def _run(model, tokenizer, out, **kw):
    return sample_fid(
        model,
        tokenizer,
        out,
        num_images=10,
        sampler=FAST,
        batch_size=3,
        shard_size=4,
        progress=False,
        **kw,
    )


def test_sample_sets_do_not_depend_on_the_number_of_processes(random_bigr, tokenizer, tmp_path):
    one = _run(random_bigr, tokenizer, tmp_path / "one")
    assert one["complete"] and one["shards_written"] == 3
    first = _run(random_bigr, tokenizer, tmp_path / "two", rank=0, world_size=2)
    assert not first["complete"] and first["shards_written"] == 2
    second = _run(random_bigr, tokenizer, tmp_path / "two", rank=1, world_size=2)
    assert second["complete"]
    a, b = np.load(tmp_path / "one" / "samples.npz"), np.load(tmp_path / "two" / "samples.npz")
    assert a["arr_0"].shape == (10, 16, 16, 3) and a["arr_0"].dtype == np.uint8
    assert np.array_equal(a["arr_0"], b["arr_0"]) and a["labels"].tolist() == [
        i % 10 for i in range(10)
    ]


def test_an_interrupted_set_resumes_identically_and_settings_are_checked(
    random_bigr, tokenizer, tmp_path
):
    _run(random_bigr, tokenizer, tmp_path / "s")
    reference = np.load(tmp_path / "s" / "samples.npz")["arr_0"]
    shard_path(tmp_path / "s", 1).unlink()
    (tmp_path / "s" / "samples.npz").unlink()
    assert merge(tmp_path / "s") is None
    again = _run(random_bigr, tokenizer, tmp_path / "s")
    assert again["shards_written"] == 1
    assert np.array_equal(np.load(tmp_path / "s" / "samples.npz")["arr_0"], reference)
    with pytest.raises(ValueError, match="other settings"):
        sample_fid(
            random_bigr,
            tokenizer,
            tmp_path / "s",
            num_images=12,
            sampler=FAST,
            shard_size=4,
            progress=False,
        )
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["num_images"] == 10


def test_a_set_drawn_from_other_weights_is_refused_and_an_older_set_still_resumes(
    random_bigr, tokenizer, tmp_path
):
    _run(random_bigr, tokenizer, tmp_path / "s")
    shard_path(tmp_path / "s", 2).unlink()
    (tmp_path / "s" / "samples.npz").unlink()
    retrained = copy.deepcopy(random_bigr)
    with torch.no_grad():
        next(retrained.parameters()).add_(1e-3)  # the same settings, other weights
    with pytest.raises(ValueError, match="other weights"):
        _run(retrained, tokenizer, tmp_path / "s")
    other_tokenizer = copy.deepcopy(tokenizer)
    with torch.no_grad():
        next(other_tokenizer.parameters()).mul_(0.5)
    with pytest.raises(ValueError, match="other weights"):
        _run(random_bigr, other_tokenizer, tmp_path / "s")
    assert not shard_path(tmp_path / "s", 2).exists()  # nothing sampled into it
    # a set begun before fingerprints were recorded resumes as before
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    del meta["weights"]
    (tmp_path / "s" / "meta.json").write_text(json.dumps(meta))
    assert _run(random_bigr, tokenizer, tmp_path / "s")["complete"]


def test_the_fingerprint_follows_the_values_not_the_object(random_bigr):
    assert weights_fingerprint(random_bigr) == weights_fingerprint(copy.deepcopy(random_bigr))
    half = copy.deepcopy(random_bigr).half()
    assert weights_fingerprint(half) != weights_fingerprint(random_bigr)


def test_named_recipes():
    assert recipe("bigr-l-d24/paper").gumbel == 0.17 and recipe("bigr-xl-d24/paper").steps == 25
    assert recipe("release").guidance == 3.0
    with pytest.raises(ValueError, match="no recipe"):
        recipe("bigr-l-d24/fast")


def test_linear_probe_learns_separable_features():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(5, 16, generator=g) * 3
    y = torch.randint(0, 5, (600,), generator=g)
    x = centers[y] + torch.randn(600, 16, generator=g)
    for optimizer, base_lr in (("sgd", 0.1), ("lars", 25.0)):  # LARS needs MAE's large lr
        config = ProbeConfig(
            epochs=20, warmup_epochs=2, batch_size=64, optimizer=optimizer, base_lr=base_lr
        )
        result = train_probe(x[:500], y[:500], x[500:], y[500:], config)
        assert result["top1"] > 90 and result["top5"] == 100.0
    noise = train_probe(
        torch.randn(500, 16, generator=g),
        y[:500],
        torch.randn(100, 16, generator=g),
        y[500:],
        ProbeConfig(epochs=5, warmup_epochs=1, batch_size=64),
    )
    assert noise["top1"] < 50


def test_lars_scales_matrix_updates_by_the_trust_ratio():
    w = torch.nn.Parameter(torch.full((2, 2), 2.0))
    w.grad = torch.full((2, 2), 1.0)
    LARS([w], lr=1.0, trust_coefficient=0.5).step()
    assert torch.allclose(w, torch.full((2, 2), 2.0 - 0.5 * 4.0 / 2.0))  # ||w|| = 4, ||g|| = 2


def test_layer_features_are_pooled_per_layer(random_bigr):
    codes = torch.randint(0, 2, (5, 16, 16)).float()
    feats = layer_features(random_bigr, [codes[:3], codes[3:]], [0, 1])
    assert feats[0].shape == (5, 64) and not torch.allclose(feats[0], feats[1])
    expected = random_bigr.transformer.features(codes, 1).float().mean(1)
    assert torch.allclose(feats[1], expected, atol=1e-5)
