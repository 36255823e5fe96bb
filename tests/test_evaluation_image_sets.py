"""Image sets: class-balanced generated sets resume from their kept codes."""

import torch

from bigr.evaluation import image_sets
from bigr.sampler import SamplerConfig


def test_an_interrupted_sample_set_resumes_from_its_kept_codes(
    tmp_path, random_bigr, tiny_tokenizer, monkeypatch
):
    sampler = SamplerConfig(steps=2, head_steps=2, guidance=1.0, gumbel=0.0)
    kept = tmp_path / "codes"
    first, _ = image_sets.generate(
        random_bigr, tiny_tokenizer, sampler, 10, batch_size=4, seed=3, codes_dir=kept
    )
    assert sorted(p.name for p in kept.glob("*.npy")) == [f"b00000{b}.npy" for b in range(3)]
    (kept / "b000002.npy").unlink()  # the last batch was never finished
    calls = []
    real = image_sets.sample_codes

    def counting(model, labels, *args, **kwargs):
        calls.append(len(labels))
        return real(model, labels, *args, **kwargs)

    monkeypatch.setattr(image_sets, "sample_codes", counting)
    again, seconds = image_sets.generate(
        random_bigr, tiny_tokenizer, sampler, 10, batch_size=4, seed=3, codes_dir=kept
    )
    assert calls == [2]  # only the missing batch (images 8-9) was drawn again
    assert torch.equal(first, again) and seconds > 0
    # a batch size that does not match what is kept is drawn afresh, never misread
    calls.clear()
    image_sets.generate(
        random_bigr, tiny_tokenizer, sampler, 10, batch_size=5, seed=3, codes_dir=kept
    )
    assert calls == [5, 5]
