"""Configurations of the official BiGR release: from its build arguments, or off a checkpoint.

Owns: the mapping of the release's `ModelArgs` / B-AE `hparams` dicts to configs
(`bigr_config_from_model_args`, `tokenizer_config_from_hparams`), and the inference of a
configuration from a checkpoint alone (`infer_bigr_config`, `infer_tokenizer_config`,
`infer_config`): sizes from the tensors' shapes, the rest from the build arguments stored beside
them (the release's `args` Namespace or a B-AE `hparams` dict), a contradiction between the two
being an error, and the `--set` flag needed named for what neither shows. Each inferred value
keeps its source (`InferredConfig`), printed by `bigr convert` next to the value;
`config_differences` names the fields where an inferred config and a `--preset` differ.

Leaves to others: reading checkpoint files and converting state dicts (`bigr.official`, whose
key tables and `official_key_shapes` the inference reads). Nothing here is used at run time
after conversion.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import Tensor

from .config import (
    PRESETS,
    BiGRConfig,
    Config,
    HeadConfig,
    TokenizerConfig,
    apply_overrides,
    to_dict,
)
from .official import (
    BIGR_SCHEDULER,
    ConversionError,
    OfficialCheckpoint,
    official_key_shapes,
    plain_args,
    strip_wrappers,
)

# -- build arguments -------------------------------------------------------------------------------


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


# -- configuration inferred from a checkpoint ------------------------------------------------------

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


# -- BiGR ------------------------------------------------------------------------------------------


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
    inf = _Inference(strip_wrappers(official), plain_args(args), "BiGR")
    over = _override_fields(overrides)
    _transformer_sizes(inf)
    _head_sizes(inf)
    base = _bigr_base(inf, preset)
    _diffusion_steps(inf, base)
    _transformer_settings(inf, base)
    _loss_settings(inf, base)
    _class_table(inf, base)
    _attention_heads(inf, base, over)
    ffn = _stored_ffn(inf, base)
    config = _bigr_from_values(inf, ffn, overrides, over)
    if "kv_heads" not in over:
        config = _with_kv_heads(inf, config)
    if not over & {"multiple_of", "ffn_multiplier"}:
        config = _with_ffn_width(inf, config, ffn)
    return InferredConfig(_validated(config), inf.sources)


def _transformer_sizes(inf: _Inference) -> None:
    """Width, grid, code bits, depth and adaLN, from the transformer's tensors."""
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
    depth = _count_indexed(inf.state, "layers.")
    if not depth:
        raise ConversionError("the checkpoint has no layers.<i> entries (is it a BiGR checkpoint?)")
    inf.put("depth", depth, f"layers.0-{depth - 1}")
    inf.check("n_layer", depth, "layers:")
    use_adaln = "adaLN.1.weight" in inf.state
    inf.put("use_adaln", use_adaln, "adaLN.1.weight " + ("present" if use_adaln else "absent"))
    inf.check("use_adaLN", use_adaln, "use_adaLN")


def _head_sizes(inf: _Inference) -> None:
    """Width and depth of the denoiser, from its tensors."""
    width = inf.shape("denoise_mlp.x_embedder.weight")[0]
    inf.put("head.width", width, "denoise_mlp.x_embedder.weight")
    inf.check("denoise_hidden_dim", width, "denoiser width")
    head_depth = _count_indexed(inf.state, "denoise_mlp.blocks.")
    inf.put("head.depth", head_depth, f"denoise_mlp.blocks: {head_depth}")
    inf.check("num_block_mlp", head_depth, "denoiser blocks:")


class _Base(NamedTuple):
    """Where the fields that neither the weights nor the stored arguments show come from."""

    config: BiGRConfig
    source: str
    preset: BiGRConfig | None  # --preset
    builder: Any  # args["model"], if stored
    builder_preset: BiGRConfig | None  # the preset of a known builder matching the weights
    builder_note: str  # why the builder gives nothing, for the heads' error message


def _bigr_base(inf: _Inference, preset: BiGRConfig | None) -> _Base:
    """`preset` if given, else the preset of the stored builder, else the release's defaults."""
    dim, depth = inf.values["dim"], inf.values["depth"]
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
    return _Base(base, base_src, preset, builder, builder_preset, builder_note)


def _diffusion_steps(inf: _Inference, base: _Base) -> None:
    """From the schedule buffers if the file has them, else the arguments, else the base."""
    buffers = sorted(k for k in inf.state if k.startswith(BIGR_SCHEDULER))
    if buffers:
        steps = inf.shape(buffers[0])[0] - 1
        inf.put("head.diffusion_steps", steps, f"{buffers[0]}: {steps + 1} entries")
        inf.check("n_sample_steps", steps, "schedule steps")
    else:
        default = base.config.head.diffusion_steps
        inf.from_args("head.diffusion_steps", ("n_sample_steps",), int, default, base.source)


def _transformer_settings(inf: _Inference, base: _Base) -> None:
    """Rotary base, norm epsilon, class tokens and dropouts, from the arguments or the base."""
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
        inf.from_args(name, names, kind, getattr(base.config, name), base.source)
    if inf.values["drop_path"] > 0:  # the training script turns dropout off under drop-path
        for name in ("resid_dropout", "ffn_dropout"):
            if inf.sources[name] == "args dropout_p":
                inf.put(name, 0.0, "0 with drop_path_rate > 0 (as the training script does)")


def _loss_settings(inf: _Inference, base: _Base) -> None:
    """The head's loss settings from the arguments or the base; what the release fixes."""
    for name, names, kind in (
        ("head.predict_flip", ("p_flip",), bool),
        ("head.alpha", ("alpha",), float),
        ("head.aux_weight", ("aux",), float),
    ):
        default = getattr(base.config.head, name.split(".")[1])
        inf.from_args(name, names, kind, default, base.source)
    if inf.has("focal"):
        focal = inf.get("focal", float)
        inf.put("head.focal_gamma", focal if focal >= 0 else None, "args focal")
    else:
        inf.put("head.focal_gamma", base.config.head.focal_gamma, base.source)
    inf.put("head.direct", False, "the release's diffusion head")
    inf.put("text_dim", 0, "class table (the release conditions on class ids)")


def _class_table(inf: _Inference, base: _Base) -> None:
    """Classes and class dropout: the table's rows hold a null class exactly when dropout > 0."""
    rows = inf.shape("cls_embedding.embedding_table.weight")[0]
    drop = inf.from_args(
        "class_dropout", ("class_dropout_prob",), float, base.config.class_dropout, base.source
    )
    if not inf.has("num_classes"):
        classes = rows - 1 if drop > 0 else rows
        inf.put(
            "num_classes",
            classes,
            f"class table: {rows} rows" + (", less the null class" if drop > 0 else ""),
        )
        return
    drop_given = inf.sources["class_dropout"].startswith("args")
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


def _attention_heads(inf: _Inference, base: _Base, over: set[str]) -> None:
    """From n_head, else the builder, else --preset, else --set; the weights cannot tell."""
    if inf.has("n_head"):
        inf.put("heads", inf.get("n_head", int), "args n_head")
    elif base.builder_preset is not None:
        builder = base.builder
        inf.put(
            "heads", base.builder_preset.heads, f"builder {builder} ({BUILDER_PRESETS[builder]})"
        )
    elif base.preset is not None:
        inf.put("heads", base.preset.heads, "--preset")
    elif "heads" in over:
        inf.put("heads", 1, "--set")  # placeholder, replaced by the override
    else:
        dim, hint = inf.values["dim"], ""
        if dim % 64 == 0:
            hint = f" (the released models' head_dim 64 would give heads={dim // 64})"
        raise ConversionError(
            "the number of attention heads cannot be read from the weights, and the checkpoint "
            f"stores no n_head{base.builder_note}: pass --set heads=N{hint}"
        )


def _stored_ffn(inf: _Inference, base: _Base) -> tuple[int, float | None, str]:
    """FFN rounding (multiple_of, multiplier, source) tried first: the stored values if any,
    else the base's; `_with_ffn_width` searches further."""
    if inf.has("multiple_of") or inf.has("ffn_dim_multiplier"):
        multiple_of = inf.get("multiple_of", int) if inf.has("multiple_of") else 256
        multiplier = inf.get("ffn_dim_multiplier", float) if inf.has("ffn_dim_multiplier") else None
        return multiple_of, multiplier, "the stored"
    return base.config.multiple_of, base.config.ffn_multiplier, base.source


def _bigr_from_values(
    inf: _Inference,
    ffn: tuple[int, float | None, str],
    overrides: list[str] | tuple[str, ...],
    over: set[str],
) -> BiGRConfig:
    """The config of the values found so far, with the overrides applied."""
    v = inf.values
    top = {k: val for k, val in v.items() if "." not in k}
    head = {k.split(".", 1)[1]: val for k, val in v.items() if k.startswith("head.")}
    config = BiGRConfig(
        **top,
        kv_heads=None,
        multiple_of=ffn[0],
        ffn_multiplier=ffn[1],
        head=HeadConfig(**head),
    )
    config = apply_overrides(config, list(overrides))
    for name in over:
        inf.sources[name] = "--set"
    return config


def _with_kv_heads(inf: _Inference, config: BiGRConfig) -> BiGRConfig:
    """Key/value heads from the fused q|k|v rows, given the width and the heads."""
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
    return config


def _with_ffn_width(
    inf: _Inference, config: BiGRConfig, ffn: tuple[int, float | None, str]
) -> BiGRConfig:
    """The first FFN rounding reproducing the FFN width: `ffn`, else MULTIPLE_OF_CANDIDATES."""
    hidden = inf.shape("layers.0.feed_forward.w1.weight")[0]
    candidates = [ffn]
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
    return config


# -- B-AE ------------------------------------------------------------------------------------------


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
    enc_attention = _encoder_sizes(inf)
    dec_blocks = _decoder_sizes(inf, enc_attention)
    _check_hparams(inf, dec_blocks)
    resolutions = _image_size(inf, over, preset)
    config = TokenizerConfig(
        **{k: val for k, val in inf.values.items() if k != "attn_resolutions"},
        attn_resolutions=resolutions or (),
    )
    config = apply_overrides(config, list(overrides))
    for name in over:
        inf.sources[name] = "--set"
    if "attn_resolutions" not in over:
        config = _with_attention_levels(inf, config, resolutions, enc_attention)
    return InferredConfig(_validated(config), inf.sources)


def _encoder_sizes(inf: _Inference) -> list[bool]:
    """Channels, widths, blocks and code bits from the encoder; returns which levels attend."""
    enc = _block_kinds(inf.state, "encoder.blocks.")
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
    inf.put("in_channels", in_channels, "encoder.blocks.0")
    inf.put("base_channels", base, "encoder.blocks.0")
    inf.put("channel_mult", mult, "encoder residual block widths")
    inf.put("res_blocks", res_blocks, f"encoder: {res_blocks} residual blocks per level")
    inf.put("latent_channels", enc[-1][2], f"encoder.blocks.{len(enc) - 1}")
    inf.put("code_bits", inf.shape("quantize.embed.weight")[0], "quantize.embed.weight")
    return [attention for _, attention, _ in levels]


def _decoder_sizes(inf: _Inference, enc_attention: list[bool]) -> int:
    """norm_first and the decoder's blocks, checked to mirror the encoder; returns the blocks
    per level."""
    dec = _block_kinds(inf.state, "generator.blocks.")
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
    if len(counts) != 1 or len(dec_levels) != len(enc_attention):
        raise ConversionError("the decoder's levels do not mirror the encoder's")
    if [attention for _, attention, _ in dec_levels] != enc_attention:
        raise ConversionError("the decoder's attention levels differ from the encoder's")
    (dec_blocks,) = counts
    res_blocks = inf.values["res_blocks"]
    inf.put(
        "decoder_res_blocks",
        None if dec_blocks == res_blocks else dec_blocks,
        f"decoder: {dec_blocks} residual blocks per level",
    )
    return dec_blocks


def _check_hparams(inf: _Inference, dec_blocks: int) -> None:
    """Stored hparams that contradict the weights are an error."""
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
    mult = v["channel_mult"]
    if inf.has("ch_mult") and tuple(inf.args["ch_mult"]) != mult:
        raise ConversionError(
            f"the stored hparams say ch_mult={inf.args['ch_mult']}, but the weights have {mult}"
        )
    if inf.has("gen_mul") and int(v["res_blocks"] * inf.get("gen_mul", float)) != dec_blocks:
        raise ConversionError(
            f"the stored hparams say gen_mul={inf.args['gen_mul']}, but the decoder has "
            f"{dec_blocks} residual blocks per level"
        )


def _image_size(
    inf: _Inference, over: set[str], preset: TokenizerConfig | None
) -> tuple[int, ...] | None:
    """The image size from hparams, else a tokenizer preset of the same shapes, else --preset,
    else --set; returns the attention resolutions found with it (None if none were)."""
    resolutions: tuple[int, ...] | None = None
    if inf.has("img_size"):
        inf.put("image_size", inf.get("img_size", int), "hparams img_size")
        if inf.has("attn_resolutions"):
            resolutions = tuple(int(r) for r in inf.args["attn_resolutions"])
            inf.put("attn_resolutions", resolutions, "hparams attn_resolutions")
        return resolutions
    shapes = {k: tuple(t.shape) for k, t in inf.state.items()}
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
        inf.put("image_size", 1, "--set")  # placeholder, replaced by the override
    else:
        raise ConversionError(
            "the image size cannot be read from the weights (convolutions work at any size), "
            "the file stores no hparams and its shapes match no tokenizer preset: pass "
            "--set image_size=N"
        )
    return resolutions


def _with_attention_levels(
    inf: _Inference,
    config: TokenizerConfig,
    resolutions: tuple[int, ...] | None,
    enc_attention: list[bool],
) -> TokenizerConfig:
    """Attention resolutions derived from the levels with attention blocks, unless the ones
    found already give those levels at this image size."""
    count = len(enc_attention)
    if (
        resolutions is not None
        and _attention_levels(config.image_size, resolutions, count) == enc_attention
    ):
        return config
    derived = tuple(config.image_size // 2**i for i in range(count) if enc_attention[i])
    config = dataclasses.replace(config, attn_resolutions=derived)
    inf.sources["attn_resolutions"] = "levels with attention blocks, at this image size"
    return config


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
