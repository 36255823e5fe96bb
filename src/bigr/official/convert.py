"""One official checkpoint file (`.pt` BiGR, `.th` B-AE) converted into a bigr model directory.

The configuration is read off the checkpoint; a preset only cross-checks it (and fills in what
the file cannot tell, such as the heads of a file without build arguments). `bigr convert` and
the hub loader (`bigr.hub`) both call `convert_checkpoint`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from .checkpoints import ConversionError, ConversionReport, convert_state_dict
from .checkpoints import read_official_checkpoint as read_checkpoint
from .infer_bigr import infer_bigr_config
from .infer_tokenizer import infer_tokenizer_config
from .inference import InferredConfig, config_differences

KINDS = ("bigr", "bae")


class PresetMismatch(ConversionError):
    """The configuration read off a checkpoint differs from the preset it was checked with."""


@dataclass(frozen=True)
class Converted:
    out: Path
    inferred: InferredConfig
    report: ConversionReport
    origin: str  # how the configuration was obtained


def kind_of(file: str | Path) -> str:
    """ "bae" for the release's B-AE files (`.th`), "bigr" for its generator files (`.pt`)."""
    suffix = Path(file).suffix
    if suffix == ".th":
        return "bae"
    if suffix == ".pt":
        return "bigr"
    raise ConversionError(
        f"{Path(file).name}: not a release checkpoint (.pt for BiGR, .th for a B-AE)"
    )


def convert_checkpoint(
    file: str | Path,
    kind: str,
    out: str | Path,
    *,
    preset: Config | None = None,
    preset_name: str = "",
    overrides: list[str] | tuple[str, ...] = (),
    key: str = "ema",
    dtype: torch.dtype = torch.float32,
    extra: dict | None = None,
    force: bool = False,
) -> Converted:
    """Read `file` (never unpickling code), infer its configuration (checked against `preset`
    when given: a mismatch raises ConversionError naming every differing field), convert its
    state dict and write `out` (config.json + model.safetensors)."""
    from ..model import BiGR, save_tokenizer
    from ..outputs import check_replaceable
    from ..tokenizer import BinaryAutoencoder

    if kind not in KINDS:
        raise ConversionError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    check_replaceable(out, force=force)  # before the (long) read
    checkpoint = read_checkpoint(file, kind, key)
    infer = infer_bigr_config if kind == "bigr" else infer_tokenizer_config
    inferred = infer(checkpoint.state, checkpoint.args, overrides, preset)
    config = inferred.config
    if preset is not None:
        differences = config_differences(config, preset)
        if differences:
            listed = "; ".join(
                f"{name}: inferred {json.dumps(a)}, preset {json.dumps(b)}"
                for name, a, b in differences
            )
            raise PresetMismatch(
                f"{Path(file).name} does not match preset {preset_name!r}"
                + (" (after --set)" if overrides else "")
                + f": {listed}"
            )
    origin = f"checked against preset {preset_name}" if preset else "inferred from the checkpoint"
    converted, report = convert_state_dict(checkpoint.state, config, dtype=dtype)
    extra = {
        "source": Path(file).name,
        "converted_by": "bigr convert",
        "config_from": origin,
        "report": report.summary(),
        **(extra or {}),
    }
    with torch.device("meta"):
        model = BiGR(config) if kind == "bigr" else BinaryAutoencoder(config)
    model.load_state_dict(converted, strict=True, assign=True)
    if kind == "bigr":
        path = model.save_pretrained(out, extra=extra, force=force)
    else:
        path = save_tokenizer(model, out, extra=extra, force=force)
    return Converted(Path(path), inferred, report, origin)
