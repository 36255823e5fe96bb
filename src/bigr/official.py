"""Import of the official BiGR release: checkpoints and build arguments.

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

Unknown, missing or mis-shaped keys are refused with a message naming them. Also maps the
release's `ModelArgs` / B-AE `hparams` dicts to configs, and infers a configuration from a
checkpoint alone (`infer_bigr_config`, `infer_tokenizer_config`): sizes from the tensors'
shapes, the rest from the build arguments stored beside them (the release's `args` Namespace,
read under weights_only with only argparse.Namespace allowed), naming the `--set` flag needed
for what neither shows. Nothing here is used at run time after conversion.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import schedules
from .config import (
    PRESETS,
    BiGRConfig,
    Config,
    HeadConfig,
    TokenizerConfig,
    apply_overrides,
    to_dict,
)
from .model import BiGR, build_model
from .tokenizer import BinaryAutoencoder, ResBlock

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
        kept = {}
        for key, value in official.items():
            if key.startswith("ae."):
                kept[key[3:]] = value
            elif key.startswith(BAE_TRAINING_ONLY):
                report.training_only_dropped += 1
            else:
                kept[key] = value  # reported as unknown below
        official = kept
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


# -- build arguments ---------------------------------------------------------------------------


def bigr_config_from_model_args(args: dict[str, Any]) -> BiGRConfig:
    """The release's `ModelArgs` (as a dict) -> BiGRConfig. Refuses what the release can build
    but this package does not reproduce."""
    grid = round(args["block_size"] ** 0.5)
    if grid * grid != args["block_size"]:
        raise ValueError(f"block_size {args['block_size']} is not a square grid")
    if args.get("seq_len", args["block_size"]) != args["block_size"]:
        raise ValueError(f"seq_len {args['seq_len']} differs from block_size {args['block_size']}")
    focal = float(args.get("focal", 0.0))
    return BiGRConfig(
        dim=args["dim"],
        depth=args["n_layer"],
        heads=args["n_head"],
        kv_heads=args.get("n_kv_head"),
        multiple_of=args.get("multiple_of", 256),
        ffn_multiplier=args.get("ffn_dim_multiplier"),
        rope_base=float(args.get("rope_base", 10000)),
        norm_eps=float(args.get("norm_eps", 1e-5)),
        code_bits=args["binary_size"],
        grid_size=grid,
        num_classes=args["num_classes"],
        class_tokens=args.get("cls_token_num", 1),
        class_dropout=float(args.get("class_dropout_prob", 0.1)),
        use_adaln=bool(args.get("use_adaLN", True)),
        token_dropout=float(args.get("token_dropout_p", 0.0)),
        attn_dropout=float(args.get("attn_dropout_p", 0.0)),
        resid_dropout=float(args.get("resid_dropout_p", 0.0)),
        ffn_dropout=float(args.get("ffn_dropout_p", 0.0)),
        drop_path=float(args.get("drop_path_rate", 0.0)),
        head=HeadConfig(
            width=args["denoise_hidden_dim"],
            depth=args["num_block_mlp"],
            diffusion_steps=args["n_sample_steps"],
            predict_flip=bool(args.get("p_flip", False)),
            focal_gamma=focal if focal >= 0 else None,
            alpha=float(args.get("alpha", -1)),
            aux_weight=float(args.get("aux", 0.0)),
        ),
    )


def tokenizer_config_from_hparams(h: dict[str, Any]) -> TokenizerConfig:
    """The B-AE `hparams` dict -> TokenizerConfig."""
    if h.get("use_tanh", False):
        raise ValueError(
            "use_tanh=True (±1 codes) is not supported; every BiGR tokenizer uses a sigmoid"
        )
    res_blocks = h["res_blocks"]
    decoder_blocks = int(res_blocks * h.get("gen_mul", 1.0))
    return TokenizerConfig(
        in_channels=h.get("n_channels", 3),
        base_channels=h["nf"],
        channel_mult=tuple(h["ch_mult"]),
        res_blocks=res_blocks,
        decoder_res_blocks=None if decoder_blocks == res_blocks else decoder_blocks,
        attn_resolutions=tuple(h["attn_resolutions"]),
        latent_channels=h["emb_dim"],
        code_bits=h["codebook_size"],
        image_size=h["img_size"],
        norm_first=bool(h.get("norm_first", False)),
    )


# -- configuration inferred from a checkpoint --------------------------------------------------

# The release's model builders (`--model`, stored as args["model"]) -> the preset holding the
# sizes each fixes (dim, layers, heads); "custom-tiny" names the reference data's tiny model
# (reference README §3), built from explicit arguments.
BUILDER_PRESETS = {
    "BiGR-L": "bigr-l-d24",
    "BiGR-XL": "bigr-xl-d24",
    "BiGR-XXL": "bigr-xxl-d24",
    "BiGR-L-512": "bigr-l-d32-512",
    "custom-tiny": "bigr-tiny",
}
# multiple_of values tried, in order, when the build arguments do not reproduce the FFN width
# (the release's 256 first); no ffn_dim_multiplier is searched for.
MULTIPLE_OF_CANDIDATES = (256, 128, 64, 32, 16, 8, 512, 1024)


@dataclass
class InferredConfig:
    """A configuration read off a checkpoint, with where each field's value came from."""

    config: Config
    sources: dict[str, str]  # dotted field name -> source

    def lines(self) -> list[str]:
        """One `field = value  (source)` line per field, values as JSON (as `--set` takes)."""
        flat = _flatten(to_dict(self.config))
        width = max(len(name) for name in flat)
        return [
            f"{name:<{width}} = {json.dumps(value)}  ({self.sources.get(name, 'default')})"
            for name, value in flat.items()
        ]


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def config_differences(a: Config, b: Config) -> list[tuple[str, Any, Any]]:
    """(dotted field, value in a, value in b) for every field where two configs differ."""
    if type(a) is not type(b):
        return [("kind", type(a).__name__, type(b).__name__)]
    fa, fb = _flatten(to_dict(a)), _flatten(to_dict(b))
    return [(name, fa[name], fb[name]) for name in fa if fa[name] != fb[name]]


def _override_fields(overrides: list[str] | tuple[str, ...]) -> set[str]:
    return {item.split("=", 1)[0].strip() for item in overrides if "=" in item}


class _Inference:
    """Bookkeeping of one inference: the tensors' shapes, the stored arguments, the values
    found so far and their sources."""

    def __init__(self, state: dict[str, Tensor], args: dict[str, Any], what: str) -> None:
        self.state, self.args, self.what = state, args, what
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {}

    def shape(self, key: str) -> tuple[int, ...]:
        if key not in self.state:
            raise ConversionError(
                f"the checkpoint has no {key}, which the configuration is read from "
                f"(is it a {self.what} checkpoint?)"
            )
        return tuple(self.state[key].shape)

    def put(self, name: str, value: Any, source: str) -> None:
        self.values[name], self.sources[name] = value, source

    def has(self, name: str) -> bool:
        return self.args.get(name) is not None

    def get(self, name: str, kind: type) -> Any:
        value = self.args[name]
        ok = {
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, int | float) and not isinstance(value, bool),
            bool: isinstance(value, bool) or value in (0, 1),
            str: isinstance(value, str),
        }[kind]
        if not ok:
            raise ConversionError(
                f"stored build argument {name}={value!r} is not a{'n' if kind is int else ''} "
                f"{kind.__name__}"
            )
        return kind(value)

    def check(self, arg: str, value: Any, what: str) -> None:
        """A stored argument that contradicts what the weights show is an error."""
        if self.has(arg):
            stored = self.get(arg, type(value))
            if stored != value:
                raise ConversionError(
                    f"the stored build arguments say {arg}={stored!r}, but the weights have "
                    f"{what} {value!r}"
                )

    def from_args(self, name: str, args: tuple[str, ...], kind: type, base: Any, src: str) -> Any:
        for arg in args:
            if self.has(arg):
                self.put(name, self.get(arg, kind), f"args {arg}")
                return self.values[name]
        self.put(name, base, src)
        return base


def _count_indexed(state: dict[str, Tensor], prefix: str) -> int:
    """How many `prefix<i>.` entries there are (checked to be numbered 0..n-1)."""
    found = set()
    for key in state:
        if key.startswith(prefix):
            index = key[len(prefix) :].split(".", 1)[0]
            if index.isdigit():
                found.add(int(index))
    if found != set(range(len(found))):
        raise ConversionError(f"{prefix}<i> entries are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def _kv_heads(rows: int, dim: int, heads: int) -> int | None:
    """Key/value heads giving `rows` fused q|k|v rows, or None if none does."""
    if heads <= 0 or dim % heads:
        return None
    head_dim = dim // heads
    if rows % head_dim or (rows // head_dim - heads) <= 0 or (rows // head_dim - heads) % 2:
        return None
    kv = (rows // head_dim - heads) // 2
    return kv if heads % kv == 0 else None


def _with_ffn(config: BiGRConfig, multiple_of: int, multiplier: float | None) -> BiGRConfig:
    return dataclasses.replace(config, multiple_of=multiple_of, ffn_multiplier=multiplier)


def _validated(config: Config) -> Config:
    try:
        config.validate()
    except ValueError as err:
        raise ConversionError(f"the inferred configuration is invalid: {err}") from None
    return config


def infer_bigr_config(
    official: dict[str, Tensor],
    args: dict[str, Any] | argparse.Namespace | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    preset: BiGRConfig | None = None,
) -> InferredConfig:
    """The BiGRConfig of an official state dict, from its tensors' shapes and the stored build
    arguments (`args`), with `--set` style `overrides` applied.

    Shapes give the sizes; `args` give what shapes cannot (heads, loss and dropout settings),
    and a contradiction between the two is an error. Fields neither shows come from `preset`
    when given, else from the builder named in args["model"], else the release's defaults.
    The attention heads have no default: without n_head, a known builder, a preset or
    `--set heads=N` the inference fails saying so.
    """
    state = strip_wrappers(official)
    inf = _Inference(state, plain_args(args), "BiGR")
    over = _override_fields(overrides)

    dim = inf.shape("mask_tok")[-1]
    inf.put("dim", dim, "mask_tok")
    inf.check("dim", dim, "width")
    n = inf.shape("diffusion_pos_embed_learned")[1]
    grid = math.isqrt(n)
    if grid * grid != n:
        raise ConversionError(f"diffusion_pos_embed_learned has {n} positions: not a square grid")
    inf.put("grid_size", grid, f"diffusion_pos_embed_learned: {n} positions")
    for arg in ("block_size", "seq_len"):
        inf.check(arg, n, "positions in diffusion_pos_embed_learned:")
    bits = inf.shape("tok_embeddings.weight")[1]
    inf.put("code_bits", bits, "tok_embeddings.weight")
    for arg in ("binary_size", "codebook_size"):
        inf.check(arg, bits, "code bits in tok_embeddings.weight:")
    depth = _count_indexed(state, "layers.")
    if not depth:
        raise ConversionError("the checkpoint has no layers.<i> entries (is it a BiGR checkpoint?)")
    inf.put("depth", depth, f"layers.0-{depth - 1}")
    inf.check("n_layer", depth, "layers:")
    use_adaln = "adaLN.1.weight" in state
    inf.put("use_adaln", use_adaln, "adaLN.1.weight " + ("present" if use_adaln else "absent"))
    inf.check("use_adaLN", use_adaln, "use_adaLN")
    width = inf.shape("denoise_mlp.x_embedder.weight")[0]
    inf.put("head.width", width, "denoise_mlp.x_embedder.weight")
    inf.check("denoise_hidden_dim", width, "denoiser width")
    head_depth = _count_indexed(state, "denoise_mlp.blocks.")
    inf.put("head.depth", head_depth, f"denoise_mlp.blocks: {head_depth}")
    inf.check("num_block_mlp", head_depth, "denoiser blocks:")

    builder = inf.args.get("model")
    builder_preset, builder_note = None, ""
    if isinstance(builder, str) and builder in BUILDER_PRESETS:
        candidate = PRESETS[BUILDER_PRESETS[builder]]
        if (candidate.dim, candidate.depth) == (dim, depth):
            builder_preset = candidate
        else:
            builder_note = (
                f"; its builder {builder!r} has dim {candidate.dim} and {candidate.depth} "
                f"layers, the weights dim {dim} and {depth} layers"
            )
    elif builder is not None:
        builder_note = f"; its builder {builder!r} is not one of {', '.join(BUILDER_PRESETS)}"
    if preset is not None:
        base, base_src = preset, "--preset"
    elif builder_preset is not None:
        base, base_src = builder_preset, f"builder {builder}"
    else:
        base, base_src = BiGRConfig(), "release default"

    buffers = sorted(k for k in state if k.startswith(BIGR_SCHEDULER))
    if buffers:
        steps = inf.shape(buffers[0])[0] - 1
        inf.put("head.diffusion_steps", steps, f"{buffers[0]}: {steps + 1} entries")
        inf.check("n_sample_steps", steps, "schedule steps")
    else:
        inf.from_args(
            "head.diffusion_steps", ("n_sample_steps",), int, base.head.diffusion_steps, base_src
        )

    for name, names, kind in (
        ("rope_base", ("rope_base",), float),
        ("norm_eps", ("norm_eps",), float),
        ("class_tokens", ("cls_token_num",), int),
        ("token_dropout", ("token_dropout_p",), float),
        ("attn_dropout", ("attn_dropout_p",), float),
        ("drop_path", ("drop_path_rate",), float),
        ("resid_dropout", ("resid_dropout_p", "dropout_p"), float),
        ("ffn_dropout", ("ffn_dropout_p", "dropout_p"), float),
    ):
        inf.from_args(name, names, kind, getattr(base, name), base_src)
    if inf.values["drop_path"] > 0:  # the training script turns dropout off under drop-path
        for name in ("resid_dropout", "ffn_dropout"):
            if inf.sources[name] == "args dropout_p":
                inf.put(name, 0.0, "0 with drop_path_rate > 0 (as the training script does)")
    for name, names, kind in (
        ("head.predict_flip", ("p_flip",), bool),
        ("head.alpha", ("alpha",), float),
        ("head.aux_weight", ("aux",), float),
    ):
        inf.from_args(name, names, kind, getattr(base.head, name.split(".")[1]), base_src)
    if inf.has("focal"):
        focal = inf.get("focal", float)
        inf.put("head.focal_gamma", focal if focal >= 0 else None, "args focal")
    else:
        inf.put("head.focal_gamma", base.head.focal_gamma, base_src)
    inf.put("head.direct", False, "the release's diffusion head")
    inf.put("text_dim", 0, "class table (the release conditions on class ids)")

    rows = inf.shape("cls_embedding.embedding_table.weight")[0]
    drop = inf.from_args(
        "class_dropout", ("class_dropout_prob",), float, base.class_dropout, base_src
    )
    drop_given = inf.sources["class_dropout"].startswith("args")
    if inf.has("num_classes"):
        classes = inf.get("num_classes", int)
        inf.put("num_classes", classes, "args num_classes")
        if rows == classes + 1 and drop == 0:
            if drop_given:
                raise ConversionError(
                    f"the class table has {rows} rows, a null class beyond num_classes="
                    f"{classes}, but the stored class_dropout_prob is 0"
                )
            inf.put("class_dropout", 0.1, f"release default (the class table has {rows} rows)")
        elif rows == classes and drop > 0:
            if drop_given:
                raise ConversionError(
                    f"the class table has {rows} rows, no null class beyond num_classes="
                    f"{classes}, but the stored class_dropout_prob is {drop}"
                )
            inf.put("class_dropout", 0.0, f"the class table has no null-class row ({rows} rows)")
        elif rows not in (classes, classes + 1):
            raise ConversionError(
                f"the class table has {rows} rows, which does not fit num_classes={classes}"
            )
    else:
        classes = rows - 1 if drop > 0 else rows
        inf.put(
            "num_classes",
            classes,
            f"class table: {rows} rows" + (", less the null class" if drop > 0 else ""),
        )

    if inf.has("n_head"):
        inf.put("heads", inf.get("n_head", int), "args n_head")
    elif builder_preset is not None:
        inf.put("heads", builder_preset.heads, f"builder {builder} ({BUILDER_PRESETS[builder]})")
    elif preset is not None:
        inf.put("heads", preset.heads, "--preset")
    elif "heads" in over:
        inf.put("heads", 1, "--set")  # placeholder, replaced by the override below
    else:
        hint = ""
        if dim % 64 == 0:
            hint = f" (the released models' head_dim 64 would give heads={dim // 64})"
        raise ConversionError(
            "the number of attention heads cannot be read from the weights, and the checkpoint "
            f"stores no n_head{builder_note}: pass --set heads=N{hint}"
        )
    # FFN rounding: the stored values if any (else the base's), then a search (below)
    if inf.has("multiple_of") or inf.has("ffn_dim_multiplier"):
        multiple_of = inf.get("multiple_of", int) if inf.has("multiple_of") else 256
        multiplier = inf.get("ffn_dim_multiplier", float) if inf.has("ffn_dim_multiplier") else None
        ffn_src = "the stored"
    else:
        multiple_of, multiplier, ffn_src = base.multiple_of, base.ffn_multiplier, base_src

    v = inf.values
    top = {k: val for k, val in v.items() if "." not in k}
    head = {k.split(".", 1)[1]: val for k, val in v.items() if k.startswith("head.")}
    config = BiGRConfig(
        **top,
        kv_heads=None,
        multiple_of=multiple_of,
        ffn_multiplier=multiplier,
        head=HeadConfig(**head),
    )
    config = apply_overrides(config, list(overrides))
    for name in over:
        inf.sources[name] = "--set"

    if "kv_heads" not in over:
        rows = inf.shape("layers.0.attention.wqkv.weight")[0]
        kv = _kv_heads(rows, config.dim, config.heads)
        if kv is None:
            raise ConversionError(
                f"layers.0.attention.wqkv.weight has {rows} rows, which no number of key/value "
                f"heads gives with dim {config.dim} and heads {config.heads} "
                f"({inf.sources['heads']}): pass --set heads=N"
            )
        inf.check("n_kv_head", kv, "key/value heads (layers.0.attention.wqkv.weight):")
        config = dataclasses.replace(config, kv_heads=None if kv == config.heads else kv)
        inf.sources["kv_heads"] = f"layers.0.attention.wqkv.weight: {kv} key/value heads"
    if not over & {"multiple_of", "ffn_multiplier"}:
        hidden = inf.shape("layers.0.feed_forward.w1.weight")[0]
        candidates = [(multiple_of, multiplier, ffn_src)]
        candidates += [(m, None, "a search of") for m in MULTIPLE_OF_CANDIDATES]
        found = next(
            (
                (trial, src)
                for m, x, src in candidates
                if (trial := _with_ffn(config, m, x)).ffn_hidden == hidden
            ),
            None,
        )
        if found is None:
            raise ConversionError(
                f"the FFN width {hidden} (layers.0.feed_forward.w1.weight) is not reproduced by "
                f"multiple_of in {list(MULTIPLE_OF_CANDIDATES)} without a multiplier: pass "
                "--set multiple_of=N (and --set ffn_multiplier=X)"
            )
        config, src = found
        note = f"FFN width {hidden} (layers.0.feed_forward.w1.weight), by {src} rounding values"
        inf.sources["multiple_of"] = inf.sources["ffn_multiplier"] = note
    return InferredConfig(_validated(config), inf.sources)


def _block_kinds(state: dict[str, Tensor], prefix: str) -> list[tuple[str, int, int]]:
    """(kind, in channels, out channels) of each `prefix<i>` block of a B-AE."""
    groups: dict[int, dict[str, tuple[int, ...]]] = {}
    for key, value in state.items():
        if key.startswith(prefix):
            index, _, rest = key[len(prefix) :].partition(".")
            if index.isdigit():
                groups.setdefault(int(index), {})[rest] = tuple(value.shape)
    if sorted(groups) != list(range(len(groups))):
        raise ConversionError(f"{prefix}<i> entries are not numbered 0..n-1: {sorted(groups)}")
    out = []
    for i in range(len(groups)):
        g, weight = groups[i], groups[i].get("weight", ())
        if "conv1.weight" in g:
            out.append(("res", g["conv1.weight"][1], g["conv1.weight"][0]))
        elif "q.weight" in g:
            out.append(("attn", g["q.weight"][0], g["q.weight"][0]))
        elif "conv.weight" in g:
            out.append(("resample", g["conv.weight"][0], g["conv.weight"][0]))
        elif len(weight) == 4:
            out.append(("conv", weight[1], weight[0]))
        elif len(weight) == 1:
            out.append(("norm", weight[0], weight[0]))
        else:
            raise ConversionError(f"{prefix}{i}: unrecognised block ({', '.join(sorted(g))})")
    return out


def _levels(blocks: list[tuple[str, int, int]], where: str) -> list[tuple[int, bool, int]]:
    """(residual blocks, has attention, output channels) per resolution level."""
    levels: list[list[tuple[str, int, int]]] = [[]]
    for block in blocks:
        if block[0] == "resample":
            levels.append([])
        else:
            levels[-1].append(block)
    out = []
    for level in levels:
        kinds = [b[0] for b in level]
        res = kinds.count("res")
        attention = "attn" in kinds
        if not res or kinds != (["res", "attn"] if attention else ["res"]) * res:
            raise ConversionError(f"{where}: a level of blocks {kinds} is not a layout of the B-AE")
        out.append((res, attention, level[-1][2]))
    return out


def _attention_levels(image_size: int, resolutions: tuple[int, ...], count: int) -> list[bool]:
    return [image_size // 2**level in resolutions for level in range(count)]


def infer_tokenizer_config(
    official: dict[str, Tensor],
    hparams: dict[str, Any] | argparse.Namespace | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    preset: TokenizerConfig | None = None,
) -> InferredConfig:
    """The TokenizerConfig of an official B-AE state dict, from its shapes and stored `hparams`
    (when the file has them), with `--set` style `overrides` applied.

    The image size cannot be read from convolution weights: it comes from hparams, else from the
    tokenizer preset whose official tensors have exactly these shapes, else from `preset`, else
    `--set image_size=N`; the inference fails naming that flag when none gives it.
    """
    state = strip_wrappers(official)
    if any(k.startswith("ae.") for k in state):
        state = {k[3:]: v for k, v in state.items() if k.startswith("ae.")}
    inf = _Inference(state, plain_args(hparams), "B-AE")
    over = _override_fields(overrides)
    if inf.has("use_tanh") and inf.get("use_tanh", bool):
        raise ConversionError(
            "use_tanh=True (±1 codes) is not supported; every BiGR tokenizer uses a sigmoid"
        )

    enc = _block_kinds(state, "encoder.blocks.")
    kinds = [b[0] for b in enc]
    if kinds[:1] != ["conv"] or kinds[-5:] != ["res", "attn", "res", "norm", "conv"]:
        raise ConversionError(f"encoder.blocks {kinds} do not follow the B-AE layout")
    in_channels, base = enc[0][1], enc[0][2]
    levels = _levels(enc[1:-5], "encoder.blocks")
    counts = {res for res, _, _ in levels}
    if len(counts) != 1:
        raise ConversionError(f"encoder levels have different residual block counts: {counts}")
    (res_blocks,) = counts
    if any(channels % base for _, _, channels in levels):
        widths = [c for *_, c in levels]
        raise ConversionError(f"encoder widths {widths} are not multiples of {base}")
    mult = tuple(channels // base for _, _, channels in levels)
    enc_attention = [attention for _, attention, _ in levels]
    inf.put("in_channels", in_channels, "encoder.blocks.0")
    inf.put("base_channels", base, "encoder.blocks.0")
    inf.put("channel_mult", mult, "encoder residual block widths")
    inf.put("res_blocks", res_blocks, f"encoder: {res_blocks} residual blocks per level")
    inf.put("latent_channels", enc[-1][2], f"encoder.blocks.{len(enc) - 1}")
    inf.put("code_bits", inf.shape("quantize.embed.weight")[0], "quantize.embed.weight")

    dec = _block_kinds(state, "generator.blocks.")
    norm_first = bool(dec) and dec[0][0] == "norm"
    first = "a norm" if norm_first else "a conv"
    inf.put("norm_first", norm_first, f"generator.blocks.0 is {first}")
    body = dec[1:] if norm_first else dec
    kinds = [b[0] for b in body]
    if kinds[:4] != ["conv", "res", "attn", "res"] or kinds[-2:] != ["norm", "conv"]:
        layout = [b[0] for b in dec]
        raise ConversionError(f"generator.blocks {layout} do not follow the B-AE layout")
    dec_levels = _levels(body[4:-2], "generator.blocks")[::-1]
    counts = {res for res, _, _ in dec_levels}
    if len(counts) != 1 or len(dec_levels) != len(levels):
        raise ConversionError("the decoder's levels do not mirror the encoder's")
    if [attention for _, attention, _ in dec_levels] != enc_attention:
        raise ConversionError("the decoder's attention levels differ from the encoder's")
    (dec_blocks,) = counts
    inf.put(
        "decoder_res_blocks",
        None if dec_blocks == res_blocks else dec_blocks,
        f"decoder: {dec_blocks} residual blocks per level",
    )
    v = inf.values
    for arg, name in (
        ("n_channels", "in_channels"),
        ("nf", "base_channels"),
        ("res_blocks", "res_blocks"),
        ("emb_dim", "latent_channels"),
        ("codebook_size", "code_bits"),
        ("norm_first", "norm_first"),
    ):
        inf.check(arg, v[name], f"{name} ({inf.sources[name]})")
    if inf.has("ch_mult") and tuple(inf.args["ch_mult"]) != mult:
        raise ConversionError(
            f"the stored hparams say ch_mult={inf.args['ch_mult']}, but the weights have {mult}"
        )
    if inf.has("gen_mul") and int(res_blocks * inf.get("gen_mul", float)) != dec_blocks:
        raise ConversionError(
            f"the stored hparams say gen_mul={inf.args['gen_mul']}, but the decoder has "
            f"{dec_blocks} residual blocks per level"
        )

    resolutions: tuple[int, ...] | None = None
    if inf.has("img_size"):
        inf.put("image_size", inf.get("img_size", int), "hparams img_size")
        if inf.has("attn_resolutions"):
            resolutions = tuple(int(r) for r in inf.args["attn_resolutions"])
            inf.put("attn_resolutions", resolutions, "hparams attn_resolutions")
    else:
        shapes = {k: tuple(t.shape) for k, t in state.items()}
        matches = [
            (name, p)
            for name, p in PRESETS.items()
            if isinstance(p, TokenizerConfig) and official_key_shapes(p) == shapes
        ]
        if matches and len({(p.image_size, p.attn_resolutions) for _, p in matches}) == 1:
            match = matches[0][1]
            names = ", ".join(name for name, _ in matches)
            src = f"preset {names} (the same tensors and shapes)"
            inf.put("image_size", match.image_size, src)
            resolutions = match.attn_resolutions
            inf.put("attn_resolutions", resolutions, src)
        elif preset is not None:
            inf.put("image_size", preset.image_size, "--preset")
            resolutions = preset.attn_resolutions
            inf.put("attn_resolutions", resolutions, "--preset")
        elif "image_size" in over:
            inf.put("image_size", 1, "--set")  # placeholder, replaced by the override below
        else:
            raise ConversionError(
                "the image size cannot be read from the weights (convolutions work at any size), "
                "the file stores no hparams and its shapes match no tokenizer preset: pass "
                "--set image_size=N"
            )
    config = TokenizerConfig(
        **{k: val for k, val in v.items() if k != "attn_resolutions"},
        attn_resolutions=resolutions or (),
    )
    config = apply_overrides(config, list(overrides))
    for name in over:
        inf.sources[name] = "--set"
    if "attn_resolutions" not in over:
        count = len(mult)
        if (
            resolutions is None
            or _attention_levels(config.image_size, resolutions, count) != enc_attention
        ):
            derived = tuple(config.image_size // 2**i for i in range(count) if enc_attention[i])
            config = dataclasses.replace(config, attn_resolutions=derived)
            inf.sources["attn_resolutions"] = "levels with attention blocks, at this image size"
    return InferredConfig(_validated(config), inf.sources)


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
