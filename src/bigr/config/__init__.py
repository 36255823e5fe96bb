"""Configuration: the frozen config dataclasses, the presets and their dict round trip.

Modules:
- `models.py`: `TokenizerConfig`, `HeadConfig`, `BiGRConfig`, their JSON envelope (kind and
  format version) and the table of presets (`PRESETS`, `get_preset`, `TOKENIZER_FOR`);
- `dicts.py`: the generic dict round trip of any config dataclass, the `--set a.b=v`
  overrides of the command line and the range and choice checks of fields.
"""

from .dicts import apply_overrides, from_dict, require_choice, require_ranges, to_dict
from .models import (
    FORMAT_VERSION,
    PRESETS,
    RELEASED_BIGR,
    RELEASED_TOKENIZERS,
    TOKENIZER_FOR,
    BiGRConfig,
    Config,
    HeadConfig,
    TokenizerConfig,
    config_from_json,
    config_kind,
    config_to_json,
    get_preset,
)

__all__ = [
    "FORMAT_VERSION",
    "PRESETS",
    "RELEASED_BIGR",
    "RELEASED_TOKENIZERS",
    "TOKENIZER_FOR",
    "BiGRConfig",
    "Config",
    "HeadConfig",
    "TokenizerConfig",
    "apply_overrides",
    "config_from_json",
    "config_kind",
    "config_to_json",
    "from_dict",
    "get_preset",
    "require_choice",
    "require_ranges",
    "to_dict",
]
