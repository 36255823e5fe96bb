"""Small stand-ins and hostile files shared by the tests."""

from __future__ import annotations

import struct
import zlib

import torch
from PIL import Image
from torch import nn

from bigr.evaluation.inception import InceptionOutput


class PixelFeatures(nn.Module):
    """A stand-in for the FID Inception: coarse pixel statistics (no weights needed)."""

    def forward(self, images):
        pooled = nn.functional.adaptive_avg_pool2d(images.float(), 2).flatten(1)  # (B, 12)
        return InceptionOutput(pooled, pooled[:, :6])


def class_image_folder(root, per_class=8, classes=3, size=16):
    """A folder of class sub-folders of random PNGs, each class a brighter band."""
    g = torch.Generator().manual_seed(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            arr = (torch.rand(size, size, 3, generator=g) * 80 + 60 * c).byte().numpy()
            Image.fromarray(arr).save(root / f"class{c}" / f"{i}.png")
    return str(root)


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG that declares width x height 1-bit pixels but holds almost no data: what a
    decompression bomb looks like to a reader that trusts the header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def assert_one_clear_error(argv, message, out, capsys, *, add_out=True) -> None:
    """`bigr ARGV` (with `--out OUT` when `add_out`) fails with a non-zero exit and exactly one
    error line containing `message`, no traceback, and `out` (an earlier result) unchanged."""
    from bigr.cli import main

    out.write_bytes(b"earlier result")
    try:
        code = main([*argv, "--out", str(out)] if add_out else argv)
    except SystemExit as exit:  # argparse: usage line + one error line, exit 2
        code = exit.code
    err = capsys.readouterr().err
    assert code != 0, argv
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    assert out.read_bytes() == b"earlier result"
