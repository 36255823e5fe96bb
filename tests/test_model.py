import dataclasses
import json

import pytest
import torch

from bigr.config import PRESETS
from bigr.model import BiGR, load_tokenizer, sample_training_mask, save_tokenizer


def _batch(config, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2, (4, config.num_tokens, config.code_bits), generator=g).float()
    labels = torch.randint(0, config.num_classes, (4,), generator=g)
    return codes, labels


def test_training_mask_counts_follow_the_cosine_draw():
    g = torch.Generator().manual_seed(0)
    mask = sample_training_mask(8, 16, generator=g)
    counts = mask.sum(1)
    assert (counts == counts[0]).all() and 1 <= counts[0] <= 16  # one ratio per batch, as released
    per_sample = sample_training_mask(64, 16, per_sample=True, generator=g).sum(1)
    assert len(per_sample.unique()) > 1


def test_loss_uses_only_masked_tokens(random_bigr):
    tiny_bigr = random_bigr
    codes, labels = _batch(tiny_bigr.config)
    mask = torch.zeros(4, 16, dtype=torch.bool)
    mask[:, :5] = True
    t = torch.randint(1, 257, (4, 16), generator=torch.Generator().manual_seed(1))
    x_t = torch.randint(0, 2, (4, 16, 16), generator=torch.Generator().manual_seed(2)).float()
    base = tiny_bigr.training_loss(codes, labels, mask=mask, t=t, x_t=x_t)["loss"]
    # the diffusion noise of unmasked tokens plays no part...
    t2, x2 = t.clone(), x_t.clone()
    t2[:, 5:], x2[:, 5:] = 1, 1 - x2[:, 5:]
    assert torch.equal(
        base, tiny_bigr.training_loss(codes, labels, mask=mask, t=t2, x_t=x2)["loss"]
    )
    # ...while unmasked codes matter as context, and masked codes as targets
    context = codes.clone()
    context[:, 5:] = 1 - context[:, 5:]
    target = codes.clone()
    target[:, :5] = 1 - target[:, :5]
    for other in (context, target):
        assert not torch.allclose(
            base, tiny_bigr.training_loss(other, labels, mask=mask, t=t, x_t=x_t)["loss"]
        )


def test_head_on_every_token_gives_the_same_loss_and_gradient(random_bigr):
    # the release's work (head on all tokens, unmasked ones zero-weighted) vs ours (masked only)
    model = random_bigr
    codes, labels = _batch(model.config)
    mask = torch.zeros(4, 16, dtype=torch.bool)
    mask[:, 3:9] = True
    t = torch.randint(1, 257, (4, 16), generator=torch.Generator().manual_seed(1))
    noise = torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(2))
    grads = []
    losses = []
    for head_tokens in ("unknown", "all"):
        model.zero_grad()
        out = model.training_loss(
            codes, labels, mask=mask, t=t, noise=noise, drop_labels=False, head_tokens=head_tokens
        )
        out["loss"].backward()
        losses.append(out["loss"].detach())
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)
    assert grads[0].abs().sum() > 0


def test_save_and_load_give_identical_outputs(tmp_path, tiny_bigr):
    codes, labels = _batch(tiny_bigr.config)
    mask = torch.rand(4, 16, generator=torch.Generator().manual_seed(3)) < 0.5
    path = tiny_bigr.save_pretrained(tmp_path / "model")
    loaded = BiGR.from_pretrained(path)
    assert loaded.config == tiny_bigr.config
    assert torch.equal(
        loaded.transformer(codes, labels, mask), tiny_bigr.transformer(codes, labels, mask)
    )
    assert torch.equal(loaded.transformer.rope, tiny_bigr.transformer.rope)
    assert torch.equal(loaded.head.k_final, tiny_bigr.head.k_final)


def test_a_model_folder_saved_with_head_width_still_loads(tmp_path, tiny_bigr):
    path = tiny_bigr.save_pretrained(tmp_path / "model")
    stored = json.loads((path / "config.json").read_text())
    stored["head"]["width"] = stored["head"].pop("dim")  # the spelling before the rename
    (path / "config.json").write_text(json.dumps(stored))
    loaded = BiGR.from_pretrained(path)
    assert loaded.config == tiny_bigr.config
    assert loaded.config.head.dim == tiny_bigr.config.head.dim
    resaved = loaded.save_pretrained(tmp_path / "again")
    assert "width" not in json.loads((resaved / "config.json").read_text())["head"]


def test_tokenizer_round_trip_and_kind_check(tmp_path, tiny_tokenizer, tiny_bigr):
    import pytest

    from bigr.checkpoint import CheckpointError

    path = save_tokenizer(tiny_tokenizer, tmp_path / "tok")
    images = torch.rand(2, 3, 16, 16)
    loaded = load_tokenizer(path)
    assert torch.equal(
        loaded.encode(images, stochastic=False).codes,
        tiny_tokenizer.encode(images, stochastic=False).codes,
    )
    with pytest.raises(CheckpointError, match="not a BiGR generator"):
        BiGR.from_pretrained(path)
    with pytest.raises(CheckpointError, match="no such model directory"):
        BiGR.from_pretrained(tmp_path / "missing")


def test_a_tiny_model_overfits_one_batch():
    # Fully masked, so the model must memorise every bit of both samples from label and position.
    torch.manual_seed(0)
    model = BiGR(dataclasses.replace(PRESETS["bigr-tiny"], class_dropout=0.0))
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 2, (2, 16, 16), generator=g).float()
    labels, mask = torch.arange(2), torch.ones(2, 16, dtype=torch.bool)
    ge = torch.Generator().manual_seed(5)  # fixed evaluation draw of times and noisy bits
    probe = dict(
        t=torch.randint(1, 257, (2, 16), generator=ge),
        x_t=torch.randint(0, 2, (2, 16, 16), generator=ge).float(),
    )

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            return model.training_loss(codes, labels, mask=mask, **probe)["loss"].item()

    before = evaluate()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    model.train()
    for _ in range(600):  # the loss is ~2 % of its start by then, 10x under the bar
        loss = model.training_loss(codes, labels, mask=mask, generator=g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert evaluate() < 0.2 * before


def test_pooled_features_are_the_token_mean_of_each_blocks_output(random_bigr):
    # Hooks keep every block's output in a full unmasked forward pass under the null class;
    # a layer's pooled feature averages that block's output over the image tokens (the class
    # token excluded). Negative layers count from the last block; others outside are errors.
    codes, _ = _batch(random_bigr.config)
    backbone = random_bigr.transformer
    outputs = []
    hooks = [
        block.register_forward_hook(lambda m, a, out: outputs.append(out))
        for block in backbone.layers
    ]
    try:
        with torch.no_grad():
            backbone(codes, backbone.null_condition(4, codes.device))
    finally:
        for hook in hooks:
            hook.remove()
    depth, skip = random_bigr.config.depth, random_bigr.config.class_tokens
    assert len(outputs) == depth == 2
    expected = [out[:, skip:].mean(1) for out in outputs]  # (B, D) per block
    assert not torch.allclose(expected[0], expected[1])
    for layer in range(depth):
        pooled = random_bigr.pooled_features(codes, layer=layer)
        assert torch.allclose(pooled, expected[layer], atol=1e-6), layer
    last = random_bigr.pooled_features(codes, layer=-1)  # Python's indexing: the last block
    assert torch.allclose(last, expected[-1], atol=1e-6)
    first = random_bigr.pooled_features(codes, layer=-depth)
    assert torch.allclose(first, expected[0], atol=1e-6)
    for outside in (depth, depth + 3, -depth - 1, 100):  # never silently another block
        with pytest.raises(IndexError, match="out of range"):
            random_bigr.pooled_features(codes, layer=outside)
    labelled = random_bigr.pooled_features(codes, layer=1, condition=torch.tensor([1, 2, 3, 4]))
    assert not torch.allclose(labelled, expected[1])  # another condition, other features


def test_saved_model_folders_follow_the_umask(tmp_path, tiny_bigr):
    import os

    old = os.umask(0o022)
    try:
        path = tiny_bigr.save_pretrained(tmp_path / "m")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o755
    assert {f.stat().st_mode & 0o777 for f in path.iterdir()} == {0o644}


def test_a_compiled_backbone_samples_what_the_eager_one_does_and_keeps_its_weights(random_bigr):
    from bigr.model import compile_backbone
    from bigr.sampler import SamplerConfig, sample_codes

    configs = [  # the plain passes, and the kept-keys passes between refreshes
        SamplerConfig(steps=3, head_steps=4, guidance=2.0, gumbel=0.2),
        SamplerConfig(steps=4, head_steps=4, guidance=2.0, gumbel=0.2, kv_refresh=2),
    ]
    labels = torch.tensor([0, 1])

    def run(config):
        return sample_codes(random_bigr, labels, config, generator=torch.Generator().manual_seed(0))

    eager = [run(config) for config in configs]
    keys = list(random_bigr.state_dict())
    compile_backbone(random_bigr, backend="eager")  # dynamo's tracing, without code generation
    for config, expected in zip(configs, eager, strict=True):
        assert torch.equal(run(config), expected)
    assert list(random_bigr.state_dict()) == keys  # no `_orig_mod.` prefix: caches stay keyed
    for name in ("forward", "forward_keep", "reuse_blocks"):  # the instance runs compiled ones
        assert name in vars(random_bigr.transformer)
