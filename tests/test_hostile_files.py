"""Hostile files, paths and training/data options at the command line: unreadable or oversized
images and masks, output paths that cannot be written, bad code folders, training and
tokenizing options out of range, unusable FID inputs, checkpoints and references. Each is
refused with one clear line and a non-zero exit, and an earlier output is never destroyed."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bigr.cli import main
from helpers import png_header_only

EMBEDDED = ["--model", "bigr:fashion"]


def _random_png(path: Path, size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Every input the cases below name, built once."""
    d = tmp_path_factory.mktemp("hostile")
    _random_png(d / "photo.png", (40, 40), 0)
    (d / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    (d / "text.png").write_text("not an image")
    (d / "truncated.png").write_bytes((d / "photo.png").read_bytes()[:100])
    (d / "empty.png").write_bytes(b"")
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(d / "tiny_mask.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(d / "black_mask.png")
    (d / "folder").mkdir()
    (d / "empty_folder").mkdir()
    (d / "one_image").mkdir()
    _random_png(d / "one_image" / "0.png", (32, 32), 1)
    (d / "images").mkdir()
    for i in range(3):
        _random_png(d / "images" / f"{i}.png", (32, 32), 2 + i)
    for c in range(2):  # a tiny labelled dataset (class folders), tokenized once
        (d / "classes" / f"c{c}").mkdir(parents=True)
        for i in range(2):
            _random_png(d / "classes" / f"c{c}" / f"{i}.png", (32, 32), 10 + 2 * c + i)
    tokenize = ["tokenize", "--tokenizer", "bigr:fashion-tokenizer", "--batch-size", "4"]
    assert main([*tokenize, "--data", str(d / "classes"), "--out", str(d / "codes")]) == 0
    np.savez(d / "stats.npz", mu=np.zeros(3))  # statistics without a covariance
    return d


def _train(d: Path, *extra: str) -> list[str]:
    codes = ["--codes", str(d / "codes"), "--preset", "bigr-fashion"]
    return ["train", *codes, "--out", str(d / "run"), "--steps", "1", *extra]


def _tok_train(d: Path, *extra: str) -> list[str]:
    base = ["train-tokenizer", "--data", str(d / "images"), "--preset", "bae-tiny"]
    return [*base, "--out", str(d / "tok_run"), "--steps", "1", *extra]


def _tokenize(d: Path, *extra: str) -> list[str]:
    base = ["tokenize", "--tokenizer", "bigr:fashion-tokenizer", "--data", str(d / "images")]
    return [*base, "--out", str(d / "new_codes"), *extra]


def _inpaint(d: Path, image: str = "photo.png", *extra: str) -> list[str]:
    return ["inpaint", *EMBEDDED, "--image", str(d / image), *extra]


BOX = ["--box", "0,0,0.5,0.5"]

# name -> (argv built from the fixture folder, a piece of the one error line, where the output
# goes: "png" = --out OUT.png that already holds an earlier result, None = no --out added)
CASES = {
    # images and masks
    "image: decompression bomb": (lambda d: _inpaint(d, "bomb.png", *BOX), "limit", "png"),
    "image: text file": (lambda d: _inpaint(d, "text.png", *BOX), "cannot read", "png"),
    "image: truncated png": (lambda d: _inpaint(d, "truncated.png", *BOX), "truncated", "png"),
    "image: empty file": (lambda d: _inpaint(d, "empty.png", *BOX), "cannot read", "png"),
    "image: a folder": (lambda d: _inpaint(d, "folder", *BOX), "is a folder", "png"),
    "image: missing": (lambda d: _inpaint(d, "nope.png", *BOX), "no such file", "png"),
    "mask: decompression bomb": (
        lambda d: _inpaint(d, "photo.png", "--mask", str(d / "bomb.png")),
        "limit",
        "png",
    ),
    "mask: smaller than the image": (
        lambda d: _inpaint(d, "photo.png", "--mask", str(d / "tiny_mask.png")),
        "the mask is 4x4",
        "png",
    ),
    "mask: nothing marked": (
        lambda d: _inpaint(d, "photo.png", "--mask", str(d / "black_mask.png")),
        "the mask is empty",
        "png",
    ),
    "mask and box together": (
        lambda d: _inpaint(d, "photo.png", "--mask", str(d / "black_mask.png"), *BOX),
        "not both",
        "png",
    ),
    "neither mask nor box": (lambda d: _inpaint(d), "is required", "png"),
    "box not numbers": (lambda d: _inpaint(d, "photo.png", "--box", "a,b"), "four", "png"),
    "box outside the image": (
        lambda d: _inpaint(d, "photo.png", "--box", "0,0,1.5,1.5"),
        "fractions in [0, 1]",
        "png",
    ),
    "box inverted": (
        lambda d: _inpaint(d, "photo.png", "--box", "0.5,0.5,0.1,0.1"),
        "x0 < x1",
        "png",
    ),
    "feather negative": (lambda d: _inpaint(d, "photo.png", *BOX, "--feather", "-1"), "0..", "png"),
    "feather not a number": (
        lambda d: _inpaint(d, "photo.png", *BOX, "--feather", "nan"),
        "not an integer",
        "png",
    ),
    "edit class out of range": (
        lambda d: ["edit", *EMBEDDED, "--image", str(d / "photo.png"), *BOX, "--class", "10"],
        "out of range",
        "png",
    ),
    "enrich ds not dividing": (
        lambda d: ["enrich", *EMBEDDED, "--image", str(d / "photo.png"), "--ds", "3"],
        "does not divide",
        "png",
    ),
    "enrich bomb": (
        lambda d: ["enrich", *EMBEDDED, "--image", str(d / "bomb.png")],
        "limit",
        "png",
    ),
    # output paths
    "out is a folder": (
        lambda d: ["sample", *EMBEDDED, "--classes", "1", "--out", str(d / "folder")],
        "is a folder",
        None,
    ),
    "out under a file": (
        lambda d: ["sample", *EMBEDDED, "--classes", "1", "--out", str(d / "photo.png" / "x.png")],
        "is a file, not a folder",
        None,
    ),
    "out with an unknown extension": (
        lambda d: ["sample", *EMBEDDED, "--classes", "1", "--out", str(d / "out.xyz")],
        "unknown image extension",
        None,
    ),
    "demo out is a file": (lambda d: ["demo", "--out", str(d / "photo.png")], "is a file", None),
    "seed negative": (
        lambda d: ["sample", *EMBEDDED, "--classes", "1", "--seed", "-1"],
        "--seed",
        "png",
    ),
    "seed over 64 bits": (
        lambda d: ["sample", *EMBEDDED, "--classes", "1", "--seed", str(2**70)],
        "--seed",
        "png",
    ),
    # generator training
    "train batch 0": (lambda d: _train(d, "--batch-size", "0"), "--batch-size", None),
    "train steps 0": (lambda d: _train(d, "--steps", "0"), "--steps", None),
    "train steps negative": (lambda d: _train(d, "--steps", "-1"), "--steps", None),
    "train lr nan": (lambda d: _train(d, "--lr", "nan"), "finite", None),
    "train lr negative": (lambda d: _train(d, "--lr", "-1"), "--lr", None),
    "train ema decay 2": (lambda d: _train(d, "--ema-decay", "2"), "--ema-decay", None),
    "train grad accumulation 0": (lambda d: _train(d, "--grad-accum", "0"), "--grad-accum", None),
    "train warmup negative": (lambda d: _train(d, "--warmup", "-1"), "--warmup", None),
    "train checkpoint every 0": (
        lambda d: _train(d, "--checkpoint-every", "0"),
        "--checkpoint-every",
        None,
    ),
    "train preview classes not numbers": (
        lambda d: _train(d, "--sample-classes", "a"),
        "comma-separated integers",
        None,
    ),
    "train preview class out of range": (
        lambda d: _train(d, "--sample-classes", "5", "--tokenizer", "bigr:fashion-tokenizer"),
        "out of range",
        None,
    ),
    "train codes of another bit width": (
        lambda d: _train(d, "--set", "code_bits=32"),
        "32-bit",
        None,
    ),
    "train codes folder empty": (
        lambda d: ["train", "--codes", str(d / "folder"), "--preset", "bigr-tiny", "--out", "x"],
        "not a code shard folder",
        None,
    ),
    "train unknown preset": (
        lambda d: ["train", "--codes", str(d / "codes"), "--preset", "huge", "--out", "x"],
        "unknown preset",
        None,
    ),
    "train --set unknown field": (lambda d: _train(d, "--set", "foo=1"), "no field 'foo'", None),
    "train --set not a number": (lambda d: _train(d, "--set", "dim=abc"), "number", None),
    "train --set negative width": (lambda d: _train(d, "--set", "dim=-4"), "dim must be", None),
    "train warm start missing": (
        lambda d: _train(d, "--init", str(d / "nope")),
        "no such model directory",
        None,
    ),
    # tokenizer training and tokenizing
    "tokenizer batch 0": (lambda d: _tok_train(d, "--batch-size", "0"), "batch", None),
    "tokenizer steps negative": (lambda d: _tok_train(d, "--steps", "-5"), "steps", None),
    "tokenizer perceptual weight nan": (
        lambda d: _tok_train(d, "--perceptual-weight", "nan"),
        "perceptual_weight",
        None,
    ),
    "tokenizer data unknown": (
        lambda d: ["train-tokenizer", "--data", "imagenet", "--preset", "bae-tiny", "--out", "x"],
        "no such folder",
        None,
    ),
    "tokenizer data without images": (
        lambda d: [
            "train-tokenizer",
            *("--data", str(d / "empty_folder"), "--preset", "bae-tiny", "--out", "x"),
        ],
        "no images",
        None,
    ),
    "tokenize batch 0": (lambda d: _tokenize(d, "--batch-size", "0"), "--batch-size", None),
    "tokenize samples 0": (lambda d: _tokenize(d, "--samples", "0"), "--samples", None),
    "tokenize shard size 0": (lambda d: _tokenize(d, "--shard-size", "0"), "--shard-size", None),
    "tokenize rank beyond world": (
        lambda d: _tokenize(d, "--rank", "2", "--world-size", "2"),
        "rank 2",
        None,
    ),
    "tokenize with a generator": (
        lambda d: ["tokenize", "--tokenizer", "bigr:fashion", "--data", "x", "--out", "y"],
        "not a tokenizer",
        None,
    ),
    # evaluation, export, conversion, other commands
    "fid of one image file": (
        lambda d: ["fid", str(d / "photo.png"), "--ref", str(d / "images")],
        "not a folder of images",
        None,
    ),
    "fid of an empty folder": (
        lambda d: ["fid", str(d / "empty_folder"), "--ref", str(d / "images")],
        "no .png",
        None,
    ),
    "fid of a single sample": (
        lambda d: ["fid", str(d / "one_image"), "--ref", str(d / "images")],
        "at least 2",
        None,
    ),
    "fid unknown reference": (
        lambda d: ["fid", str(d / "images"), "--ref", "imagenet:val"],
        "no such folder",
        None,
    ),
    "fid --num 1": (
        lambda d: ["fid", str(d / "images"), "--ref", str(d / "images"), "--num", "1"],
        "--num",
        None,
    ),
    "fid reference statistics not an npz": (
        lambda d: [
            "fid",
            *(str(d / "images"), "--ref", str(d / "images"), "--ref-stats", str(d / "text.png")),
        ],
        "not an .npz",
        None,
    ),
    "export missing": (
        lambda d: ["export", str(d / "nope"), "--out", str(d / "e")],
        "no such model",
        None,
    ),
    "export a file": (
        lambda d: ["export", str(d / "photo.png"), "--out", str(d / "e")],
        "is a file",
        None,
    ),
    "convert missing": (
        lambda d: ["convert", "bigr", str(d / "nope.pt"), "--out", str(d / "c")],
        "no such file",
        None,
    ),
    "convert a text file": (
        lambda d: ["convert", "bigr", str(d / "text.png"), "--out", str(d / "c")],
        "weights-only",
        None,
    ),
    "convert an image as a B-AE": (
        lambda d: ["convert", "bae", str(d / "photo.png"), "--out", str(d / "c")],
        "weights-only",
        None,
    ),
    "probe missing codes": (
        lambda d: ["probe", *EMBEDDED, "--train-codes", "nope", "--test-codes", "nope"],
        "not a code shard folder",
        None,
    ),
    "probe layer out of range": (
        lambda d: [
            "probe",
            *EMBEDDED,
            *("--train-codes", str(d / "codes"), "--test-codes", str(d / "codes")),
            *("--layers", "99"),
        ],
        "layers must lie",
        None,
    ),
    "probe epochs 0": (
        lambda d: ["probe", *EMBEDDED, "--train-codes", "x", "--test-codes", "y", "--epochs", "0"],
        "--epochs",
        None,
    ),
    "parity missing reference": (lambda d: ["parity", str(d / "nope.json")], "no such", None),
    "serve port out of range": (lambda d: ["serve", "--port", "70000"], "--port", None),
    "bench unknown preset": (lambda d: ["bench", "sample", "--preset", "huge"], "unknown", None),
    "report unknown section": (
        lambda d: ["report", "--out", str(d / "rep"), "--sections", "nope"],
        "unknown report sections",
        None,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_files_and_options_fail_with_one_clear_line(files, case, tmp_path, capsys):
    build, message, output = CASES[case]
    argv = build(files)
    out = tmp_path / "out.png"
    out.write_bytes(b"earlier result")
    if output == "png":
        argv = [*argv, "--out", str(out)]
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse: usage line + one error line, exit 2
        code = exit.code
    err = capsys.readouterr().err
    assert code != 0, case
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    assert out.read_bytes() == b"earlier result"


def test_codes_of_an_unlabelled_folder_train_an_unconditional_model(files, tmp_path, capsys):
    flat = tmp_path / "flat_codes"
    tokenize = ["tokenize", "--tokenizer", "bigr:fashion-tokenizer", "--data"]
    assert main([*tokenize, str(files / "images"), "--out", str(flat)]) == 0
    run = tmp_path / "run"
    argv = ["train", "--codes", str(flat), "--preset", "bigr-fashion", "--out", str(run)]
    assert main([*argv, "--steps", "1", "--batch-size", "2", "--set", "depth=1"]) == 0
    assert "unconditional" in capsys.readouterr().out
    from bigr.model import BiGR

    model = BiGR.from_pretrained(run / "model")
    assert model.config.num_classes == 0 and model.config.class_dropout == 1.0
