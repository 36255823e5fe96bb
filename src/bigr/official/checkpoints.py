"""Import of the official BiGR release: reading its checkpoints, converting their state dicts.

Owns the mapping from the release's state-dict keys to this package's (bigr-spec.md §7):

- BiGR `.pt` files hold the EMA weights under `ema` (loaded with weights_only=True). The
  denoiser appears twice (`denoise_mlp.*` and the alias `diffusion_processor._denoise_fn.*`,
  the same tensors: checked equal, then dropped); the noise tables are buffers
  (`diffusion_processor.scheduler.*`: checked against the closed form, then recomputed).
- B-AE `.th` files are one flat dict: `ae.*` is the autoencoder, `disc.*` and `perceptual.*`
  belong to its training and are dropped. Dead weights dropped on import, and named in the
  report: `generator.logsigma.*` (never used) and the 1x1 `conv_out` of residual blocks whose
  width does not change (allocated by the release, never applied).
- Optional `module.` / `_orig_mod.` prefixes are stripped; any float dtype is cast.

Unknown, missing or mis-shaped keys are refused with a message naming them. Files are read
without unpickling code: weights_only, with only argparse.Namespace allowed, so that the build
arguments stored beside the weights (the release's `args` Namespace, a B-AE `hparams` dict)
come back as plain values (`read_official_checkpoint`).

Leaves to others: configurations, from build arguments or inferred from a checkpoint
(`bigr.official.build_args`, `bigr.official.inference`). Nothing here is used at run time
after conversion.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import schedules
from ..config import BiGRConfig, Config
from ..model import BiGR, build_model
from ..tokenizer import BinaryAutoencoder, ResBlock

BIGR_PREFIXES = [  # (official, package); an entry without a trailing dot is an exact name
    ("mask_tok", "transformer.mask_token"),
    ("diffusion_pos_embed_learned", "transformer.pos_embed"),
    ("cls_embedding.embedding_table.", "transformer.class_embed."),
    ("tok_embeddings.", "transformer.token_embed."),
    ("adaLN.1.", "transformer.adaln."),
    ("layers.", "transformer.layers."),
    ("norm.", "transformer.norm."),
    ("denoise_mlp.", "head.denoiser."),
]
BIGR_ALIAS = ("diffusion_processor._denoise_fn.", "denoise_mlp.")
BIGR_SCHEDULER = "diffusion_processor.scheduler."
SCHEDULER_TABLES = ("k_final", "b_final", "beta", "cumbeta")

BAE_PREFIXES = [
    ("encoder.", "encoder."),
    ("quantize.proj.0.", "binarizer.proj."),
    ("quantize.embed.", "binarizer.embed."),
    ("generator.blocks.", "decoder.blocks."),
]
BAE_DEAD = "generator.logsigma."
BAE_TRAINING_ONLY = ("disc.", "perceptual.")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class ConversionError(ValueError):
    """The checkpoint does not match the configuration it is being converted to."""


@dataclass
class ConversionReport:
    mapped: int = 0
    aliases_checked: list[str] = field(default_factory=list)
    buffers_checked: list[str] = field(default_factory=list)
    dead_dropped: list[str] = field(default_factory=list)
    training_only_dropped: int = 0

    def summary(self) -> str:
        return (
            f"{self.mapped} tensors mapped; {len(self.aliases_checked)} duplicate denoiser keys "
            f"checked equal and dropped; {len(self.buffers_checked)} schedule buffers checked "
            f"against the closed form; {len(self.dead_dropped)} dead tensors dropped; "
            f"{self.training_only_dropped} training-only tensors (discriminator, LPIPS) dropped"
        )


def _rename(key: str, pairs: list[tuple[str, str]], reverse: bool = False) -> str | None:
    for official, package in pairs:
        src, dst = (package, official) if reverse else (official, package)
        if src.endswith("."):
            if key.startswith(src):
                return dst + key[len(src) :]
        elif key == src:
            return dst
    return None


def strip_wrappers(state: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def _identity_skip_convs(model: BinaryAutoencoder) -> list[str]:
    """Official names of the `conv_out` weights the release allocates but never applies."""
    names = []
    for part, official in (("encoder", "encoder"), ("decoder", "generator")):
        for i, block in enumerate(getattr(model, part).blocks):
            if isinstance(block, ResBlock) and block.conv_out is None:
                names += [
                    f"{official}.blocks.{i}.conv_out.weight",
                    f"{official}.blocks.{i}.conv_out.bias",
                ]
    return names


def official_key_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """Every key and shape of the official state dict for `config` (B-AE keys without `ae.`)."""
    with torch.device("meta"):
        model = build_model(config)
    shapes: dict[str, tuple[int, ...]] = {}
    if isinstance(config, BiGRConfig):
        for name, tensor in model.state_dict().items():
            shapes[_rename(name, BIGR_PREFIXES, reverse=True)] = tuple(tensor.shape)
        for name in list(shapes):
            if name.startswith(BIGR_ALIAS[1]):
                shapes[BIGR_ALIAS[0] + name[len(BIGR_ALIAS[1]) :]] = shapes[name]
        for table in SCHEDULER_TABLES:
            shapes[BIGR_SCHEDULER + table] = (config.head.diffusion_steps + 1,)
        return shapes
    for name, tensor in model.state_dict().items():
        shapes[_rename(name, BAE_PREFIXES, reverse=True)] = tuple(tensor.shape)
    for name in _identity_skip_convs(model):
        block = int(name.split(".")[2])
        part = model.encoder if name.startswith("encoder") else model.decoder
        c = part.blocks[block].conv1.in_channels
        shapes[name] = (c, c, 1, 1) if name.endswith("weight") else (c,)
    c = config.base_channels * config.channel_mult[0]
    shapes.update(
        {
            BAE_DEAD + "0.weight": (c, c, 3, 3),
            BAE_DEAD + "0.bias": (c,),
            BAE_DEAD + "2.weight": (config.in_channels, c, 1, 1),
            BAE_DEAD + "2.bias": (config.in_channels,),
        }
    )
    return shapes


def _check_schedule_buffer(name: str, value: Tensor, steps: int) -> None:
    if value.is_meta:
        return
    expected = schedules.noise_tables(steps)[name.rsplit(".", 1)[1]]
    if value.shape != expected.shape or not torch.allclose(
        value.float(), expected, atol=1e-6, rtol=0
    ):
        raise ConversionError(
            f"{name} differs from the closed-form linear schedule with T = {steps}"
        )


def convert_state_dict(
    official: dict[str, Tensor], config: Config, dtype: torch.dtype = torch.float32
) -> tuple[dict[str, Tensor], ConversionReport]:
    """Map an official state dict to this package's keys for `config`, checking everything."""
    is_bigr = isinstance(config, BiGRConfig)
    official = strip_wrappers(official)
    report = ConversionReport()
    if not is_bigr and any(k.startswith("ae.") for k in official):
        official = _strip_autoencoder_prefix(official, report)
    expected = official_key_shapes(config)
    with torch.device("meta"):
        package_shapes = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    pairs = BIGR_PREFIXES if is_bigr else BAE_PREFIXES
    out: dict[str, Tensor] = {}
    unknown, misshaped = [], []
    for key, value in official.items():
        if key not in expected:
            unknown.append(key)
            continue
        if tuple(value.shape) != expected[key]:
            misshaped.append(f"{key} {tuple(value.shape)} (expected {expected[key]})")
            continue
        target = _rename(key, pairs)
        if target in package_shapes:
            out[target] = value.to(dtype) if value.is_floating_point() else value
            report.mapped += 1
        elif is_bigr and key.startswith(BIGR_ALIAS[0]):
            primary = BIGR_ALIAS[1] + key[len(BIGR_ALIAS[0]) :]
            if (
                primary in official
                and not value.is_meta
                and not torch.equal(value, official[primary])
            ):
                raise ConversionError(f"{key} differs from {primary}, of which it should be a copy")
            report.aliases_checked.append(key)
        elif is_bigr and key.startswith(BIGR_SCHEDULER):
            _check_schedule_buffer(key, value, config.head.diffusion_steps)
            report.buffers_checked.append(key)
        else:
            report.dead_dropped.append(key)
    missing = sorted(set(expected) - set(official))
    unknown.sort()
    problems = []
    if unknown:
        problems.append(f"unknown keys: {_list(unknown)}")
    if missing:
        problems.append(f"missing keys: {_list(missing)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {_list(misshaped)}")
    if problems:
        raise ConversionError(
            "checkpoint does not match the configuration (is the preset right?): "
            + "; ".join(problems)
        )
    return out, report


def _strip_autoencoder_prefix(
    official: dict[str, Tensor], report: ConversionReport
) -> dict[str, Tensor]:
    """A B-AE training checkpoint's `ae.` keys without the prefix; its training-only entries
    (discriminator, perceptual loss) dropped and counted; other keys kept, to be reported."""
    kept = {}
    for key, value in official.items():
        if key.startswith("ae."):
            kept[key[3:]] = value
        elif key.startswith(BAE_TRAINING_ONLY):
            report.training_only_dropped += 1
        else:
            kept[key] = value  # reported as unknown by the caller
    return kept


def _list(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


@dataclass
class OfficialCheckpoint:
    """What an official file holds: its flat state dict and the build arguments stored beside
    it (the release's `args` Namespace or a B-AE `hparams` dict; `{}` when the file has none),
    reduced to plain values."""

    state: dict[str, Tensor]
    args: dict[str, Any] = field(default_factory=dict)


_PLAIN = (str, int, float, bool, type(None))


def plain_args(obj: Any) -> dict[str, Any]:
    """An argparse.Namespace or dict of build arguments -> a dict of its plain values (str, int,
    float, bool, None, and lists or tuples of those); anything else is dropped."""
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if not isinstance(obj, dict):
        return {}
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, _PLAIN):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, _PLAIN) for v in value):
            out[key] = list(value)
    return out


def _load_error(err: Exception) -> str:
    """One line out of torch's multi-line refusal."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return (
            f"it holds a {found.group(1)} object, which is neither a tensor nor a plain value; "
            "refusing to unpickle code"
        )
    return " ".join(text.split())[:300]


def read_official_checkpoint(path: str | Path, kind: str, key: str = "ema") -> OfficialCheckpoint:
    """Read an official checkpoint without unpickling code: weights_only=True, with
    argparse.Namespace allowed so that the stored build arguments can be read."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:  # memory-mapped where the file format allows it: the XXL files are 6 GB
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable or unsafe files
        raise ConversionError(
            f"{path}: cannot be read as a weights-only torch file ({_load_error(err)})"
        ) from None
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    args: dict[str, Any] = {}
    if kind == "bigr":
        args = plain_args(obj.get("args"))
        if key in obj and isinstance(obj[key], dict):
            obj = obj[key]
        elif not any(isinstance(v, Tensor) for v in obj.values()):
            raise ConversionError(
                f"{path}: no '{key}' entry (top-level keys: {_list(sorted(map(str, obj)))})"
            )
    else:
        if "ema" in obj and isinstance(obj["ema"], dict):
            raise ConversionError(
                f"{path}: this looks like a BiGR checkpoint (an 'ema' entry of weights); "
                "convert it with `bigr convert bigr`"
            )
        obj = dict(obj)
        for name in ("hparams", "args"):
            if name in obj and not isinstance(obj[name], Tensor):
                args = {**plain_args(obj.pop(name)), **args}
    tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    others = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
    if others:
        raise ConversionError(f"{path}: entries that are not tensors: {_list(others)}")
    return OfficialCheckpoint(tensors, args)


def load_official_file(path: str | Path, kind: str, key: str = "ema") -> dict[str, Tensor]:
    """Read an official checkpoint without unpickling code; returns its flat state dict."""
    return read_official_checkpoint(path, kind, key).state


def load_official(
    path: str | Path, config: Config, key: str = "ema"
) -> tuple[BiGR | BinaryAutoencoder, ConversionReport]:
    kind = "bigr" if isinstance(config, BiGRConfig) else "bae"
    state, report = convert_state_dict(load_official_file(path, kind, key), config)
    model = build_model(config)
    model.load_state_dict(state, strict=True)
    return model.eval(), report
