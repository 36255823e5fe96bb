"""What a user meets first: `--version`, help on every flag with its default, classes by name,
unconditional models from the command line, and a clear line for a device that is not there."""

import argparse
import dataclasses

import pytest
import torch
from PIL import Image

from bigr.classes import class_id, class_ids
from bigr.cli import build_parser, main
from bigr.config import PRESETS
from bigr.model import BiGR, save_tokenizer
from bigr.tokenizer import BinaryAutoencoder
from helpers import assert_one_clear_error

NAMES = ["T-shirt/top", "Trouser", "Sneaker", "Ankle boot", "Bag"]


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("bigr ") and out.split()[1][0].isdigit()


def _subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_flag_of_every_command_has_help():
    for name, parser in _subcommands().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.option_strings or action.dest)


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["sample-fid", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10000)" in text  # --num
    assert "(default: 1000)" in text  # --shard-size


def test_classes_by_id_or_name():
    assert class_ids("sneaker,1, ankle boot", NAMES, 5) == [2, 1, 3]
    assert class_ids(["t-shirt/top", 4, "bag"], NAMES, 5) == [0, 4, 4]
    assert class_id("tshirt", NAMES, 5) == 0  # a prefix of exactly one name
    assert class_id(" Ankle", NAMES, 5) == 3
    with pytest.raises(ValueError, match="is not a class of this model; the classes are: 0 T-sh"):
        class_id("boot", NAMES, 5)
    with pytest.raises(ValueError, match="not a class"):
        class_id("a", NAMES, 5)  # a prefix needs three characters: "a" is not "Ankle boot"
    with pytest.raises(ValueError, match="out of range"):
        class_id(5, NAMES, 5)
    with pytest.raises(ValueError, match="out of range"):
        class_id("-1", NAMES, 5)
    with pytest.raises(ValueError, match="records no class names"):
        class_id("bag", [], 5)
    with pytest.raises(ValueError, match="unconditional"):
        class_id(0, [], 0)
    with pytest.raises(TypeError):
        class_id(1.5, NAMES, 5)


def test_sample_accepts_the_class_names_the_embedded_model_records(tmp_path):
    out = tmp_path / "by-name.png"
    argv = ["sample", "--model", "bigr:fashion", "--classes", "sneaker,bag", "--num", "1"]
    assert main([*argv, "--steps", "2", "--head-steps", "2", "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.size[1] > image.size[0]  # one row per class


def test_a_wrong_class_name_is_one_clear_line(tmp_path, capsys):
    argv = ["sample", "--model", "bigr:fashion", "--classes", "boot"]
    assert_one_clear_error(argv, "Ankle boot", tmp_path / "x.png", capsys)


@pytest.fixture
def unconditional_pair(tmp_path):
    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["bigr-tiny"], num_classes=0, class_dropout=1.0)
    model_dir = BiGR(config).save_pretrained(tmp_path / "uncond")
    tok_dir = save_tokenizer(BinaryAutoencoder(PRESETS["bae-tiny"]), tmp_path / "tok")
    return model_dir, tok_dir


def test_an_unconditional_model_samples_from_the_command_line(unconditional_pair, tmp_path):
    model_dir, tok_dir = unconditional_pair
    out = tmp_path / "u.png"
    argv = ["sample", "--model", str(model_dir), "--tokenizer", str(tok_dir), "--num", "3"]
    assert main([*argv, "--steps", "2", "--head-steps", "2", "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.size[0] > 2 * image.size[1]  # three images in a row


def test_an_unconditional_model_refuses_classes(unconditional_pair, tmp_path, capsys):
    model_dir, tok_dir = unconditional_pair
    argv = ["sample", "--model", str(model_dir), "--tokenizer", str(tok_dir), "--classes", "0"]
    assert_one_clear_error(argv, "unconditional", tmp_path / "u.png", capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_a_missing_cuda_device_is_named_not_a_broken_file():
    with pytest.raises(ValueError, match="no CUDA device"):
        BiGR.from_pretrained("bigr:fashion", device="cuda")
