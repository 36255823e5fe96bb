"""Hostile numbers, devices and conditions at the command line and in the Python API: each is
refused with one clear line and a non-zero exit, and no earlier output is destroyed."""

import pytest
import torch

from bigr.sampler import SamplerConfig, sample_codes
from helpers import assert_one_clear_error

EMBEDDED = ["--model", "bigr:fashion"]

CLI_CASES = {
    "num negative": (["sample", *EMBEDDED, "--classes", "1", "--num", "-3"], "--num: must be in"),
    "num zero": (["sample", *EMBEDDED, "--classes", "1", "--num", "0"], "--num: must be in"),
    "num huge": (["sample", *EMBEDDED, "--classes", "1", "--num", "10000000"], "--num: must be in"),
    "num not a number": (["sample", *EMBEDDED, "--classes", "1", "--num", "x"], "not an integer"),
    "steps huge": (["sample", *EMBEDDED, "--classes", "1", "--steps", "100000000"], "--steps"),
    "steps zero": (["sample", *EMBEDDED, "--classes", "1", "--steps", "0"], "--steps"),
    "head steps huge": (["sample", *EMBEDDED, "--classes", "1", "--head-steps", "99999"], "head"),
    "guidance nan": (["sample", *EMBEDDED, "--classes", "1", "--guidance", "nan"], "finite"),
    "guidance inf": (["sample", *EMBEDDED, "--classes", "1", "--guidance", "inf"], "finite"),
    "guidance negative": (["sample", *EMBEDDED, "--classes", "1", "--guidance", "-1"], ">= 0"),
    "gumbel nan": (["sample", *EMBEDDED, "--classes", "1", "--gumbel", "nan"], "finite"),
    "gumbel negative": (["sample", *EMBEDDED, "--classes", "1", "--gumbel", "-0.5"], ">= 0"),
    "head temperature zero": (
        ["sample", *EMBEDDED, "--classes", "1", "--head-temperature", "0"],
        "> 0",
    ),
    "head temperature negative": (
        ["sample", *EMBEDDED, "--classes", "1", "--head-temperature", "-2"],
        "> 0",
    ),
    "device bogus": (["sample", *EMBEDDED, "--classes", "1", "--device", "bogus"], "not a device"),
    "device cuda without a GPU": (
        ["sample", *EMBEDDED, "--classes", "1", "--device", "cuda:7"],
        "cuda",
    ),
    "unknown recipe": (["sample", *EMBEDDED, "--classes", "1", "--recipe", "fastest"], "known:"),
    "class out of range": (["sample", *EMBEDDED, "--classes", "10"], "class"),
    "class negative": (["sample", *EMBEDDED, "--classes", "-1"], "class"),
    "classes not numbers": (["sample", *EMBEDDED, "--classes", "a,b"], "not a class"),
    "class name not of the model": (["sample", *EMBEDDED, "--classes", "zebra"], "Ankle boot"),
    "prompt for a class model": (["sample", *EMBEDDED, "--prompt", "a dress"], "--classes"),
    "interpolate one frame": (
        ["interpolate", *EMBEDDED, "--classes", "1,2", "--num", "1"],
        "--num: must be in",
    ),
    "interpolate three classes": (["interpolate", *EMBEDDED, "--classes", "1,2,3"], "exactly two"),
    "sample-fid num zero": (["sample-fid", *EMBEDDED, "--num", "0"], "--num: must be in"),
    "tune num one": (["tune-recipe", *EMBEDDED, "--num", "1"], "--num: must be in"),
    "tune axis value out of range": (
        ["tune-recipe", *EMBEDDED, "--num", "4", "--sweep-guidance", "1.5,-2"],
        "sweep guidance value -2.0: guidance must be in [0, 1000]",
    ),
    "tune axis steps zero": (
        ["tune-recipe", *EMBEDDED, "--num", "4", "--sweep-steps", "8,0"],
        "sweep steps value 0: steps must be in 1..1000",
    ),
    "tune axis head steps past the model": (
        ["tune-recipe", *EMBEDDED, "--num", "4", "--sweep-head-steps", "25,300"],
        "sweep head-steps value 300 exceeds the model's 256 diffusion steps",
    ),
    "guidance past the range": (
        ["sample", *EMBEDDED, "--classes", "1", "--guidance", "1e300"],
        "[0, 1000]",
    ),
    "head temperature near zero": (
        ["sample", *EMBEDDED, "--classes", "1", "--head-temperature", "1e-30"],
        "head_temperature must be in",
    ),
    "bench batch zero": (["bench", "sample", "--batch", "0"], "--batch: must be in 1..4096"),
    "bench repeats negative": (["bench", "train", "--repeats", "-1"], "--repeats: must be in"),
    "missing model": (["sample", "--model", "/nonexistent/model", "--classes", "1"], "no such"),
    "a file as model": (["sample", "--model", "README.md", "--classes", "1"], "is a file"),
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_hostile_command_lines_fail_with_one_clear_line(case, tmp_path, capsys):
    argv, message = CLI_CASES[case]
    needs_out = argv[0] in ("sample", "interpolate", "sample-fid", "tune-recipe")
    assert_one_clear_error(argv, message, tmp_path / "out.png", capsys, add_out=needs_out)


@pytest.fixture(scope="module")
def tiny():
    from bigr.config import PRESETS
    from bigr.model import BiGR

    torch.manual_seed(0)
    return BiGR(PRESETS["bigr-tiny"]).eval()


FAST = SamplerConfig(steps=2, head_steps=2)

API_CASES = {
    "float labels": (torch.tensor([1.0, 2.0]), "integers"),
    "bool labels": (torch.tensor([True]), "integers"),
    "labels out of range": (torch.tensor([11]), r"in 0\.\.10"),
    "negative labels": (torch.tensor([-1]), r"in 0\.\.10"),
    "2-D labels without weights": (torch.tensor([[1, 2]]), "shape"),
    "empty labels": (torch.zeros(0, dtype=torch.long), "at least one"),
    "a list, not a tensor": ([1, 2], "must be a tensor"),
}


@pytest.mark.parametrize("case", API_CASES)
def test_hostile_conditions_in_the_python_api_raise_value_errors(tiny, case):
    labels, message = API_CASES[case]
    with pytest.raises(ValueError, match=message):
        sample_codes(tiny, labels, FAST)


SAMPLER_CASES = {
    "steps zero": (dict(steps=0), "steps must be in"),
    "steps float": (dict(steps=2.5), "steps must be an integer"),
    "steps huge": (dict(steps=10**9), "steps must be in"),
    "head steps zero": (dict(head_steps=0), "head_steps must be in"),
    "guidance nan": (dict(guidance=float("nan")), "guidance must be finite"),
    "gumbel inf": (dict(gumbel=float("inf")), "gumbel must be finite"),
    "head temperature zero": (dict(head_temperature=0.0), "head_temperature must be > 0"),
    "guidance a string": (dict(guidance="3"), "guidance must be a number"),
    "unknown order": (dict(order="spiral"), "order must be one of"),
    "unknown bits": (dict(bits="coin"), "bits must be one of"),
    "unknown schedule": (dict(schedule="zigzag"), "schedule must be one of"),
    "unknown gumbel ramp": (dict(gumbel_schedule="sideways", gumbel=0.1), "Gumbel schedule"),
}


@pytest.mark.parametrize("case", SAMPLER_CASES)
def test_hostile_sampler_settings_raise_value_errors(tiny, case):
    changes, message = SAMPLER_CASES[case]
    with pytest.raises(ValueError, match=message):
        sample_codes(tiny, torch.tensor([1]), SamplerConfig(**{**FAST.__dict__, **changes}))


def test_head_steps_beyond_the_models_diffusion_steps_are_refused(tiny):
    with pytest.raises(ValueError, match="exceeds the model's 256 diffusion steps"):
        sample_codes(tiny, torch.tensor([1]), SamplerConfig(steps=1, head_steps=300))
