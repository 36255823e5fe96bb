"""The Python entry point agrees with the command line (same recipe, same seed, same codes),
returns one result type, refuses bad input clearly, and its documented examples run."""

import dataclasses
import doctest
import importlib

import numpy as np
import pytest
import torch

import bigr
from bigr import Images, Pipeline
from bigr.cli import main

EXAMPLE = "src/bigr/assets/fashion/examples/3_tshirt_test19.png"


@pytest.fixture(scope="module")
def pipe():
    return Pipeline.from_pretrained("bigr:fashion")


DOCUMENTED = ["bigr.pipeline", "bigr.model", "bigr.sampler_plan", "bigr.sampler", "bigr.recipes",
              "bigr.tokenizer", "bigr.config.models"]  # fmt: skip


@pytest.mark.parametrize("name", DOCUMENTED)
def test_the_documented_examples_run(name):
    failed, attempted = doctest.testmod(importlib.import_module(name), verbose=False)
    assert attempted > 0 and failed == 0


def test_every_public_name_has_a_docstring_with_an_example():
    for name in bigr.__all__:
        if name == "PRESETS":  # a dict of configs
            continue
        doc = getattr(bigr, name).__doc__ or ""
        assert ">>>" in doc, name
    assert ">>>" in bigr.BiGR.from_pretrained.__doc__


def test_generate_draws_what_bigr_sample_draws(pipe, tmp_path):
    codes_file = tmp_path / "codes.pt"
    argv = ["sample", "--model", "bigr:fashion", "--classes", "sneaker,2", "--num", "2"]
    argv += ["--steps", "4", "--head-steps", "5", "--seed", "3"]
    assert main([*argv, "--codes-out", str(codes_file), "--out", str(tmp_path / "s.png")]) == 0
    cli_codes = torch.load(codes_file, weights_only=True)
    out = pipe.generate(["sneaker", 2], num=2, seed=3, steps=4, head_steps=5)
    assert isinstance(out, Images)
    assert torch.equal(out.codes, cli_codes.cpu())
    assert out.images.shape == (4, 3, 32, 32)


def test_every_method_starts_from_the_recipe_its_command_starts_from(pipe):
    from bigr.recipes import recipe

    starts = {
        "generate": "recommended",
        "inpaint": "edit",
        "edit": "edit",
        "interpolate": "interpolate",
        "enrich": "enrich",
    }
    for method, name in starts.items():
        assert pipe._sampler(method, None, {}) == recipe(name, "bigr:fashion"), method
    assert pipe.recipe("fast") == recipe("fast", "bigr:fashion")
    assert pipe.recipe("release", steps=3).steps == 3


def test_inpaint_is_the_command_lines_inpaint(pipe, tmp_path):
    from PIL import Image

    out = tmp_path / "fill.png"
    argv = ["inpaint", "--model", "bigr:fashion", "--image", EXAMPLE]
    argv += ["--box", "0.25,0.25,0.75,0.75"]
    assert main([*argv, "--steps", "3", "--head-steps", "4", "--out", str(out)]) == 0
    result = pipe.inpaint(EXAMPLE, (0.25, 0.25, 0.75, 0.75), steps=3, head_steps=4)
    with Image.open(out) as image:
        cli = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32))
    ours = (result.images[0].permute(1, 2, 0) * 255).round()
    assert torch.equal(ours, cli)


def test_every_method_calls_its_app_with_the_commands_recipe_and_seed(pipe):
    from bigr.apps import box_mask, edit, interpolate
    from bigr.data.images import load_image
    from bigr.recipes import recipe

    fast = {"steps": 2, "head_steps": 2}
    image = load_image(EXAMPLE, 32)
    result = pipe.edit(EXAMPLE, (0, 0, 1, 1), "dress", num=2, seed=5, **fast)
    sampler = dataclasses.replace(recipe("edit", "bigr:fashion"), **fast)
    expected = edit(pipe.model, pipe.tokenizer, image, box_mask(32, (0, 0, 1, 1)), 3, num=2,
                    sampler=sampler, generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert torch.equal(result.codes, expected.codes)
    assert torch.equal(result.images, expected.images)
    frames = pipe.interpolate("sneaker", "ankle boot", num=3, seed=2, **fast)
    sampler = dataclasses.replace(recipe("interpolate", "bigr:fashion"), **fast)
    images, codes = interpolate(pipe.model, pipe.tokenizer, 7, 9, [0.0, 0.5, 1.0],
                                sampler=sampler, seed=2)  # fmt: skip
    assert torch.equal(frames.codes, codes) and torch.equal(frames.images, images)
    for other in (
        pipe.outpaint(EXAMPLE, (0.25, 0.25, 0.75, 0.75), **fast),
        pipe.enrich(EXAMPLE, rounds=1, **fast),
    ):
        assert isinstance(other, Images) and other.codes.shape[1:] == (64, 32)
    features = pipe.features([EXAMPLE, EXAMPLE], layer=-1)
    assert torch.equal(features[0], features[1])  # deterministic codes: same image, same vector
    codes = pipe.tokenizer.encode(image[None], stochastic=False).codes
    assert torch.allclose(features[:1], pipe.model.pooled_features(codes, layer=-1))


def test_bad_input_is_refused_with_a_clear_error(pipe):
    with pytest.raises(ValueError, match="not a class"):
        pipe.generate("zebra")
    with pytest.raises(ValueError, match="out of range"):
        pipe.generate(10)
    with pytest.raises(ValueError, match="give classes"):
        pipe.generate()
    with pytest.raises(TypeError, match="bool"):
        pipe.inpaint(EXAMPLE, torch.ones(32, 32, dtype=torch.uint8) * 255)
    with pytest.raises(ValueError, match="32x32"):
        pipe.inpaint(EXAMPLE, torch.ones(16, 16, dtype=torch.bool))
    with pytest.raises(IndexError, match="out of range"):
        pipe.features(EXAMPLE, layer=8)
    with pytest.raises(ValueError, match="CUDA"):
        Pipeline.from_pretrained("bigr:fashion", device="cuda:99")
    assert bigr.Pipeline is Pipeline
