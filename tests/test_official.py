import json

import pytest
import torch

from bigr.config import PRESETS, RELEASED_BIGR, RELEASED_TOKENIZERS
from bigr.model import build_model, count_parameters
from bigr.official import (
    ConversionError,
    bigr_config_from_model_args,
    convert_state_dict,
    load_official_file,
    official_key_shapes,
    tokenizer_config_from_hparams,
)

MANIFEST = {
    "bigr-l-d24": "bigr_L_d24",
    "bigr-xl-d24": "bigr_XL_d24",
    "bigr-xxl-d24": "bigr_XXL_d24",
    "bigr-xxl-d32": "bigr_XXL_d32",
    "bigr-l-d32-512": "bigr_L_d32_512",
    "bae-d24": "bae_d24",
    "bae-d32": "bae_d32",
    "bae-d32-512": "bae_d32_512",
}
# Tensors the package does not keep, by name: the B-AE's unused `generator.logsigma` head and
# the 1x1 skip convs of residual blocks whose width does not change.
DEAD_BAE_PARAMETERS = 2_496_899


def _manifest(reference_dir, preset):
    return json.loads((reference_dir / "manifests" / f"{MANIFEST[preset]}.json").read_text())


@pytest.mark.parametrize("preset", RELEASED_BIGR + RELEASED_TOKENIZERS)
def test_conversion_accounts_for_every_manifest_key(reference_dir, preset):
    manifest = _manifest(reference_dir, preset)
    shapes = {k: tuple(v["shape"]) for k, v in manifest["state_dict"].items()}
    assert official_key_shapes(PRESETS[preset]) == shapes
    fake = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    converted, report = convert_state_dict(fake, PRESETS[preset])
    with torch.device("meta"):
        model = build_model(PRESETS[preset])
    assert {k: tuple(v.shape) for k, v in converted.items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()
    }
    accounted = (
        report.mapped
        + len(report.aliases_checked)
        + len(report.buffers_checked)
        + len(report.dead_dropped)
    )
    assert accounted == len(shapes)


@pytest.mark.parametrize("preset", RELEASED_BIGR + RELEASED_TOKENIZERS)
def test_parameter_counts_match_the_manifests(reference_dir, preset):
    expected = _manifest(reference_dir, preset)["counts"]["total_parameters_unique"]
    with torch.device("meta"):
        n = count_parameters(build_model(PRESETS[preset]))
    dead = DEAD_BAE_PARAMETERS if preset.startswith("bae") else 0
    assert n == expected - dead


def test_released_build_arguments_give_the_presets(reference_dir):
    for preset in RELEASED_BIGR:
        args = _manifest(reference_dir, preset)["model_args_effective"]
        assert bigr_config_from_model_args(args) == PRESETS[preset]
    for preset in RELEASED_TOKENIZERS:
        hparams = _manifest(reference_dir, preset)["hparams_effective"]
        assert tokenizer_config_from_hparams(hparams) == PRESETS[preset]


@pytest.fixture
def tiny_official(reference_dir):
    return load_official_file(reference_dir / "tiny" / "tiny_bigr_ckpt.pt", "bigr")


def test_tiny_checkpoint_loads_from_ema_not_model(reference_dir, tiny_official):
    raw = torch.load(reference_dir / "tiny" / "tiny_bigr_ckpt.pt", weights_only=True)
    assert torch.equal(tiny_official["mask_tok"], raw["ema"]["mask_tok"])
    assert not torch.equal(tiny_official["mask_tok"], raw["model"]["mask_tok"])


def test_wrapper_prefixes_and_half_precision_are_accepted(tiny_official):
    wrapped = {
        f"module._orig_mod.{k}": v.to(torch.bfloat16) if v.is_floating_point() else v
        for k, v in tiny_official.items()
    }
    wrapped = {k: v for k, v in wrapped.items() if "scheduler" not in k}
    wrapped |= {f"module.{k}": v for k, v in tiny_official.items() if "scheduler" in k}
    converted, _ = convert_state_dict(wrapped, PRESETS["bigr-tiny"])
    assert all(v.dtype == torch.float32 for v in converted.values())


def test_unknown_missing_and_misshaped_keys_are_named(tiny_official):
    bad = dict(tiny_official)
    bad["extra.weight"] = torch.zeros(1)
    del bad["norm.weight"]
    bad["mask_tok"] = torch.zeros(1, 3)
    with pytest.raises(ConversionError) as err:
        convert_state_dict(bad, PRESETS["bigr-tiny"])
    message = str(err.value)
    assert "unknown keys: extra.weight" in message
    assert "missing keys: norm.weight" in message
    assert "mask_tok (1, 3)" in message


def test_alias_and_schedule_buffers_are_checked(tiny_official):
    bad = dict(tiny_official)
    key = "diffusion_processor._denoise_fn.x_embedder.bias"
    bad[key] = bad[key] + 1
    with pytest.raises(ConversionError, match="should be a copy"):
        convert_state_dict(bad, PRESETS["bigr-tiny"])
    bad = dict(tiny_official)
    bad["diffusion_processor.scheduler.beta"] = bad["diffusion_processor.scheduler.beta"] * 0.5
    with pytest.raises(ConversionError, match="closed-form"):
        convert_state_dict(bad, PRESETS["bigr-tiny"])


def test_tokenizer_file_drops_training_only_and_dead_tensors(reference_dir):
    state = load_official_file(reference_dir / "tiny_bae" / "tiny_binaryae_ema.th", "bae")
    converted, report = convert_state_dict(state, PRESETS["bae-tiny"])
    assert report.training_only_dropped == sum(
        k.startswith(("disc.", "perceptual.")) for k in state
    )
    assert any("logsigma" in k for k in report.dead_dropped)
    assert all(k.split(".")[0] in {"encoder", "binarizer", "decoder"} for k in converted)


def test_unreadable_files_are_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConversionError, match="cannot be read"):
        load_official_file(bad, "bigr")
    with pytest.raises(ConversionError, match="no such file"):
        load_official_file(tmp_path / "missing.pt", "bigr")


def test_a_bigr_checkpoint_given_to_convert_bae_points_to_convert_bigr(reference_dir):
    ckpt = reference_dir / "tiny" / "tiny_bigr_ckpt.pt"
    with pytest.raises(ConversionError, match="convert it with `bigr convert bigr`"):
        load_official_file(ckpt, "bae")
