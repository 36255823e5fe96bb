import json

import torch

from bigr.draws import RecordedDraws
from bigr.model import BiGR
from bigr.official import bigr_config_from_model_args, convert_state_dict, load_official_file
from bigr.official.parity_outputs import _sampler_config
from bigr.official.positional_draws import PositionalDraws
from bigr.official.release_sampler import release_sample_codes
from bigr.official.strategies import RELEASE_WORK
from bigr.sampler import SamplerConfig, sample_codes


def _reference(reference_dir):
    json_path = reference_dir / "tiny" / "tiny_reference.json"
    meta = json.loads(json_path.read_text())
    ref = torch.load(json_path.with_suffix(".pt"), weights_only=True)
    config = bigr_config_from_model_args(meta["model_args"])
    ckpt = json_path.parent / meta["weights"]["checkpoint_file"]
    state, _ = convert_state_dict(load_official_file(ckpt, "bigr"), config)
    model = BiGR(config)
    model.load_state_dict(state)
    return model.eval(), ref, meta


def test_release_path_reproduces_the_recorded_official_generation(reference_dir):
    model, ref, meta = _reference(reference_dir)
    description = meta["tensors"]["gen.tokens"]["description"]
    config = _sampler_config(description, ref["gen.gumbel_stream"].shape[0], meta["model_args"])
    draws = RecordedDraws(ref["gen.uniform_stream"], ref["gen.gumbel_stream"])
    codes = release_sample_codes(model, ref["in.labels"], config, draws=draws)
    assert torch.equal(codes, ref["gen.tokens"].to(codes.dtype))
    # every recorded draw was consumed, in the release's call sizes
    assert draws.position == ref["gen.uniform_stream"].numel()
    assert draws.call_sizes == ref["gen.bernoulli_call_sizes"].tolist()


def test_release_path_equals_bigrs_all_token_path_given_the_same_generator(random_bigr):
    # Same random stream, same consumption order: bigr's loop doing the release's head work
    # must draw exactly the codes of the release's algorithm (batching and fusing change no draw)
    config = SamplerConfig(steps=4, head_steps=6, guidance=2.5, gumbel=0.3)
    labels = torch.tensor([1, 7, 3])
    ours = sample_codes(
        random_bigr,
        labels,
        config,
        generator=torch.Generator().manual_seed(5),
        strategy=RELEASE_WORK,
    )
    release = release_sample_codes(
        random_bigr, labels, config, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(ours, release)


def test_default_path_draws_the_release_paths_codes_given_the_same_draws_per_token(random_bigr):
    # The default path runs the head only on unknown tokens (their positions first), batches
    # the guidance halves and fuses the denoiser; the release path runs it on every token of
    # both halves with the plain module. With uniforms keyed by (phase, call, token position)
    # every token's bits see the same numbers on both paths, so the codes must be identical.
    cfg = random_bigr.config
    labels = torch.tensor([1, 7, 3, 0, 9, 4])
    shape = (len(labels) * cfg.num_tokens, cfg.code_bits)
    for seed, config in enumerate(
        [
            SamplerConfig(steps=4, head_steps=6, guidance=2.5, gumbel=0.3),
            SamplerConfig(steps=3, head_steps=4, guidance=1.5, gumbel=1.0, schedule="linear"),
        ]
    ):
        ours = sample_codes(random_bigr, labels, config, draws=PositionalDraws(seed, *shape))
        release = release_sample_codes(
            random_bigr, labels, config, draws=PositionalDraws(seed, *shape)
        )
        assert torch.equal(ours, release), seed
        # and the draws matter: another seed gives other codes
        other = sample_codes(random_bigr, labels, config, draws=PositionalDraws(seed + 9, *shape))
        assert not torch.equal(ours, other)
