"""A BiGR configuration read off an official `.pt` checkpoint (`infer_bigr_config`): the
transformer and head sizes from the shapes, the settings from the stored `args`."""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any, NamedTuple

from torch import Tensor

from ..config import (
    PRESETS,
    BiGRConfig,
    HeadConfig,
    apply_overrides,
)
from .checkpoints import (
    BIGR_SCHEDULER,
    ConversionError,
    plain_args,
    strip_wrappers,
)
from .inference import (
    BUILDER_PRESETS,
    MULTIPLE_OF_CANDIDATES,
    Inference,
    InferredConfig,
    count_indexed,
    kv_heads,
    override_fields,
    validated,
    with_ffn,
)


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
    inf = Inference(strip_wrappers(official), plain_args(args), "BiGR")
    over = override_fields(overrides)
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
    return InferredConfig(validated(config), inf.sources)


def _transformer_sizes(inf: Inference) -> None:
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
    depth = count_indexed(inf.state, "layers.")
    if not depth:
        raise ConversionError("the checkpoint has no layers.<i> entries (is it a BiGR checkpoint?)")
    inf.put("depth", depth, f"layers.0-{depth - 1}")
    inf.check("n_layer", depth, "layers:")
    use_adaln = "adaLN.1.weight" in inf.state
    inf.put("use_adaln", use_adaln, "adaLN.1.weight " + ("present" if use_adaln else "absent"))
    inf.check("use_adaLN", use_adaln, "use_adaLN")


def _head_sizes(inf: Inference) -> None:
    """Width and depth of the denoiser, from its tensors."""
    width = inf.shape("denoise_mlp.x_embedder.weight")[0]
    inf.put("head.dim", width, "denoise_mlp.x_embedder.weight")
    inf.check("denoise_hidden_dim", width, "denoiser width")
    head_depth = count_indexed(inf.state, "denoise_mlp.blocks.")
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


def _bigr_base(inf: Inference, preset: BiGRConfig | None) -> _Base:
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


def _diffusion_steps(inf: Inference, base: _Base) -> None:
    """From the schedule buffers if the file has them, else the arguments, else the base."""
    buffers = sorted(k for k in inf.state if k.startswith(BIGR_SCHEDULER))
    if buffers:
        steps = inf.shape(buffers[0])[0] - 1
        inf.put("head.diffusion_steps", steps, f"{buffers[0]}: {steps + 1} entries")
        inf.check("n_sample_steps", steps, "schedule steps")
    else:
        default = base.config.head.diffusion_steps
        inf.from_args("head.diffusion_steps", ("n_sample_steps",), int, default, base.source)


def _transformer_settings(inf: Inference, base: _Base) -> None:
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


def _loss_settings(inf: Inference, base: _Base) -> None:
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


def _class_table(inf: Inference, base: _Base) -> None:
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


def _attention_heads(inf: Inference, base: _Base, over: set[str]) -> None:
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


def _stored_ffn(inf: Inference, base: _Base) -> tuple[int, float | None, str]:
    """FFN rounding (multiple_of, multiplier, source) tried first: the stored values if any,
    else the base's; `_with_ffn_width` searches further."""
    if inf.has("multiple_of") or inf.has("ffn_dim_multiplier"):
        multiple_of = inf.get("multiple_of", int) if inf.has("multiple_of") else 256
        multiplier = inf.get("ffn_dim_multiplier", float) if inf.has("ffn_dim_multiplier") else None
        return multiple_of, multiplier, "the stored"
    return base.config.multiple_of, base.config.ffn_multiplier, base.source


def _bigr_from_values(
    inf: Inference,
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


def _with_kv_heads(inf: Inference, config: BiGRConfig) -> BiGRConfig:
    """Key/value heads from the fused q|k|v rows, given the width and the heads."""
    rows = inf.shape("layers.0.attention.wqkv.weight")[0]
    kv = kv_heads(rows, config.dim, config.heads)
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
    inf: Inference, config: BiGRConfig, ffn: tuple[int, float | None, str]
) -> BiGRConfig:
    """The first FFN rounding reproducing the FFN width: `ffn`, else MULTIPLE_OF_CANDIDATES."""
    hidden = inf.shape("layers.0.feed_forward.w1.weight")[0]
    candidates = [ffn]
    candidates += [(m, None, "a search of") for m in MULTIPLE_OF_CANDIDATES]
    found = next(
        (
            (trial, src)
            for m, x, src in candidates
            if (trial := with_ffn(config, m, x)).ffn_hidden == hidden
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
