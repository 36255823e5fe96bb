import subprocess
import sys

import torch

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


def test_convert_writes_a_loadable_model_with_the_same_numerics(reference_dir, tmp_path):
    from bigr.config import PRESETS

    ckpt = reference_dir / "tiny" / "tiny_bigr_ckpt.pt"
    assert (
        main(["convert", "bigr", str(ckpt), "--preset", "bigr-tiny", "--out", str(tmp_path / "m")])
        == 0
    )
    model = BiGR.from_pretrained(tmp_path / "m")
    official, _ = load_official(ckpt, PRESETS["bigr-tiny"])
    codes = torch.randint(0, 2, (2, 16, 16)).float()
    labels, mask = torch.tensor([1, 2]), torch.rand(2, 16) < 0.5
    assert torch.equal(
        model.transformer(codes, labels, mask), official.transformer(codes, labels, mask)
    )
    bae = reference_dir / "tiny_bae" / "tiny_binaryae_ema.th"
    assert (
        main(["convert", "bae", str(bae), "--preset", "bae-tiny", "--out", str(tmp_path / "t")])
        == 0
    )
    assert load_tokenizer(tmp_path / "t").config == PRESETS["bae-tiny"]


def test_errors_are_one_line_without_traceback(reference_dir, tmp_path):
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
        result = _run(*args)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert lines[0].startswith(f"bigr {args[0]}: error:")
