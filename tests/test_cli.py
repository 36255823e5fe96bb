import dataclasses
import subprocess
import sys

import pytest
import torch
from PIL import Image, ImageDraw

from bigr.cli import main
from bigr.model import BiGR, load_tokenizer
from bigr.official import load_official


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bigr", *args], capture_output=True, text=True, timeout=300
    )


def test_parity_command_passes_on_both_references(reference_dir, capsys):
    assert main(["parity", str(reference_dir / "tiny" / "tiny_reference.json")]) == 0
    assert main(["parity", str(reference_dir / "tiny_bae" / "tiny_bae_reference.json")]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "FAIL" not in out


def test_convert_writes_a_loadable_model_with_the_same_numerics(reference_dir, tmp_path, capsys):
    """No preset: the configuration is read off the checkpoint (shapes and stored args)."""
    from bigr.config import PRESETS

    ckpt = reference_dir / "tiny" / "tiny_bigr_ckpt.pt"
    assert main(["convert", "bigr", str(ckpt), "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "configuration (inferred from the checkpoint):" in out
    assert "  dim " in out and "= 64  (mask_tok)" in out
    model = BiGR.from_pretrained(tmp_path / "m")
    assert model.config == PRESETS["bigr-tiny"]
    official, _ = load_official(ckpt, PRESETS["bigr-tiny"])
    codes = torch.randint(0, 2, (2, 16, 16)).float()
    labels, mask = torch.tensor([1, 2]), torch.rand(2, 16) < 0.5
    assert torch.equal(
        model.transformer(codes, labels, mask), official.transformer(codes, labels, mask)
    )
    bae = reference_dir / "tiny_bae" / "tiny_binaryae_ema.th"
    assert main(["convert", "bae", str(bae), "--out", str(tmp_path / "t")]) == 0
    assert load_tokenizer(tmp_path / "t").config == PRESETS["bae-tiny"]
    # the preset, now a cross-check, passes; --set applies to both sides
    args = ["convert", "bigr", str(ckpt), "--preset", "bigr-tiny", "--set", "head.alpha=0"]
    assert main([*args, "--out", str(tmp_path / "m2")]) == 0
    assert "checked against preset bigr-tiny" in capsys.readouterr().out
    assert BiGR.from_pretrained(tmp_path / "m2").config.head.alpha == 0.0


def test_convert_a_checkpoint_of_a_shape_no_preset_has(tmp_path, capsys):
    from test_official import UNUSUAL, _outputs, save_unusual_checkpoint

    ckpt = tmp_path / "unusual.pt"
    original = save_unusual_checkpoint(ckpt, n_head=6, dropout_p=0.1)
    assert main(["convert", "bigr", str(ckpt), "--out", str(tmp_path / "m")]) == 0
    assert "heads                = 6  (args n_head)" in capsys.readouterr().out
    model = BiGR.from_pretrained(tmp_path / "m")
    assert model.config == UNUSUAL
    for a, b in zip(_outputs(model, UNUSUAL), _outputs(original, UNUSUAL), strict=True):
        assert torch.equal(a, b)

    # without n_head the heads cannot be known: the error names the flag, which then works
    save_unusual_checkpoint(ckpt, p_flip=True)
    assert main(["convert", "bigr", str(ckpt), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "--set heads=" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    args = ["convert", "bigr", str(ckpt), "--set", "heads=6", "--out", str(tmp_path / "m3")]
    assert main(args) == 0
    assert BiGR.from_pretrained(tmp_path / "m3").config == UNUSUAL


def test_a_wrong_preset_is_refused_naming_every_differing_field(reference_dir, tmp_path, capsys):
    ckpt = str(reference_dir / "tiny" / "tiny_bigr_ckpt.pt")
    args = ["convert", "bigr", ckpt, "--preset", "bigr-l-d24", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "does not match preset 'bigr-l-d24'" in err
    for field in (
        "dim: inferred 64, preset 1024",
        "depth: inferred 2, preset 24",
        "heads: inferred 4, preset 16",
        "code_bits: inferred 16, preset 24",
        "grid_size: inferred 4, preset 16",
        "num_classes: inferred 10, preset 1000",
        "head.dim: inferred 64, preset 1024",
        "head.depth: inferred 2, preset 3",
    ):
        assert field in err, field
    assert not (tmp_path / "x").exists()
    # --set applies to both sides; one that contradicts the weights fails naming the keys
    args = ["convert", "bigr", ckpt, "--preset", "bigr-tiny", "--set", "depth=3"]
    assert main([*args, "--out", str(tmp_path / "x")]) == 1
    assert "missing keys: layers.2." in capsys.readouterr().err


def test_errors_are_one_line_without_traceback(reference_dir, tmp_path, capsys):
    ckpt = str(reference_dir / "tiny" / "tiny_bigr_ckpt.pt")
    cases = [
        (
            "convert",
            "bigr",
            ckpt,
            "--preset",
            "bigr-l-d24",
            "--out",
            str(tmp_path / "x"),
        ),  # wrong preset
        (
            "convert",
            "bigr",
            ckpt,
            "--preset",
            "bae-tiny",
            "--out",
            str(tmp_path / "x"),
        ),  # wrong kind
        (
            "convert",
            "bigr",
            ckpt,
            "--preset",
            "nope",
            "--out",
            str(tmp_path / "x"),
        ),  # unknown preset
        (
            "convert",
            "bigr",
            str(tmp_path / "missing.pt"),
            "--preset",
            "bigr-tiny",
            "--out",
            str(tmp_path / "x"),
        ),
        ("parity", str(tmp_path / "missing.json")),
    ]
    for args in cases:
        line = _one_error_line(capsys, *args)
        assert line.startswith(f"bigr {args[0]}: error:"), line
    # the console entry point (a fresh interpreter) prints the same single line
    result = _run(*cases[0])
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [_one_error_line(capsys, *cases[0])]


def _one_error_line(capsys, *args: str, code: int | None = None) -> str:
    """Run `bigr ARGS` in this process: it must fail (with `code` if given) and print exactly
    one stderr line."""
    capsys.readouterr()
    returned = main(list(args))
    assert returned != 0 and code in (None, returned), (args, returned)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


@pytest.fixture(scope="module")
def workdir(reference_dir, tmp_path_factory):
    """A converted official tiny pair (model with its tokenizer inside) and a photo-like image."""
    from bigr.config import PRESETS
    from bigr.model import save_tokenizer
    from bigr.tokenizer import BinaryAutoencoder

    d = tmp_path_factory.mktemp("cli")
    assert (
        main(
            [
                "convert",
                "bigr",
                str(reference_dir / "tiny" / "tiny_bigr_ckpt.pt"),
                "--preset",
                "bigr-tiny",
                "--out",
                str(d / "m"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "convert",
                "bae",
                str(reference_dir / "tiny_bae" / "tiny_binaryae_ema.th"),
                "--preset",
                "bae-tiny",
                "--out",
                str(d / "m" / "tokenizer"),
            ]
        )
        == 0
    )
    save_tokenizer(
        BinaryAutoencoder(dataclasses.replace(PRESETS["bae-tiny"], code_bits=8)), d / "tok8"
    )
    image = Image.new("RGB", (64, 48), (30, 120, 200))
    ImageDraw.Draw(image).ellipse((10, 5, 50, 40), fill=(250, 200, 0))
    image.save(d / "img.png")
    mask = Image.new("L", (64, 48), 0)
    ImageDraw.Draw(mask).rectangle((20, 10, 44, 30), fill=255)
    mask.save(d / "mask.png")
    Image.new("L", (64, 48), 0).save(d / "empty.png")
    Image.new("L", (32, 32), 255).save(d / "small.png")
    return d


FAST = ["--steps", "3", "--head-steps", "5"]


@pytest.mark.parametrize(
    ("command", "extra", "outputs"),
    [
        ("sample", ["--classes", "1,2", "--num", "3"], ["out.png"]),
        (
            "inpaint",
            ["--image", "img.png", "--mask", "mask.png", "--num", "2"],
            ["out.png", "out_compare.png"],
        ),
        ("outpaint", ["--image", "img.png"], ["out.png", "out_compare.png"]),
        (
            "edit",
            ["--image", "img.png", "--mask", "mask.png", "--class", "4"],
            ["out.png", "out_compare.png"],
        ),
        ("interpolate", ["--classes", "1,5", "--num", "4"], ["out.png"]),
        ("enrich", ["--image", "img.png", "--rounds", "1"], ["out.png", "out_rounds.png"]),
    ],
)
def test_every_app_writes_images_a_person_can_open(workdir, tmp_path, command, extra, outputs):
    args = [command, "--model", str(workdir / "m"), "--out", str(tmp_path / "out.png"), *FAST]
    args += [str(workdir / a) if a.endswith(".png") else a for a in extra]
    assert main(args) == 0
    for name in outputs:
        with Image.open(tmp_path / name) as img:
            assert img.mode == "RGB" and min(img.size) >= 16


def test_same_seed_same_image(workdir, tmp_path):
    for name, seed in (("a.png", "7"), ("b.png", "7"), ("c.png", "8")):
        main(
            [
                "sample",
                "--model",
                str(workdir / "m"),
                "--classes",
                "3",
                "--num",
                "2",
                "--out",
                str(tmp_path / name),
                "--seed",
                seed,
                *FAST,
            ]
        )
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.png", "b.png", "c.png"))
    assert a == b and a != c


def test_app_errors_are_one_line(workdir, tmp_path, capsys):
    m, out = str(workdir / "m"), str(tmp_path / "x.png")
    cases = [
        [
            "inpaint",
            "--model",
            m,
            "--image",
            str(workdir / "img.png"),
            "--mask",
            str(workdir / "small.png"),
        ],
        [
            "inpaint",
            "--model",
            m,
            "--image",
            str(workdir / "img.png"),
            "--mask",
            str(workdir / "empty.png"),
        ],
        [
            "inpaint",
            "--model",
            m,
            "--image",
            str(workdir / "mask.txt"),
            "--mask",
            str(workdir / "mask.png"),
        ],
        [
            "edit",
            "--model",
            m,
            "--image",
            str(workdir / "img.png"),
            "--mask",
            str(workdir / "mask.png"),
            "--class",
            "10",
        ],
        ["sample", "--model", m, "--tokenizer", str(workdir / "tok8"), "--classes", "1"],
    ]
    expected = [
        "mask is 32x32 but the image is 64x48",
        "mask is empty",
        "no such file",
        "out of range",
        "16-bit codes; the tokenizer makes 8-bit",
    ]
    for args, text in zip(cases, expected, strict=True):
        line = _one_error_line(capsys, *args, "--out", out, code=1)
        assert text in line, line


def test_compile_flag_compiles_the_backbone_of_a_sampling_command(workdir, tmp_path, monkeypatch):
    from bigr.commands import common
    from bigr.model import compile_backbone

    compiled = []

    def record(model):  # dynamo's tracing without code generation keeps the test fast
        compiled.append(model)
        return compile_backbone(model, backend="eager")

    monkeypatch.setattr(common, "compile_backbone", record)
    args = ["sample", "--model", str(workdir / "m"), "--classes", "1", *FAST]
    assert main([*args, "--out", str(tmp_path / "a.png")]) == 0 and not compiled
    assert main([*args, "--out", str(tmp_path / "b.png"), "--compile"]) == 0
    assert len(compiled) == 1 and "forward" in vars(compiled[0].transformer)
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "b.png") as b:
        assert a.tobytes() == b.tobytes()  # the same seed, the same image


def test_export_stores_half_precision_and_loads_in_float32(tmp_path, random_bigr):
    random_bigr.save_pretrained(tmp_path / "full")
    assert main(["export", str(tmp_path / "full"), "--out", str(tmp_path / "half")]) == 0
    full_size = (tmp_path / "full" / "model.safetensors").stat().st_size
    half_size = (tmp_path / "half" / "model.safetensors").stat().st_size
    assert half_size < 0.6 * full_size
    half = BiGR.from_pretrained(tmp_path / "half")
    assert next(half.parameters()).dtype == torch.float32
    for name, value in half.state_dict().items():
        torch.testing.assert_close(value, random_bigr.state_dict()[name], atol=2e-3, rtol=1e-3)
