"""bigr: BiGR image generation and representation on binary latent codes.

The public API: configs and presets (`bigr.config`), the tokenizer (`BinaryAutoencoder`),
the generator (`BiGR`), the sampling loop (`sample_codes`, `SamplerConfig`) and the import of
the official checkpoints (`bigr.official`).
"""

from .config import PRESETS, BiGRConfig, HeadConfig, TokenizerConfig, get_preset
from .model import BiGR, load_tokenizer, save_tokenizer
from .sampler import SamplerConfig, sample_codes
from .tokenizer import BinaryAutoencoder

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "BiGR",
    "BiGRConfig",
    "BinaryAutoencoder",
    "HeadConfig",
    "SamplerConfig",
    "TokenizerConfig",
    "get_preset",
    "load_tokenizer",
    "sample_codes",
    "save_tokenizer",
]
