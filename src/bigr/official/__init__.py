"""Interop with the official BiGR release, nothing of which is used at run time after conversion.

- `checkpoints`: reading the release's `.pt` / `.th` files and converting their state dicts.
- `build_args`: configurations from the release's build arguments (`ModelArgs`, `hparams`).
- `inference`, `infer_bigr`, `infer_tokenizer`: configurations inferred from a checkpoint alone.
- `parity`: recomputing a recorded reference file through this package's own code.
- `release_sampler`: the release's generation algorithm, the baseline of `bigr bench sample`.

The names most callers need are re-exported here.
"""

from __future__ import annotations

from ..config import Config
from .build_args import bigr_config_from_model_args, tokenizer_config_from_hparams
from .checkpoints import (
    BAE_PREFIXES,
    BIGR_ALIAS,
    BIGR_PREFIXES,
    BIGR_SCHEDULER,
    ConversionError,
    ConversionReport,
    OfficialCheckpoint,
    convert_state_dict,
    load_official,
    load_official_file,
    official_key_shapes,
    read_official_checkpoint,
)
from .infer_bigr import infer_bigr_config
from .infer_tokenizer import infer_tokenizer_config
from .inference import InferredConfig, config_differences

__all__ = [
    "BAE_PREFIXES",
    "BIGR_ALIAS",
    "BIGR_PREFIXES",
    "BIGR_SCHEDULER",
    "ConversionError",
    "ConversionReport",
    "InferredConfig",
    "OfficialCheckpoint",
    "bigr_config_from_model_args",
    "config_differences",
    "convert_state_dict",
    "infer_bigr_config",
    "infer_config",
    "infer_tokenizer_config",
    "load_official",
    "load_official_file",
    "official_key_shapes",
    "read_official_checkpoint",
    "tokenizer_config_from_hparams",
]


def infer_config(
    checkpoint: OfficialCheckpoint,
    kind: str,
    overrides: list[str] | tuple[str, ...] = (),
    preset: Config | None = None,
) -> InferredConfig:
    """`infer_bigr_config` (kind "bigr") or `infer_tokenizer_config` (kind "bae")."""
    if kind == "bigr":
        return infer_bigr_config(checkpoint.state, checkpoint.args, overrides, preset)
    return infer_tokenizer_config(checkpoint.state, checkpoint.args, overrides, preset)
