"""Small stand-ins and hostile files shared by the tests."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
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


def assert_one_clear_error(argv, message, out, capsys, *, add_out=True, main=None) -> None:
    """`bigr ARGV` (or another command line's `main`) with `--out OUT` when `add_out` fails with
    a non-zero exit and exactly one error line containing `message`, no traceback, and `out`
    (an earlier result) unchanged."""
    if main is None:
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


TRAIN_ARGS = ["--preset", "bigr-tiny", "--batch-size", "16", "--lr", "1e-3", "--log-every", "1"]


def random_codes(d):
    """64 images of random 16-bit codes on a 4x4 grid, two stochastic variants each, as shards
    in `d` (what `bigr train --codes` reads)."""
    from bigr.data.shards import ShardMeta, write_codes

    g = torch.Generator().manual_seed(0)
    meta = ShardMeta(
        code_bits=16,
        grid_size=4,
        count=64,
        shard_size=32,
        samples_per_image=2,
        include_flips=False,
        stochastic=True,
        seed=0,
        classes=[str(i) for i in range(10)],
        source="random",
        tokenizer={},
    )
    write_codes(
        d,
        torch.randint(0, 2, (64, 2, 16, 16), generator=g),
        torch.randint(0, 10, (64,), generator=g),
        meta,
    )
    return d


def train_cli(*args: str, torchrun: int = 0, wait: bool = True):
    """`bigr train ARGS` in a fresh process (one thread), or under torchrun with `torchrun`
    processes on a free port; asserts success when waited for, else returns the Popen."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    head = [sys.executable]
    if torchrun:
        head += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
    cmd = [*head, "-m", "bigr", "train", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def train_state(run):
    """The training state a run folder holds."""
    return torch.load(run / "state.pt", weights_only=True)


def max_diff(a, b) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def random_bigr_model():
    """A tiny BiGR whose zero-initialised layers (adaLN, head output) are made non-zero, as the
    official reference data does, so every parameter influences the outputs."""
    from bigr.config import PRESETS
    from bigr.model import BiGR

    torch.manual_seed(0)
    model = BiGR(PRESETS["bigr-tiny"]).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def tiny_tokenizer_model():
    """The tiny binary autoencoder, seeded."""
    from bigr.config import PRESETS
    from bigr.tokenizer import BinaryAutoencoder

    torch.manual_seed(0)
    return BinaryAutoencoder(PRESETS["bae-tiny"]).eval()
