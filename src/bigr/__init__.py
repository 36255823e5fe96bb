"""bigr: BiGR image generation and representation on binary latent codes.

The public API: `Pipeline` (a generator, its tokenizer and its recipes, with the command
line's defaults: the place to start), configs and presets (`bigr.config`), the tokenizer
(`BinaryAutoencoder`), the generator (`BiGR`), the sampling loop (`sample_codes`,
`SamplerConfig`), recipes by name (`recipe`) and the import of the official checkpoints
(`bigr.official`, or `hf://` names anywhere a model is loaded).
"""

from .config import PRESETS, BiGRConfig, HeadConfig, TokenizerConfig, get_preset
from .model import BiGR, load_tokenizer, save_tokenizer
from .pipeline import Images, Pipeline
from .recipes import recipe
from .sampler import SamplerConfig, sample_codes
from .tokenizer import BinaryAutoencoder

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "BiGR",
    "BiGRConfig",
    "BinaryAutoencoder",
    "HeadConfig",
    "Images",
    "Pipeline",
    "SamplerConfig",
    "TokenizerConfig",
    "get_preset",
    "load_tokenizer",
    "recipe",
    "sample_codes",
    "save_tokenizer",
]
