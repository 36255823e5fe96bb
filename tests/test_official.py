import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from bigr import schedules
from bigr.config import (
    PRESETS,
    RELEASED_BIGR,
    RELEASED_TOKENIZERS,
    BiGRConfig,
    HeadConfig,
    TokenizerConfig,
)
from bigr.model import BiGR, build_model, count_parameters
from bigr.official import (
    BAE_PREFIXES,
    BIGR_ALIAS,
    BIGR_PREFIXES,
    BIGR_SCHEDULER,
    ConversionError,
    bigr_config_from_model_args,
    convert_state_dict,
    infer_bigr_config,
    infer_config,
    infer_tokenizer_config,
    load_official_file,
    official_key_shapes,
    read_official_checkpoint,
    tokenizer_config_from_hparams,
)
from bigr.tokenizer import BinaryAutoencoder

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


# -- configuration inferred from the checkpoint ------------------------------------------------

# An architecture no preset has: GQA, 20 bits, a 5x5 grid, 7 classes, a one-block head.
UNUSUAL = BiGRConfig(
    dim=96,
    depth=3,
    heads=6,
    kv_heads=2,
    code_bits=20,
    grid_size=5,
    num_classes=7,
    head=HeadConfig(dim=48, depth=1),
)


def _official_layout(model):
    """The package's state dict under the release's key names (written for these tests): every
    key of `official_key_shapes`, with the denoiser alias and the schedule buffers."""
    package = model.state_dict()
    config = model.config
    out = {}
    for key in official_key_shapes(config):
        if key.startswith(BIGR_SCHEDULER):
            table = key[len(BIGR_SCHEDULER) :]
            out[key] = schedules.noise_tables(config.head.diffusion_steps)[table]
            continue
        name = BIGR_ALIAS[1] + key[len(BIGR_ALIAS[0]) :] if key.startswith(BIGR_ALIAS[0]) else key
        for official, ours in BIGR_PREFIXES:
            if official.endswith(".") and name.startswith(official):
                out[key] = package[ours + name[len(official) :]].clone()
                break
            if name == official:
                out[key] = package[ours].clone()
                break
    assert set(out) == set(official_key_shapes(config))
    return out


def _random_model(config, seed=0):
    """A model whose zero-initialised layers are made non-zero, so every weight matters."""
    torch.manual_seed(seed)
    model = BiGR(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape))
    return model


def _outputs(model, config, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = config.num_tokens
    codes = torch.randint(0, 2, (2, n, config.code_bits), generator=g).float()
    labels = torch.randint(0, config.num_classes, (2,), generator=g)
    mask = torch.rand(2, n, generator=g) < 0.5
    with torch.no_grad():
        z = model.transformer(codes, labels, mask)
        logits = model.head.denoiser(
            codes.flatten(0, 1), torch.zeros(2 * n, dtype=torch.long), z.flatten(0, 1)
        )
    return z, logits


def save_unusual_checkpoint(path, **args):
    """Write UNUSUAL, with random weights, as the release writes a checkpoint: the weights under
    `ema` in the official layout, the build arguments as an argparse.Namespace under `args`."""
    model = _random_model(UNUSUAL)
    torch.save({"ema": _official_layout(model), "args": argparse.Namespace(**args)}, path)
    return model


@pytest.fixture
def unusual_checkpoint(tmp_path):
    path = tmp_path / "unusual.pt"
    model = save_unusual_checkpoint(
        path, n_head=6, image_size=80, p_flip=True, results_dir="results"
    )
    return path, model


def test_tiny_checkpoint_gives_the_reference_build_arguments(reference_dir, tiny_official):
    """No preset: shapes plus the stored args (builder "custom-tiny", no n_head) give exactly
    the configuration the reference data was made with, hence its numerics."""
    checkpoint = read_official_checkpoint(reference_dir / "tiny" / "tiny_bigr_ckpt.pt", "bigr")
    assert checkpoint.args["model"] == "custom-tiny" and "n_head" not in checkpoint.args
    inferred = infer_config(checkpoint, "bigr")
    meta = json.loads((reference_dir / "tiny" / "tiny_reference.json").read_text())
    assert inferred.config == bigr_config_from_model_args(meta["model_args"])
    assert inferred.config == PRESETS["bigr-tiny"]
    assert inferred.sources["dim"] == "mask_tok"
    assert "custom-tiny" in inferred.sources["heads"]


@pytest.mark.parametrize("preset", RELEASED_BIGR)
def test_released_shapes_and_script_arguments_give_the_presets(reference_dir, preset):
    manifest = _manifest(reference_dir, preset)
    fake = {k: torch.empty(v["shape"], device="meta") for k, v in manifest["state_dict"].items()}
    args = manifest["release_cli_args_relevant"]  # builder name, no n_head
    assert infer_bigr_config(fake, args).config == PRESETS[preset]
    # the full ModelArgs give the same
    assert infer_bigr_config(fake, manifest["model_args_effective"]).config == PRESETS[preset]
    # a file holding only the weights: heads are the one thing missing
    heads = PRESETS[preset].heads
    with pytest.raises(ConversionError, match=rf"--set heads=N .*heads={heads}"):
        infer_bigr_config(fake)
    assert infer_bigr_config(fake, overrides=[f"heads={heads}"]).config == PRESETS[preset]
    assert infer_bigr_config(fake, preset=PRESETS[preset]).config == PRESETS[preset]


@pytest.mark.parametrize("preset", RELEASED_TOKENIZERS)
def test_released_tokenizer_shapes_give_the_presets(reference_dir, preset):
    manifest = _manifest(reference_dir, preset)
    fake = {k: torch.empty(v["shape"], device="meta") for k, v in manifest["state_dict"].items()}
    assert infer_tokenizer_config(fake).config == PRESETS[preset]
    assert infer_tokenizer_config(fake, manifest["hparams_effective"]).config == PRESETS[preset]


def test_unusual_checkpoint_converts_without_a_preset(unusual_checkpoint):
    path, model = unusual_checkpoint
    checkpoint = read_official_checkpoint(path, "bigr")
    inferred = infer_config(checkpoint, "bigr")
    assert inferred.config == UNUSUAL
    assert inferred.sources["heads"] == "args n_head"
    assert "2 key/value heads" in inferred.sources["kv_heads"]
    state, _ = convert_state_dict(checkpoint.state, inferred.config)
    loaded = BiGR(inferred.config).eval()
    loaded.load_state_dict(state, strict=True)
    for a, b in zip(_outputs(loaded, UNUSUAL), _outputs(model, UNUSUAL), strict=True):
        assert torch.equal(a, b)


def test_without_n_head_the_error_names_the_flag(unusual_checkpoint):
    path, _ = unusual_checkpoint
    state = read_official_checkpoint(path, "bigr").state
    with pytest.raises(ConversionError, match="--set heads="):
        infer_bigr_config(state, {"p_flip": True})
    with pytest.raises(ConversionError, match=r"builder 'BiGR-L' has dim 1024.*--set heads=N"):
        infer_bigr_config(state, {"model": "BiGR-L"})
    assert infer_bigr_config(state, overrides=["heads=6"]).config == UNUSUAL
    # heads that no key/value count fits the fused q|k|v rows of are refused, naming the flag
    with pytest.raises(ConversionError, match=r"wqkv.weight has 160 rows.*--set heads=N"):
        infer_bigr_config(state, {"n_head": 8})


def test_stored_arguments_that_contradict_the_weights_are_refused(unusual_checkpoint):
    state = read_official_checkpoint(unusual_checkpoint[0], "bigr").state
    with pytest.raises(ConversionError, match="binary_size=24, but the weights have code bits"):
        infer_bigr_config(state, {"n_head": 6, "binary_size": 24})
    with pytest.raises(ConversionError, match="does not fit num_classes=1000"):
        infer_bigr_config(state, {"n_head": 6, "num_classes": 1000})
    # 8 rows and 7 classes: the null row shows a class dropout, which the args deny
    with pytest.raises(ConversionError, match="class_dropout_prob is 0"):
        infer_bigr_config(state, {"n_head": 6, "num_classes": 7, "class_dropout_prob": 0.0})
    # a table without the null row: 8 classes, no label dropout
    config = infer_bigr_config(state, {"n_head": 6, "num_classes": 8}).config
    assert (config.num_classes, config.class_dropout) == (8, 0.0)


def test_ffn_rounding_is_found_from_args_or_by_search():
    # dim 80: 2*4*80/3 -> 213, which multiple_of 32 rounds to 224 (256 would give 256)
    config = BiGRConfig(dim=80, depth=1, heads=5, multiple_of=32, code_bits=8, grid_size=2)
    official = _official_layout(BiGR(config))
    assert infer_bigr_config(official, {"n_head": 5}).config == config
    found = infer_bigr_config(official, {"n_head": 5}).sources["multiple_of"]
    assert "224" in found and "search" in found
    # a multiplier is only found where the args give it
    config = dataclasses.replace(config, multiple_of=64, ffn_multiplier=1.5)  # 213*1.5 -> 320
    official = _official_layout(BiGR(config))
    args = {"n_head": 5, "multiple_of": 64, "ffn_dim_multiplier": 1.5}
    assert infer_bigr_config(official, args).config == config
    with pytest.raises(ConversionError, match="--set multiple_of=N"):
        infer_bigr_config(official, {"n_head": 5})


def test_a_namespace_of_arguments_loads_under_weights_only(tmp_path, tiny_official):
    args = argparse.Namespace(
        model="custom-tiny",
        num_classes=10,
        ratios=(0.5, 1.0),
        extra={"not": "plain"},
        lr=1e-4,
        resume=None,
    )
    path = tmp_path / "ns.pt"
    torch.save({"ema": tiny_official, "args": args}, path)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)  # what the release's files do without the allow-list
    checkpoint = read_official_checkpoint(path, "bigr")
    assert checkpoint.args == {
        "model": "custom-tiny",
        "num_classes": 10,
        "ratios": [0.5, 1.0],
        "lr": 1e-4,
        "resume": None,
    }
    assert infer_config(checkpoint, "bigr").config == PRESETS["bigr-tiny"]
    # code is still refused, in one line
    torch.save({"ema": tiny_official, "args": argparse.Namespace(out=Path("x"))}, path)
    with pytest.raises(ConversionError, match=r"holds a pathlib.*PosixPath object") as err:
        read_official_checkpoint(path, "bigr")
    assert "\n" not in str(err.value)


def test_tokenizer_of_unknown_shape_needs_its_image_size(reference_dir, tmp_path):
    config = TokenizerConfig(
        base_channels=32,
        channel_mult=(1, 2),
        res_blocks=1,
        decoder_res_blocks=2,
        attn_resolutions=(6,),
        latent_channels=32,
        code_bits=12,
        image_size=12,
    )
    torch.manual_seed(0)
    model = BinaryAutoencoder(config)
    package = model.state_dict()
    official = {}
    for key, shape in official_key_shapes(config).items():
        name = next(
            (ours + key[len(theirs) :] for theirs, ours in BAE_PREFIXES if key.startswith(theirs)),
            None,
        )
        official[f"ae.{key}"] = package[name] if name in package else torch.randn(shape)
    official["disc.main.0.weight"] = torch.zeros(4, 3, 4, 4)
    with pytest.raises(ConversionError, match="--set image_size=N"):
        infer_tokenizer_config(official)
    assert infer_tokenizer_config(official, overrides=["image_size=12"]).config == config
    assert infer_tokenizer_config(official, {"img_size": 12}).config == config
    with pytest.raises(ConversionError, match="nf=64"):
        infer_tokenizer_config(official, {"img_size": 12, "nf": 64})
    # the tiny reference tokenizer matches the bae-tiny preset, image size included
    state = load_official_file(reference_dir / "tiny_bae" / "tiny_binaryae_ema.th", "bae")
    assert infer_tokenizer_config(state).config == PRESETS["bae-tiny"]
