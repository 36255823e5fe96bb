"""Broken model directories are refused on load with one line naming the file and the field."""

import json
import pickle
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from bigr.checkpoint import CheckpointError
from bigr.model import BiGR


@pytest.fixture
def model_dir(tiny_bigr, tmp_path):
    return tiny_bigr.save_pretrained(tmp_path / "m")


def _edit_config(path, change):
    data = json.loads((path / "config.json").read_text())
    change(data)
    (path / "config.json").write_text(json.dumps(data))


CONFIG_CASES = {
    "dim is a string": (lambda d: d.update(dim="64"), "dim must be an integer"),
    "dim is a float": (lambda d: d.update(dim=64.5), "dim must be an integer"),
    "depth is negative": (lambda d: d.update(depth=-2), "depth must be > 0"),
    "heads is zero": (lambda d: d.update(heads=0), "heads must be > 0"),
    "dropout above one": (
        lambda d: d.update(class_dropout=1.5),
        r"class_dropout must be in \[0, 1\]",
    ),
    "use_adaln is a number": (lambda d: d.update(use_adaln=1), "use_adaln must be true or false"),
    "head is a list": (lambda d: d.update(head=[1, 2]), "head must be an object"),
    "head dim zero": (lambda d: d["head"].update(dim=0), "head.dim must be > 0"),
    "resid dropout of one": (
        lambda d: d.update(resid_dropout=1.0),
        r"resid_dropout must be in \[0, 1\)",
    ),
    "unknown field": (lambda d: d.update(colour=3), "unknown BiGRConfig fields: colour"),
    "unknown kind": (lambda d: d.update(kind="vae"), "config kind must be one of"),
    "dim not divisible by heads": (lambda d: d.update(dim=66), "not divisible by heads"),
    "norm_eps infinite": (lambda d: d.update(norm_eps=float("inf")), "norm_eps must be finite"),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_a_bad_config_is_refused_naming_the_field(model_dir, case):
    change, message = CONFIG_CASES[case]
    _edit_config(model_dir, change)
    with pytest.raises(CheckpointError, match=message) as err:
        BiGR.from_pretrained(model_dir)
    assert "config.json" in str(err.value) and "\n" not in str(err.value)


def test_a_config_that_is_not_an_object_or_not_json_is_refused(model_dir):
    for text in ("[1, 2]", "{not json", "\xff\xfe"):
        (model_dir / "config.json").write_text(text)
        with pytest.raises(CheckpointError, match=r"config\.json"):
            BiGR.from_pretrained(model_dir)


def _weights(path):
    return path / "model.safetensors"


WEIGHT_CASES = {
    "empty file": (lambda p, s: _weights(p).write_bytes(b""), "not a readable safetensors"),
    "truncated": (
        lambda p, s: _weights(p).write_bytes(_weights(p).read_bytes()[:200]),
        "not a readable safetensors",
    ),
    "random bytes": (
        lambda p, s: _weights(p).write_bytes(
            torch.randint(0, 256, (4096,)).byte().numpy().tobytes()
        ),
        "not a readable safetensors",
    ),
    "a pickle": (
        lambda p, s: _weights(p).write_bytes(pickle.dumps({"a": 1})),
        "not a readable safetensors",
    ),
    "no tensors": (lambda p, s: save_file({}, str(_weights(p))), "holds no tensors"),
    "a NaN weight": (
        lambda p, s: save_file(
            {
                **s,
                "head.denoiser.c_embedder.weight": s["head.denoiser.c_embedder.weight"]
                * float("nan"),
            },
            str(_weights(p)),
        ),
        "head.denoiser.c_embedder.weight holds NaN",
    ),
    "an integer tensor": (
        lambda p, s: save_file(
            {**s, "transformer.mask_token": s["transformer.mask_token"].long()}, str(_weights(p))
        ),
        "transformer.mask_token has dtype torch.int64",
    ),
    "a wrong shape": (
        lambda p, s: save_file({**s, "transformer.mask_token": torch.zeros(3)}, str(_weights(p))),
        "transformer.mask_token has shape",
    ),
    "a missing tensor": (
        lambda p, s: save_file(
            {k: v for k, v in s.items() if k != "transformer.mask_token"}, str(_weights(p))
        ),
        "missing: transformer.mask_token",
    ),
    "an extra tensor": (
        lambda p, s: save_file({**s, "spare": torch.zeros(1)}, str(_weights(p))),
        "unexpected: spare",
    ),
}


@pytest.mark.parametrize("case", WEIGHT_CASES)
def test_bad_weights_are_refused_naming_the_file_and_tensor(model_dir, case):
    change, message = WEIGHT_CASES[case]
    state = load_file(str(_weights(model_dir)))
    assert "transformer.mask_token" in state
    change(model_dir, state)
    with pytest.raises(CheckpointError, match=message) as err:
        BiGR.from_pretrained(model_dir)
    assert "\n" not in str(err.value)


def test_the_command_line_prints_one_line_and_fails(model_dir, tmp_path):
    _edit_config(model_dir, lambda d: d.update(depth="eight"))
    out = tmp_path / "s.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bigr",
            "sample",
            "--model",
            str(model_dir),
            "--classes",
            "1",
            "--codes-only",
            "--codes-out",
            str(tmp_path / "c.pt"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "depth must be an integer" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
