import torch

from bigr.config import PRESETS


def _inputs(config, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2, (batch, config.num_tokens, config.code_bits), generator=g).float()
    labels = torch.randint(0, config.num_classes, (batch,), generator=g)
    mask = torch.rand(batch, config.num_tokens, generator=g) < 0.5
    return codes, labels, mask


def test_output_shape_and_dependence_on_the_class(tiny_bigr):
    tr = tiny_bigr.transformer
    codes, labels, mask = _inputs(tr.config)
    z = tr(codes, labels, mask)
    assert z.shape == (2, tr.config.num_tokens, tr.config.dim)
    assert not torch.allclose(z, tr(codes, (labels + 1) % tr.config.num_classes, mask))


def test_masked_positions_ignore_their_bits(tiny_bigr):
    tr = tiny_bigr.transformer
    codes, labels, mask = _inputs(tr.config)
    flipped = torch.where(mask.unsqueeze(-1), 1 - codes, codes)
    assert torch.allclose(tr(codes, labels, mask), tr(flipped, labels, mask), atol=1e-6)
    # ...while an unmasked token's bits matter to every position (bidirectional attention)
    visible = (~mask[0]).nonzero()[0, 0]
    changed = codes.clone()
    changed[0, visible] = 1 - changed[0, visible]
    z, z2 = tr(codes, labels, mask), tr(changed, labels, mask)
    assert not torch.allclose(z[0, 0], z2[0, 0]) and not torch.allclose(z[0, -1], z2[0, -1])


def test_label_mix_with_one_hot_weights_equals_the_label(tiny_bigr):
    tr = tiny_bigr.transformer
    codes, labels, mask = _inputs(tr.config)
    pair = torch.stack([labels, (labels + 3) % tr.config.num_classes], dim=1)
    weights = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert torch.allclose(
        tr(codes, pair, mask, condition_weights=weights), tr(codes, labels, mask), atol=1e-6
    )


def test_features_stop_after_the_requested_block(tiny_bigr):
    tr = tiny_bigr.transformer
    codes, _, _ = _inputs(tr.config)
    f0, f1 = tr.features(codes, 0), tr.features(codes, 1)
    assert f0.shape == (2, tr.config.num_tokens, tr.config.dim)
    assert not torch.allclose(f0, f1)
    assert torch.equal(tr.features(codes, 1), tr.features(codes, -1))  # -1: the last block


def test_label_dropout_uses_the_null_class():
    from bigr.transformer import BiGRTransformer

    tr = BiGRTransformer(PRESETS["bigr-tiny"])
    labels = torch.arange(10)
    dropped = tr.drop_labels(labels.repeat(100), torch.Generator().manual_seed(0))
    frac = (dropped == tr.config.null_class).float().mean().item()
    assert 0.05 < frac < 0.15
    assert tr.class_embed.num_embeddings == 11


def test_plain_blocks_without_adaln_build_and_run():
    import dataclasses

    from bigr.transformer import BiGRTransformer

    config = dataclasses.replace(PRESETS["bigr-tiny"], use_adaln=False)
    tr = BiGRTransformer(config).eval()
    assert tr.adaln is None and tr.layers[0].ada_gss is None
    codes, labels, mask = _inputs(config)
    assert tr(codes, labels, mask).shape == (2, 16, 64)


def test_class_dropout_one_trains_unconditionally():
    import dataclasses

    from bigr.config import PRESETS
    from bigr.model import BiGR

    config = dataclasses.replace(PRESETS["bigr-tiny"], class_dropout=1.0)
    config.validate()
    model = BiGR(config)
    labels = torch.arange(10)
    dropped = model.transformer.drop_labels(labels, torch.Generator().manual_seed(0))
    assert torch.equal(dropped, torch.full_like(labels, config.null_class))


def test_a_bfloat16_copy_keeps_a_float32_rotary_table_and_tracks_float32(tiny_bigr):
    import copy

    tr = tiny_bigr.transformer
    half = copy.deepcopy(tr).to(torch.bfloat16)
    assert half.mask_token.dtype == torch.bfloat16
    assert half.rope.dtype == torch.float32 and torch.equal(half.rope, tr.rope)
    codes, labels, mask = _inputs(tr.config)
    z = tr(codes, labels, mask)
    z_half = half(codes.bfloat16(), labels, mask)
    assert z_half.dtype == torch.bfloat16
    assert (z_half.float() - z).abs().max() < 0.05 * z.abs().max()
