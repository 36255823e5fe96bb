"""Arithmetic for inference: `auto` (float32, with TF32 matmuls on CUDA), `fp32` (exact
float32 everywhere), `bf16` or `fp16` (autocast: matmuls and attention in half precision, the
weights and everything else in float32). The tokenizer always decodes in float32
(`BinaryAutoencoder.decode` leaves autocast), and parity checks run in float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def inference_precision(precision: str, device: str | torch.device) -> Iterator[None]:
    """Run the block inside at `precision` on `device` (see the module docstring); the TF32
    setting is restored afterwards."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = torch.device(device).type
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if kind == "cuda":
        allow = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    try:
        if precision in _HALF:
            with torch.autocast(kind, dtype=_HALF[precision]):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
