import dataclasses
import types

import pytest

from bigr.config import PRESETS
from bigr.evaluation.bench import sampling_flops
from bigr.evaluation.bench_train import bench_train
from bigr.model import BiGR
from bigr.sampler import SamplerConfig


def test_bench_train_reports_the_best_timed_step_of_each_path_after_the_warm_up(monkeypatch):
    import bigr.evaluation.bench_train as module
    from bigr.diffusion_head import BernoulliHead
    from bigr.tokenizer import BinaryAutoencoder

    # A fake clock that moves only while the timed work runs: each call of the head's loss
    # (on the masked tokens, or on every token with a weight) and of the tokenizer's encoder
    # takes the next of its scripted seconds. One warm-up call, then two timed ones; the
    # warm-up is the fastest of all, so were it counted it would be the best.
    now, fast = [0.0], 2**-8
    seconds = {
        "unknown": [fast, 0.5, 0.25, fast, 0.25, 0.125],  # training steps, then the head alone
        "all": [fast, 2.0, 1.0, fast, 0.5, 0.375],
        "encode": [fast, 0.5, 0.25],
    }
    real_loss, real_encode = BernoulliHead.loss, BinaryAutoencoder.encode

    def loss(self, *args, weight=None, **kwargs):
        now[0] += seconds["unknown" if weight is None else "all"].pop(0)
        return real_loss(self, *args, weight=weight, **kwargs)

    def encode(self, *args, **kwargs):
        now[0] += seconds["encode"].pop(0)
        return real_encode(self, *args, **kwargs)

    monkeypatch.setattr(BernoulliHead, "loss", loss)
    monkeypatch.setattr(BinaryAutoencoder, "encode", encode)
    monkeypatch.setattr(module, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    result = bench_train("bigr-tiny", batch=2, iters=2, warmup=1, tokenize_batch=2)
    assert not any(seconds.values())  # every scripted call ran
    unknown, every = result["train"]["head_unknown"], result["train"]["head_all"]
    assert unknown["seconds_per_step"] == 0.25 and every["seconds_per_step"] == 1.0
    # two images of 16 tokens a step
    assert unknown["tokens_per_second"] == 128.0 and unknown["images_per_second"] == 8.0
    assert every["tokens_per_second"] == 32.0 and result["speedup_head_unknown"] == 4.0
    assert result["head"] == {
        "seconds_head_unknown": 0.125,
        "seconds_head_all": 0.375,
        "speedup_head_unknown": 3.0,
    }
    assert result["tokenize"]["seconds_per_batch"] == 0.25
    assert result["tokenize"]["images_per_second"] == 8.0


def test_bench_train_head_paths_compute_the_same_loss_and_tokenize_with_the_paired_tokenizer():
    result = bench_train("bigr-tiny", batch=2, iters=1, warmup=0, tokenize_batch=2)
    # same draw, same loss: only the amount of head work differs
    assert abs(result["train"]["head_unknown"]["loss"] - result["train"]["head_all"]["loss"]) < 1e-5
    head = result["head"]
    assert head["seconds_head_unknown"] > 0 and head["seconds_head_all"] > 0
    assert 0 < result["settings"]["masked_fraction"] < 1
    assert result["tokenize"]["tokenizer"] == "bae-tiny"
    assert result["tokenize"]["images_per_second"] > 0


def test_head_flops_shrink_when_the_head_sees_only_unknown_tokens():
    config = PRESETS["bigr-tiny"]
    ours = sampling_flops(config, SamplerConfig(steps=4, head_steps=10), batch=2)
    release = sampling_flops(config, SamplerConfig(steps=4, head_steps=10), 2, head_all=True)
    assert ours["transformer"] == release["transformer"]
    assert ours["head"] < release["head"]


def test_bench_train_variants_time_the_same_step_and_count_its_flops():
    import pytest

    from bigr.evaluation.bench_train_variants import bench_train_variants

    result = bench_train_variants(
        "bigr-tiny", batch=2, iters=1, warmup=1, variants=("eager-fp32", "eager-bf16")
    )
    config = PRESETS["bigr-tiny"]
    # FLOPs of a step: more than the backbone's forward on every token (2 per weight), less
    # than a generous multiple of forward + backward (6 per weight) of the whole model.
    model = BiGR(config)
    backbone = sum(p.numel() for p in model.transformer.parameters())
    total = sum(p.numel() for p in model.parameters())
    tokens = 2 * config.num_tokens
    assert 2 * tokens * backbone < result["step_gflop"] * 1e9 < 4 * 6 * tokens * total
    fp32, bf16 = result["variants"]["eager-fp32"], result["variants"]["eager-bf16"]
    assert fp32["speedup"] == 1.0 and fp32["gflops"] > 0
    # the same weights and batch: bf16 autocast changes the loss only by rounding
    assert bf16["loss_after"] == pytest.approx(fp32["loss_after"], rel=2e-2)
    with pytest.raises(ValueError, match="unknown variants"):
        bench_train_variants("bigr-tiny", variants=("jit-fp64",))


def test_bench_train_release_paths_fetch_their_data_and_compute_the_same_loss():
    import pytest

    from bigr.evaluation.bench_train_variants import TrainVariant, bench_train_variants

    names = ("release-eager-fp32", "release_prepared-eager-fp32", "eager-fp32")
    result = bench_train_variants("bigr-tiny", batch=2, iters=2, warmup=1, variants=names)[
        "variants"
    ]
    release, prepared, ours = (result[n] for n in names)
    assert release["speedup"] == 1.0 and all(r["seconds_per_step"] > 0 for r in result.values())
    # the same codes in the same order, head on every token (weighted by the mask) vs on the
    # masked tokens only: the same loss after the same optimizer steps
    assert prepared["loss_after"] == pytest.approx(ours["loss_after"], rel=1e-5)
    # the release path encodes random images with a random B-AE: other codes, another loss
    assert release["loss_after"] != pytest.approx(ours["loss_after"], rel=1e-5)
    assert TrainVariant.parse("compile-bf16") == TrainVariant("bigr", "compile", "bf16")
    assert TrainVariant.parse("release-compile-fp32").head_tokens == "all"
    with pytest.raises(ValueError, match="makes a 4x4 grid but the generator expects 8x8"):
        bench_train_variants(
            "bigr-tiny", batch=2, variants=("release-eager-fp32",), overrides={"grid_size": 8}
        )


def test_bench_sample_compiles_the_backbone_and_runs_each_path_once_untimed(monkeypatch):
    import bigr.evaluation.bench as bench

    compiled, calls = [], []
    monkeypatch.setattr(
        bench.torch, "compile", lambda module, **kw: compiled.append((module, kw)) or module
    )
    real = bench.sample_codes
    sizes, configs = [], []

    def record(model, labels, config, **kw):
        calls.append(1), sizes.append(labels), configs.append(config)
        return real(model, labels, config, **kw)

    monkeypatch.setattr(bench, "sample_codes", record)
    result = bench.bench_sample(
        "bigr-tiny", batch=3, steps=3, head_steps=3, paths=("default",), repeats=2, compile=True
    )
    # the plain pass and the kept-keys passes (`kv_refresh`) of the transformer
    assert {type(m.__self__).__name__ for m, _ in compiled} == {"BiGRTransformer"}
    assert [m.__name__ for m, _ in compiled] == ["forward", "forward_keep", "reuse_blocks"]
    assert all(kw == {"dynamic": True, "backend": "inductor", "mode": None} for _, kw in compiled)
    assert len(calls) == 4  # each timed repeat after its untimed two-image warm-up call
    # warm-ups: two images, two steps; then the timed batch of three at three steps
    assert [len(c) for c in sizes] == [2, 3, 2, 3] and [c.steps for c in configs] == [2, 3, 2, 3]
    assert result["settings"]["compile"] is True


def test_bench_sample_times_default_release_and_head_all_paths():
    from bigr.evaluation.bench import bench_sample

    result = bench_sample(
        "bigr-tiny",
        batch=2,
        steps=2,
        head_steps=3,
        paths=("default", "release", "head_all"),
    )
    paths = result["paths"]
    assert set(paths) == {"default", "release", "head_all"}
    # the release does the most work; bigr's default the least (head on unknown tokens only)
    assert (
        paths["release"]["gflop_per_image"]
        > paths["head_all"]["gflop_per_image"]
        > paths["default"]["gflop_per_image"]
    )
    for entry in paths.values():
        assert entry["seconds_per_image"] > 0 and entry["fraction_of_matmul"] > 0
    assert result["speedup_vs_release"] == (
        paths["release"]["seconds_per_image"] / paths["default"]["seconds_per_image"]
    )
    assert result["matmul_gflops"] > 0


def test_a_named_recipe_is_timed_as_a_path():
    from bigr.evaluation.bench import bench_sample
    from bigr.recipes import recipe

    result = bench_sample("bigr-tiny", batch=1, steps=2, head_steps=2,
                          paths=("default", "recipe-fast"))  # fmt: skip
    timed = result["paths"]["recipe-fast"]
    fast = recipe("fast", "bigr:fashion")
    assert timed["images_per_second"] > 0
    assert timed["gflop_per_image"] == sampling_flops(PRESETS["bigr-tiny"], fast, 1)["total"] / 1e9
    with pytest.raises(ValueError, match="unknown recipe 'nonesuch'"):
        bench_sample("bigr-tiny", batch=1, steps=2, head_steps=2, paths=("recipe-nonesuch",))


def test_flops_follow_the_reuse_and_revision_options():
    config = PRESETS["bigr-tiny"]
    base = SamplerConfig(steps=6, head_steps=10)
    plain = sampling_flops(config, base, batch=2)
    kept = sampling_flops(config, dataclasses.replace(base, kv_refresh=3), batch=2)
    assert kept["transformer"] < plain["transformer"] and kept["head"] == plain["head"]
    fewer = sampling_flops(config, dataclasses.replace(base, head_steps_certain=2), batch=2)
    assert fewer["head"] < plain["head"] and fewer["transformer"] == plain["transformer"]
    revised = sampling_flops(config, dataclasses.replace(base, revise=3), batch=2)
    assert revised["head"] > plain["head"] and revised["transformer"] == plain["transformer"]
