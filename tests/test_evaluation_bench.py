from bigr.config import PRESETS
from bigr.evaluation.bench import bench_train, sampling_flops
from bigr.sampler import SamplerConfig


def test_bench_train_reports_both_head_paths_and_tokenization():
    result = bench_train("bigr-tiny", batch=2, iters=1, warmup=0, tokenize_batch=2)
    config = PRESETS["bigr-tiny"]
    for name in ("masked_only", "all_tokens"):
        entry = result["train"][name]
        assert entry["tokens_per_second"] > 0
        assert (
            abs(entry["tokens_per_second"] * entry["seconds_per_step"] - 2 * config.num_tokens)
            < 1e-6
        )
    # same draw, same loss: only the amount of head work differs
    assert (
        abs(result["train"]["masked_only"]["loss"] - result["train"]["all_tokens"]["loss"]) < 1e-5
    )
    head = result["head"]
    assert head["seconds_masked_only"] > 0 and head["seconds_all_tokens"] > 0
    assert 0 < result["settings"]["masked_fraction"] < 1
    assert result["tokenize"]["tokenizer"] == "bae-tiny"
    assert result["tokenize"]["images_per_second"] > 0


def test_head_flops_shrink_when_the_head_sees_only_unknown_tokens():
    config = PRESETS["bigr-tiny"]
    ours = sampling_flops(config, SamplerConfig(steps=4, head_steps=10), batch=2)
    release = sampling_flops(config, SamplerConfig(steps=4, head_steps=10, head_tokens="all"), 2)
    assert ours["transformer"] == release["transformer"]
    assert ours["head"] < release["head"]
