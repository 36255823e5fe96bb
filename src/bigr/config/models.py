"""Configuration dataclasses and the table of presets.

Owns: the frozen configs of the binary autoencoder (`TokenizerConfig`), of BiGR
(`BiGRConfig` with its `HeadConfig`), their JSON envelope (kind and format version) and
`PRESETS`, which holds every released model of the official BiGR release plus small
configurations for tests and benchmarks. Sizes of the released models come from the
state-dict manifests recorded from the official code (see `bigr-spec.md` §2.2 and §1.5).

Leaves to others: any torch code (models are built from these configs elsewhere), and the
generic dict round trip and `--set a.b=v` overrides (`dicts.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .dicts import from_dict, require_ranges, to_dict

FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    """Binary autoencoder (B-AE): convolutional encoder, K-bit binarizer, decoder.

    The encoder halves the resolution `len(channel_mult) - 1` times; attention blocks sit at
    every level whose spatial size is in `attn_resolutions`, plus one in the middle.

    >>> from bigr import TokenizerConfig
    >>> config = TokenizerConfig(code_bits=24, image_size=256)  # the released bae_d24
    >>> config.grid_size, config.code_bits
    (16, 24)
    """

    in_channels: int = 3
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    res_blocks: int = 2
    decoder_res_blocks: int | None = None  # None: same as the encoder (official gen_mul = 1)
    attn_resolutions: tuple[int, ...] = (16,)
    latent_channels: int = 256
    code_bits: int = 24
    image_size: int = 256
    norm_first: bool = True  # the decoder starts with a GroupNorm on its input

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.downsample_factor

    @property
    def num_tokens(self) -> int:
        return self.grid_size**2

    @property
    def num_decoder_res_blocks(self) -> int:
        return self.res_blocks if self.decoder_res_blocks is None else self.decoder_res_blocks

    def validate(self) -> None:
        require_ranges(
            self,
            {
                "in_channels": "pos",
                "base_channels": "pos",
                "channel_mult": "pos",
                "res_blocks": "pos",
                "decoder_res_blocks": "pos",
                "attn_resolutions": "pos",
                "latent_channels": "pos",
                "code_bits": "pos",
                "image_size": "pos",
            },
        )
        if not self.channel_mult:
            raise ValueError("channel_mult must list at least one level")
        if self.image_size % self.downsample_factor:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of the downsample factor "
                f"{self.downsample_factor}"
            )
        widths = [self.base_channels * m for m in self.channel_mult]
        if self.norm_first:  # the decoder's first GroupNorm acts on the latent channels
            widths.append(self.latent_channels)
        if any(w % 32 for w in widths):
            raise ValueError(f"every width must be a multiple of 32 (GroupNorm): {widths}")


@dataclass(frozen=True, kw_only=True)
class HeadConfig:
    """Binary transcoder: a per-token adaLN MLP trained as a Bernoulli-diffusion denoiser.

    Loss knobs follow the release: `predict_flip` (the network predicts which bits of x_t
    flip), `focal_gamma` (None = plain BCE; a number selects the focal family, 0 in the
    release), `alpha` (-1 = class-balanced weights, the paper's wBCE; 0 = none; in (0, 1) the
    focal alpha) and `aux_weight` for the variational-bound term (0 in the release).

    `direct` replaces the diffusion by one call: the network sees no noisy bits (a constant
    input, time 0) and predicts x_0's logits from z alone, trained by the chosen BCE against x_0 and
    sampled in one step (a variant for the question "what does the Bernoulli diffusion buy?";
    it needs `predict_flip=False`).

    >>> from bigr import HeadConfig
    >>> HeadConfig(dim=256, depth=3).predict_flip  # the release predicts flips
    True
    """

    dim: int = 1024  # the denoiser's width, D of its (rows, D) activations
    depth: int = 3
    diffusion_steps: int = 256
    predict_flip: bool = True
    focal_gamma: float | None = 0.0
    alpha: float = -1.0
    aux_weight: float = 0.0
    direct: bool = False


@dataclass(frozen=True, kw_only=True)
class BiGRConfig:
    """Bidirectional LLaMA-style transformer on binary codes plus the Bernoulli head.

    >>> from bigr import get_preset
    >>> config = get_preset("bigr-l-d24")  # the released BiGR-L at 256 px, 24-bit codes
    >>> config.dim, config.depth, config.num_tokens, config.code_bits
    (1024, 24, 256, 24)
    """

    dim: int = 1024
    depth: int = 24
    heads: int = 16
    kv_heads: int | None = None
    multiple_of: int = 256
    ffn_multiplier: float | None = None
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    code_bits: int = 24
    grid_size: int = 16
    num_classes: int = 1000
    text_dim: int = 0  # > 0: conditioned on caption embeddings of this width, not class ids
    class_tokens: int = 1
    class_dropout: float = 0.1
    use_adaln: bool = True
    token_dropout: float = 0.0
    attn_dropout: float = 0.0
    resid_dropout: float = 0.1
    ffn_dropout: float = 0.1
    drop_path: float = 0.0
    head: HeadConfig = field(default_factory=HeadConfig)

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def num_kv_heads(self) -> int:
        return self.heads if self.kv_heads is None else self.kv_heads

    @property
    def num_tokens(self) -> int:
        return self.grid_size**2

    @property
    def null_class(self) -> int:
        """Row of the class table used for the unconditional branch and label dropout."""
        return self.num_classes

    @property
    def unconditional(self) -> bool:
        """Class-free: every label is the null one (class_dropout 1), no text conditioning."""
        return self.class_dropout >= 1 and not self.text_dim

    @property
    def has_null_class(self) -> bool:
        # The official class table only gets the extra row when label dropout is on.
        return self.class_dropout > 0

    @property
    def ffn_hidden(self) -> int:
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_multiplier is not None:
            hidden = int(self.ffn_multiplier * hidden)
        return -(-hidden // self.multiple_of) * self.multiple_of

    def validate(self) -> None:
        require_ranges(
            self,
            {
                **dict.fromkeys(("dim", "depth", "heads", "kv_heads", "multiple_of"), "pos"),
                **dict.fromkeys(("ffn_multiplier", "rope_base", "norm_eps"), "pos"),
                **dict.fromkeys(("code_bits", "grid_size", "class_tokens"), "pos"),
                "num_classes": "nonneg",
                "text_dim": "nonneg",
                # class_dropout 1 trains an unconditional model (every label is the null one)
                "class_dropout": "unit",
                **dict.fromkeys(("token_dropout", "attn_dropout", "resid_dropout"), "prob"),
                "ffn_dropout": "prob",
                "drop_path": "prob",
            },
        )
        require_ranges(
            self.head,
            {
                "dim": "pos",
                "depth": "pos",
                "diffusion_steps": "pos",
                "focal_gamma": "nonneg",
                "aux_weight": "nonneg",
            },
            prefix="head.",
        )
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        if self.head_dim % 4:
            raise ValueError(f"head_dim {self.head_dim} must be a multiple of 4 for 2-D RoPE")
        if self.heads % self.num_kv_heads:
            raise ValueError(f"heads {self.heads} is not a multiple of kv_heads {self.kv_heads}")
        if self.head.direct and (self.head.predict_flip or self.head.aux_weight):
            raise ValueError(
                "head.direct predicts x_0 in one call: set head.predict_flip=false and "
                "head.aux_weight=0"
            )


Config = TokenizerConfig | BiGRConfig


# ---------------------------------------------------------------------------------------------
# JSON envelope (kind and format version)


def config_kind(config: Config) -> str:
    return "tokenizer" if isinstance(config, TokenizerConfig) else "bigr"


def config_to_json(config: Config) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "kind": config_kind(config), **to_dict(config)}


def config_from_json(data: dict[str, Any]) -> Config:
    data = dict(data)
    version = data.pop("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise ValueError(f"config format {version} is newer than this bigr ({FORMAT_VERSION})")
    kind = data.pop("kind", None)
    data.pop("extra", None)  # provenance written beside the config (source file, training run)
    classes = {"tokenizer": TokenizerConfig, "bigr": BiGRConfig}
    if kind not in classes:
        raise ValueError(f"config kind must be one of {sorted(classes)}, got {kind!r}")
    if kind == "bigr":
        data = _renamed_fields(data)
    return from_dict(classes[kind], data)


# Fields renamed since files were first written: (section, old name) -> new name. Reading
# accepts the old name; writing uses the new one.
_RENAMED_FIELDS = {("head", "width"): "dim"}


def _renamed_fields(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the old names of renamed fields replaced (a file holding both keeps them,
    and `from_dict` refuses the old one as unknown)."""
    for (section, old), new in _RENAMED_FIELDS.items():
        fields = data.get(section)
        if isinstance(fields, dict) and old in fields and new not in fields:
            data[section] = {(new if k == old else k): v for k, v in fields.items()}
    return data


# ---------------------------------------------------------------------------------------------
# presets


def _bigr(**kwargs: Any) -> BiGRConfig:
    return BiGRConfig(**kwargs)


_BAE_FASHION = TokenizerConfig(
    base_channels=32,
    channel_mult=(1, 2, 2),
    res_blocks=2,
    attn_resolutions=(8,),
    latent_channels=64,
    code_bits=32,
    image_size=32,
)

PRESETS: dict[str, Config] = {
    # Released BiGR models (bigr-spec.md §2.2, §7.3); all 1000-class, T = 256, flip prediction.
    "bigr-l-d24": _bigr(
        dim=1024,
        depth=24,
        heads=16,
        code_bits=24,
        grid_size=16,
        head=HeadConfig(dim=1024, depth=3),
    ),
    "bigr-xl-d24": _bigr(
        dim=1280,
        depth=36,
        heads=20,
        code_bits=24,
        grid_size=16,
        head=HeadConfig(dim=1280, depth=6),
    ),
    "bigr-xxl-d24": _bigr(
        dim=1536,
        depth=48,
        heads=24,
        code_bits=24,
        grid_size=16,
        head=HeadConfig(dim=1536, depth=8),
    ),
    "bigr-xxl-d32": _bigr(
        dim=1536,
        depth=48,
        heads=24,
        code_bits=32,
        grid_size=16,
        head=HeadConfig(dim=1536, depth=8),
    ),
    "bigr-l-d32-512": _bigr(
        dim=1024,
        depth=24,
        heads=16,
        code_bits=32,
        grid_size=32,
        head=HeadConfig(dim=1280, depth=6),
    ),
    # Released binary autoencoders (bigr-spec.md §1.1).
    "bae-d24": TokenizerConfig(code_bits=24, image_size=256),
    "bae-d32": TokenizerConfig(code_bits=32, image_size=256),
    "bae-d32-512": TokenizerConfig(code_bits=32, image_size=512),
    # Random-weight benchmark model of the sampling issue: released settings at a CPU size.
    "bench": _bigr(
        dim=512, depth=8, heads=8, code_bits=24, grid_size=16, head=HeadConfig(dim=512, depth=3)
    ),
    # The embedded default: Fashion-MNIST padded to 32 px, an 8x8 grid of 32-bit codes.
    "bae-fashion": _BAE_FASHION,
    # The embedded text model's tokenizer (the first embedded one): 16-bit codes, 1 block.
    "bae-fashion-16": replace(_BAE_FASHION, res_blocks=1, code_bits=16),
    "bigr-fashion": _bigr(
        dim=128,
        depth=8,
        heads=4,
        code_bits=32,
        grid_size=8,
        num_classes=10,
        resid_dropout=0.0,
        ffn_dropout=0.0,
        head=HeadConfig(dim=128, depth=3),
    ),
    # Text-to-image on Fashion-MNIST with generated captions (MiniLM embeddings, 384-d).
    "bigr-fashion-text": _bigr(
        dim=128,
        depth=8,
        heads=4,
        code_bits=16,
        grid_size=8,
        num_classes=0,
        text_dim=384,
        resid_dropout=0.0,
        ffn_dropout=0.0,
        head=HeadConfig(dim=128, depth=3),
    ),
    # Tiny models for tests (4x4 grid of 16-bit codes, 10 classes, 16 px images).
    "bigr-tiny": _bigr(
        dim=64,
        depth=2,
        heads=4,
        code_bits=16,
        grid_size=4,
        num_classes=10,
        resid_dropout=0.0,
        ffn_dropout=0.0,
        head=HeadConfig(dim=64, depth=2),
    ),
    "bigr-tiny-text": _bigr(
        dim=64,
        depth=2,
        heads=4,
        code_bits=16,
        grid_size=4,
        num_classes=0,
        text_dim=384,
        resid_dropout=0.0,
        ffn_dropout=0.0,
        head=HeadConfig(dim=64, depth=2),
    ),
    "bae-tiny": TokenizerConfig(
        base_channels=32,
        channel_mult=(1, 1, 2),
        attn_resolutions=(4,),
        latent_channels=32,
        code_bits=16,
        image_size=16,
    ),
}

# Which tokenizer each released generator was trained with (bigr-spec.md §7.3).
TOKENIZER_FOR = {
    "bigr-l-d24": "bae-d24",
    "bigr-xl-d24": "bae-d24",
    "bigr-xxl-d24": "bae-d24",
    "bigr-xxl-d32": "bae-d32",
    "bigr-l-d32-512": "bae-d32-512",
    "bench": "bae-d24",
    "bigr-tiny": "bae-tiny",
    "bigr-tiny-text": "bae-tiny",
    "bigr-fashion": "bae-fashion",
    "bigr-fashion-text": "bae-fashion-16",
}

RELEASED_BIGR = ("bigr-l-d24", "bigr-xl-d24", "bigr-xxl-d24", "bigr-xxl-d32", "bigr-l-d32-512")
RELEASED_TOKENIZERS = ("bae-d24", "bae-d32", "bae-d32-512")


def get_preset(name: str) -> Config:
    """A preset by name (`bigr presets` lists them); KeyError naming the known ones.

    >>> get_preset("bae-d24").image_size
    256
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
