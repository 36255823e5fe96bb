"""A B-AE configuration read off an official `.th` checkpoint (`infer_tokenizer_config`): the
encoder/decoder levels, blocks and attention from the shapes, the rest from `hparams`."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from torch import Tensor

from ..config import (
    PRESETS,
    TokenizerConfig,
    apply_overrides,
)
from .checkpoints import (
    ConversionError,
    official_key_shapes,
    plain_args,
    strip_wrappers,
)
from .inference import (
    Inference,
    InferredConfig,
    override_fields,
    validated,
)


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
    inf = Inference(state, plain_args(hparams), "B-AE")
    over = override_fields(overrides)
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
    return InferredConfig(validated(config), inf.sources)


def _encoder_sizes(inf: Inference) -> list[bool]:
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


def _decoder_sizes(inf: Inference, enc_attention: list[bool]) -> int:
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


def _check_hparams(inf: Inference, dec_blocks: int) -> None:
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
    inf: Inference, over: set[str], preset: TokenizerConfig | None
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
    inf: Inference,
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
