"""What the generation and evaluation commands share: the sampler flags and the sampler they
give, loading a model with its tokenizer, a progress bar fed by the sampler's callback, an
atomic `torch.save`, and comma lists of integers.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from tqdm import tqdm

from ..apps.common import check_pair
from ..model import BiGR, compile_backbone, load_tokenizer
from ..recipes import recipe
from ..sampler_plan import MAX_STEPS, SamplerConfig
from ..tokenizer import BinaryAutoencoder
from .argtypes import device as device_arg
from .argtypes import finite_float, int_in


def cli_fields() -> list[dataclasses.Field]:
    """The SamplerConfig fields a user sets from the command line (one flag each)."""
    return [f for f in dataclasses.fields(SamplerConfig) if f.metadata.get("cli", True)]


def add_precision_argument(parser) -> None:
    """`--precision` of a sampling command (see `bigr.precision`)."""
    from ..precision import PRECISIONS

    parser.add_argument(
        "--precision",
        dest="inference_precision",
        choices=PRECISIONS,
        default="auto",
        help="arithmetic of the generator: auto (float32; TF32 matmuls on CUDA), fp32 (exact), "
        "bf16 or fp16 (autocast); the tokenizer always decodes in float32",
    )


def add_features_argument(parser: argparse.ArgumentParser) -> None:
    """`--features` of a command that measures FID-type distances."""
    from ..evaluation.inception import FEATURES

    parser.add_argument(
        "--features",
        choices=FEATURES,
        default="inception",
        help="features the distances use: the standard FID Inception, or pooled pixels "
        "(a weight-free quick check whose numbers are not FIDs)",
    )


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "sampling (defaults: the model's recipe.json for this command, else the release's)"
    )
    g.add_argument(
        "--recipe",
        help="named settings to start from: recommended (the model's recipe.json, else the "
        "release's), release, paper-l, paper-xl, paper-xxl, notebook, edit, interpolate, enrich, "
        "PRESET/paper|release, or a name in the model's recipe.json; flags below override fields",
    )
    add_precision_argument(g)
    for spec in cli_fields():
        meta = spec.metadata
        if meta["choices"]:
            kind = {"choices": list(meta["choices"])}
        elif spec.type in ("int", int):
            kind = {"type": int_in(1, MAX_STEPS)}
        else:
            kind = {"type": finite_float(0.0, open_low=meta.get("positive", False))}
        flag = "--" + spec.name.replace("_", "-")
        g.add_argument(flag, dest=spec.name, help=meta["help"], **kind)
    g.add_argument(
        "--seed",
        type=int_in(0, 2**63 - 1),
        default=0,
        help="the same seed reproduces an output exactly (with the same --compile choice)",
    )
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the backbone (the first batch compiles for about a minute; ~1.3x "
        "faster sampling on a CPU)",
    )
    g.add_argument(
        "--device", type=device_arg, default="cuda" if torch.cuda.is_available() else "cpu"
    )


def sampler_from_args(args: argparse.Namespace, default: SamplerConfig | str) -> SamplerConfig:
    """The sampler of a command: `default` (a config, or a recipe name looked up in the model's
    own recipes first, see `bigr.recipes`) with the fields its flags set replaced."""
    if getattr(args, "recipe", None):
        default = args.recipe
    if isinstance(default, str):
        default = recipe(default, getattr(args, "model", None))
    changes = {
        spec.name: getattr(args, spec.name)
        for spec in cli_fields()
        if getattr(args, spec.name, None) is not None
    }
    config = SamplerConfig(**{**default.__dict__, **changes})
    config.validate()
    return config


def load_pair(
    args: argparse.Namespace, need_tokenizer: bool = True
) -> tuple[BiGR, BinaryAutoencoder | None]:
    from ..checkpoint import paired_tokenizer

    model = BiGR.from_pretrained(args.model, device=args.device)
    if getattr(args, "compile", False):
        compile_backbone(model)
    tokenizer_dir = args.tokenizer or paired_tokenizer(args.model)
    if tokenizer_dir is None:
        if need_tokenizer:
            raise ValueError(
                "no tokenizer: pass --tokenizer DIR (or put one in MODEL/tokenizer); "
                "the model does not name the one it was trained with"
            )
        return model, None
    tokenizer = load_tokenizer(tokenizer_dir, device=args.device)
    check_pair(model, tokenizer)
    return model, tokenizer


class Progress:
    """A tqdm bar fed by a (done, total) callback; created at the first report, so that a
    command failing before any work prints nothing but its error."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.description, unit="step", leave=False)
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def save_tensor(tensor: torch.Tensor, path: str | Path) -> None:
    """torch.save to a temporary sibling, then rename: a failure keeps the earlier file."""
    from ..outputs import atomic_write

    atomic_write(path, lambda f: torch.save(tensor, f))


def config_changes(
    args: argparse.Namespace, cls: type, renames: dict[str, str] | None = None
) -> dict:
    """The fields of dataclass `cls` set on the command line: every option whose destination
    is a field's name (or is renamed to one in `renames`) and was given (not None)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    renames = renames or {}
    changes = {}
    for dest, value in vars(args).items():
        field = renames.get(dest, dest)
        if field in fields and value is not None:
            changes[field] = value
    return changes


def parse_ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
