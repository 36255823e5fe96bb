import pytest

from bigr.config import (
    PRESETS,
    BiGRConfig,
    HeadConfig,
    TokenizerConfig,
    apply_overrides,
    config_from_json,
    config_to_json,
)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json(name):
    config = PRESETS[name]
    config.validate()
    assert config_from_json(config_to_json(config)) == config


def test_swiglu_hidden_sizes_match_the_release():
    # bigr-spec.md §2.2: find_multiple(int(8 dim / 3), 256)
    assert PRESETS["bigr-l-d24"].ffn_hidden == 2816
    assert PRESETS["bigr-xl-d24"].ffn_hidden == 3584
    assert PRESETS["bigr-xxl-d24"].ffn_hidden == 4096


def test_tokenizer_grid_follows_image_size_and_levels():
    assert PRESETS["bae-d24"].grid_size == 16
    assert PRESETS["bae-d32-512"].grid_size == 32
    assert TokenizerConfig(channel_mult=(1, 2), image_size=32, attn_resolutions=()).grid_size == 16


def test_overrides_reach_nested_fields_and_keep_types():
    config = apply_overrides(
        PRESETS["bigr-tiny"], ["head.dim=32", "class_dropout=0", "use_adaln=false"]
    )
    assert config.head.dim == 32
    assert config.class_dropout == 0.0 and isinstance(config.class_dropout, float)
    assert config.use_adaln is False
    tok = apply_overrides(PRESETS["bae-tiny"], ["channel_mult=[1,2]", "attn_resolutions=8"])
    assert tok.channel_mult == (1, 2) and tok.attn_resolutions == (8,)


def test_unknown_fields_are_refused():
    with pytest.raises(ValueError, match="no field 'widht'"):
        apply_overrides(PRESETS["bigr-tiny"], ["widht=3"])
    data = config_to_json(PRESETS["bigr-tiny"])
    data["head"]["colour"] = 1
    with pytest.raises(ValueError, match="colour"):
        config_from_json(data)


def test_invalid_shapes_are_reported():
    with pytest.raises(ValueError, match="divisible"):
        BiGRConfig(dim=100, heads=3, head=HeadConfig()).validate()
    with pytest.raises(ValueError, match="multiple of 32"):
        TokenizerConfig(base_channels=40).validate()


def test_a_config_written_with_head_width_reads_as_head_dim_and_writes_dim():
    # files written before the rename store the head's width as "width"
    config = PRESETS["bigr-tiny"]
    data = config_to_json(config)
    assert "dim" in data["head"] and "width" not in data["head"]
    data["head"] = {("width" if k == "dim" else k): v for k, v in data["head"].items()}
    assert config_from_json(data) == config
    data["head"]["dim"] = 32  # both spellings: the old one is refused, not silently chosen
    with pytest.raises(ValueError, match="unknown HeadConfig fields: width"):
        config_from_json(data)
