"""Hostile files, paths and training/data options at the command line: unreadable or oversized
images and masks, output paths that cannot be written, bad code folders, training and
tokenizing options out of range, unusable FID inputs, checkpoints and references. Each is
refused with one clear line and a non-zero exit, and an earlier output is never destroyed."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bigr.cli import main
from helpers import assert_one_clear_error, png_header_only


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


TRAIN = "train --codes {d}/codes --preset bigr-fashion --out {d}/run --steps 1"
TOK_TRAIN = "train-tokenizer --data {d}/images --preset bae-tiny --out {d}/tok_run --steps 1"
TOKENIZE = "tokenize --tokenizer bigr:fashion-tokenizer --data {d}/images --out {d}/new_codes"
IMAGE = "inpaint --model bigr:fashion --image {d}"
INPAINT = IMAGE + "/photo.png"
SAMPLE = "sample --model bigr:fashion --classes 1"
BOX = "--box 0,0,0.5,0.5"

# name -> (command line, "{d}" standing for the fixture folder; a piece of the one error line;
# whether --out OUT.png, a file holding an earlier result, is added)
CASES = {
    # images and masks
    "image: decompression bomb": (f"{IMAGE}/bomb.png {BOX}", "limit", True),
    "image: text file": (f"{IMAGE}/text.png {BOX}", "cannot read", True),
    "image: truncated png": (f"{IMAGE}/truncated.png {BOX}", "truncated", True),
    "image: empty file": (f"{IMAGE}/empty.png {BOX}", "cannot read", True),
    "image: a folder": (f"{IMAGE}/folder {BOX}", "is a folder", True),
    "image: missing": (f"{IMAGE}/nope.png {BOX}", "no such file", True),
    "mask: decompression bomb": (f"{INPAINT} --mask {{d}}/bomb.png", "limit", True),
    "mask: smaller than the image": (f"{INPAINT} --mask {{d}}/tiny_mask.png", "mask is 4x4", True),
    "mask: nothing marked": (f"{INPAINT} --mask {{d}}/black_mask.png", "mask is empty", True),
    "mask and box together": (f"{INPAINT} --mask {{d}}/black_mask.png {BOX}", "not both", True),
    "neither mask nor box": (INPAINT, "is required", True),
    "box not numbers": (f"{INPAINT} --box a,b", "four", True),
    "box outside the image": (f"{INPAINT} --box 0,0,1.5,1.5", "fractions in [0, 1]", True),
    "box inverted": (f"{INPAINT} --box 0.5,0.5,0.1,0.1", "x0 < x1", True),
    "feather negative": (f"{INPAINT} {BOX} --feather -1", "0..", True),
    "feather not a number": (f"{INPAINT} {BOX} --feather nan", "not an integer", True),
    "edit class out of range": (
        f"edit --model bigr:fashion --image {{d}}/photo.png {BOX} --class 10",
        "out of range",
        True,
    ),
    "enrich ds not dividing": (
        "enrich --model bigr:fashion --image {d}/photo.png --ds 3",
        "does not divide",
        True,
    ),
    "enrich bomb": ("enrich --model bigr:fashion --image {d}/bomb.png", "limit", True),
    # output paths and seeds
    "out is a folder": (f"{SAMPLE} --out {{d}}/folder", "is a folder", False),
    "out under a file": (f"{SAMPLE} --out {{d}}/photo.png/x.png", "is a file, not a folder", False),
    "out with an unknown extension": (f"{SAMPLE} --out {{d}}/out.xyz", "cannot write", False),
    "out in a format Pillow only reads": (f"{SAMPLE} --out {{d}}/out.psd", "cannot write", False),
    "demo out is a file": ("demo --out {d}/photo.png", "is a file", False),
    "seed negative": (f"{SAMPLE} --seed -1", "--seed", True),
    "seed over 64 bits": (f"{SAMPLE} --seed {2**70}", "--seed", True),
    # generator training
    "train batch 0": (f"{TRAIN} --batch-size 0", "--batch-size", False),
    "train steps 0": (f"{TRAIN} --steps 0", "--steps", False),
    "train steps negative": (f"{TRAIN} --steps -1", "--steps", False),
    "train lr nan": (f"{TRAIN} --lr nan", "finite", False),
    "train lr negative": (f"{TRAIN} --lr -1", "--lr", False),
    "train ema decay 2": (f"{TRAIN} --ema-decay 2", "--ema-decay", False),
    "train grad accumulation 0": (f"{TRAIN} --grad-accum 0", "--grad-accum", False),
    "train warmup negative": (f"{TRAIN} --warmup -1", "--warmup", False),
    "train checkpoint every 0": (f"{TRAIN} --checkpoint-every 0", "--checkpoint-every", False),
    "train preview classes not numbers": (f"{TRAIN} --sample-classes a", "integers", False),
    "train preview class out of range": (
        f"{TRAIN} --sample-classes 5 --tokenizer bigr:fashion-tokenizer",
        "out of range",
        False,
    ),
    "train codes of another bit width": (f"{TRAIN} --set code_bits=16", "16-bit", False),
    "train codes folder empty": (
        "train --codes {d}/folder --preset bigr-tiny --out {d}/run",
        "not a code shard folder",
        False,
    ),
    "train unknown preset": (
        "train --codes {d}/codes --preset huge --out {d}/run",
        "unknown preset",
        False,
    ),
    "train --set unknown field": (f"{TRAIN} --set foo=1", "no field 'foo'", False),
    "train --set not a number": (f"{TRAIN} --set dim=abc", "number", False),
    "train --set negative width": (f"{TRAIN} --set dim=-4", "dim must be", False),
    "train warm start missing": (f"{TRAIN} --init {{d}}/nope", "no such model", False),
    # tokenizer training and tokenizing
    "tokenizer batch 0": (f"{TOK_TRAIN} --batch-size 0", "batch", False),
    "tokenizer steps negative": (f"{TOK_TRAIN} --steps -5", "steps", False),
    "tokenizer perceptual weight nan": (
        f"{TOK_TRAIN} --perceptual-weight nan",
        "perceptual_weight",
        False,
    ),
    "tokenizer warm start missing": (f"{TOK_TRAIN} --init {{d}}/nope", "no such model", False),
    "tokenizer warm start of another shape": (
        f"{TOK_TRAIN} --init bigr:fashion-tokenizer",
        "its config differs",
        False,
    ),
    "tokenizer frozen encoder without a start": (
        f"{TOK_TRAIN} --freeze-encoder",
        "give --init",
        False,
    ),
    "tokenizer data unknown": (
        "train-tokenizer --data imagenet --preset bae-tiny --out {d}/tok_run",
        "no such folder",
        False,
    ),
    "tokenizer data without images": (
        "train-tokenizer --data {d}/empty_folder --preset bae-tiny --out {d}/tok_run",
        "no images",
        False,
    ),
    "tokenize batch 0": (f"{TOKENIZE} --batch-size 0", "--batch-size", False),
    "tokenize samples 0": (f"{TOKENIZE} --samples 0", "--samples", False),
    "tokenize shard size 0": (f"{TOKENIZE} --shard-size 0", "--shard-size", False),
    "tokenize rank beyond world": (f"{TOKENIZE} --rank 2 --world-size 2", "rank 2", False),
    "tokenize with a generator": (
        "tokenize --tokenizer bigr:fashion --data {d}/images --out {d}/new_codes",
        "not a tokenizer",
        False,
    ),
    # evaluation, export, conversion, other commands
    "fid of one image file": ("fid {d}/photo.png --ref {d}/images", "not a folder", False),
    "fid of an empty folder": ("fid {d}/empty_folder --ref {d}/images", "no .png", False),
    "fid of a single sample": ("fid {d}/one_image --ref {d}/images", "at least 2", False),
    "fid unknown reference": ("fid {d}/images --ref imagenet:val", "no such folder", False),
    "fid --num 1": ("fid {d}/images --ref {d}/images --num 1", "--num", False),
    "fid reference statistics not an npz": (
        "fid {d}/images --ref {d}/images --ref-stats {d}/text.png",
        "not an .npz",
        False,
    ),
    "export missing": ("export {d}/nope --out {d}/e", "no such model", False),
    "export a file": ("export {d}/photo.png --out {d}/e", "is a file", False),
    "convert missing": ("convert bigr {d}/nope.pt --out {d}/c", "no such file", False),
    "convert a text file": ("convert bigr {d}/text.png --out {d}/c", "weights-only", False),
    "convert an image as a B-AE": ("convert bae {d}/photo.png --out {d}/c", "weights-only", False),
    "probe missing codes": (
        "probe --model bigr:fashion --train-codes {d}/nope --test-codes {d}/nope",
        "not a code shard folder",
        False,
    ),
    "probe layer out of range": (
        "probe --model bigr:fashion --train-codes {d}/codes --test-codes {d}/codes --layers 99",
        "layers must lie",
        False,
    ),
    "probe epochs 0": (
        "probe --model bigr:fashion --train-codes {d}/codes --test-codes {d}/codes --epochs 0",
        "--epochs",
        False,
    ),
    "parity missing reference": ("parity {d}/nope.json", "no such", False),
    "serve port out of range": ("serve --port 70000", "--port", False),
    "bench unknown preset": ("bench sample --preset huge", "unknown", False),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_files_and_options_fail_with_one_clear_line(files, case, tmp_path, capsys):
    line, message, with_out = CASES[case]
    argv = line.format(d=files).split()
    assert_one_clear_error(argv, message, tmp_path / "out.png", capsys, add_out=with_out)


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
