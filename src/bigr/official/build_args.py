"""Configurations of the official release from its build arguments: the release's `ModelArgs`
dict -> `BiGRConfig` (`bigr_config_from_model_args`), a B-AE `hparams` dict -> `TokenizerConfig`
(`tokenizer_config_from_hparams`). Used by `bigr parity` (the reference files record the build
arguments) and by the release-path tests.
"""

from __future__ import annotations

from typing import Any

from ..config import (
    BiGRConfig,
    HeadConfig,
    TokenizerConfig,
)


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
            dim=args["denoise_hidden_dim"],
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
