"""`Pipeline`: a generator, its tokenizer and its recipes in one object, with the defaults of the
command line. Every method takes one randomness argument, `seed` (the command line's
`--seed`), and returns an `Images` result.

>>> from bigr import Pipeline
>>> pipe = Pipeline.from_pretrained("bigr:fashion")
>>> out = pipe.generate(["sneaker", "bag"], num=2, seed=0, steps=4, head_steps=5)
>>> tuple(out.images.shape), tuple(out.codes.shape)
((4, 3, 32, 32), (4, 64, 32))

`bigr sample --model bigr:fashion --classes sneaker,bag --num 2 --seed 0 --steps 4
--head-steps 5` draws the same codes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .apps import box_mask, edit, enrich, inpaint, interpolate, outpaint
from .apps.common import check_pair
from .checkpoint import check_device, paired_tokenizer
from .classes import class_conditions, class_id, class_names
from .data.images import load_image, load_mask, save_grid
from .model import BiGR, load_tokenizer
from .precision import PRECISIONS, inference_precision
from .recipes import recipe as named_recipe
from .sampler import sample_codes
from .sampler_plan import SamplerConfig
from .tokenizer import BinaryAutoencoder

# The recipe each method starts from, as the matching command does (`--recipe` changes it).
START = {
    "generate": "recommended",
    "inpaint": "edit",
    "outpaint": "edit",
    "edit": "edit",
    "interpolate": "interpolate",
    "enrich": "enrich",
}
ImageInput = str | Path | Tensor
MaskInput = str | Path | Tensor | tuple[float, float, float, float]


@dataclass(frozen=True)
class Images:
    """What every `Pipeline` method returns: images (N, 3, S, S) in [0, 1] on the CPU and the
    codes (N, tokens, bits) they decode from (`enrich`: the last round's codes only).

    >>> import tempfile
    >>> out = Pipeline.from_pretrained("bigr:fashion").generate(7, num=2, steps=2, head_steps=2)
    >>> out.save(tempfile.mkdtemp() + "/two-sneakers.png").suffix
    '.png'
    """

    images: Tensor
    codes: Tensor

    def save(self, path: str | Path, nrow: int | None = None) -> Path:
        """The images as one PNG grid (`nrow` per row, default all in one row)."""
        return save_grid(self.images, path, nrow=nrow or len(self.images))


def _at_precision(method):
    """Run a Pipeline method inside its `precision` (the tokenizer still decodes in float32)."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with inference_precision(self.precision, self.device):
            return method(self, *args, **kwargs)

    return run


class Pipeline:
    """A BiGR generator with its tokenizer and its recipes.

    >>> pipe = Pipeline.from_pretrained("bigr:fashion")
    >>> pipe.classes[7], pipe.recipe("recommended").steps
    ('Sneaker', 16)
    """

    def __init__(
        self,
        model: BiGR,
        tokenizer: BinaryAutoencoder,
        *,
        model_dir: str | Path | None = None,
        precision: str = "auto",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        check_pair(model, tokenizer)
        self.precision = precision
        self.model, self.tokenizer = model.eval(), tokenizer.eval()
        self.model_dir = None if model_dir is None else str(model_dir)
        self.classes = class_names(model_dir) if model_dir is not None else []

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path,
        *,
        tokenizer: str | Path | None = None,
        device: str | torch.device = "cpu",
        precision: str = "auto",
    ) -> Pipeline:
        """Load a generator (a folder, an embedded name such as `bigr:fashion`, or a hub name
        `hf://OWNER/REPO[/FILE]`) with `tokenizer`, by default the one the model names.
        `precision`: the generator's arithmetic, as the command line's `--precision` (auto,
        fp32, bf16, fp16; the tokenizer always decodes in float32)."""
        check_device(device)
        if tokenizer is None:
            tokenizer = paired_tokenizer(model)
        if tokenizer is None:
            raise ValueError(f"{model} names no tokenizer: pass tokenizer=...")
        return cls(
            BiGR.from_pretrained(model, device=device),
            load_tokenizer(tokenizer, device=device),
            model_dir=model,
            precision=precision,
        )

    @property
    def device(self) -> torch.device:
        return self.model.transformer.mask_token.device

    @property
    def image_size(self) -> int:
        return self.tokenizer.config.image_size

    # -- settings ----------------------------------------------------------------------------

    def recipe(self, name: str | SamplerConfig = "recommended", **overrides) -> SamplerConfig:
        """A sampling recipe by name, as `--recipe NAME` resolves it (the model's recipe.json
        first, then the built-in ones), with fields replaced by `overrides`."""
        base = name if isinstance(name, SamplerConfig) else named_recipe(name, self.model_dir)
        return dataclasses.replace(base, **overrides) if overrides else base

    def _sampler(self, method: str, recipe, overrides: dict) -> SamplerConfig:
        return self.recipe(START[method] if recipe is None else recipe, **overrides)

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(self.device).manual_seed(seed)

    def _image(self, image: ImageInput, size: int | None = None) -> Tensor:
        size = size or self.image_size
        if isinstance(image, Tensor):
            if tuple(image.shape) != (3, size, size):
                raise ValueError(f"the image must be 3x{size}x{size}, got {tuple(image.shape)}")
            return image.float().clamp(0, 1)
        return load_image(image, size)

    def _mask(self, mask: MaskInput) -> Tensor:
        size = self.image_size
        if isinstance(mask, tuple):
            return box_mask(size, mask)
        if isinstance(mask, Tensor):
            if tuple(mask.shape) != (size, size):
                raise ValueError(f"the mask must be {size}x{size}, got {tuple(mask.shape)}")
            if mask.dtype != torch.bool:
                raise TypeError(
                    f"the mask must be a bool tensor (True: regenerate), got {mask.dtype}"
                )
            return mask
        return load_mask(mask, size)

    def _condition(self, item: int | str) -> int:
        return class_id(item, self.classes, self.model.config.num_classes)

    # -- methods -----------------------------------------------------------------------------

    @torch.no_grad()
    @_at_precision
    def generate(
        self,
        classes: int | str | Sequence[int | str] | None = None,
        *,
        num: int = 1,
        seed: int = 0,
        recipe: str | SamplerConfig | None = None,
        **overrides,
    ) -> Images:
        """`num` images per class (ids or names), class after class, as `bigr sample`; an
        unconditional model takes no classes."""
        condition = class_conditions(self.model, classes, self.classes)
        condition = condition.repeat_interleave(num, dim=0)
        sampler = self._sampler("generate", recipe, overrides)
        codes = sample_codes(self.model, condition, sampler, generator=self._generator(seed))
        return Images(self.tokenizer.decode(codes).clamp(0, 1).cpu(), codes.cpu())

    @_at_precision
    def inpaint(
        self,
        image: ImageInput,
        mask: MaskInput,
        *,
        num: int = 1,
        seed: int = 0,
        recipe: str | SamplerConfig | None = None,
        **overrides,
    ) -> Images:
        """Regenerate the masked region (a mask image, a (S, S) bool tensor, or a box of
        fractions x0, y0, x1, y1) from its surroundings, as `bigr inpaint`."""
        result = inpaint(
            self.model,
            self.tokenizer,
            self._image(image),
            self._mask(mask),
            num=num,
            sampler=self._sampler("inpaint", recipe, overrides),
            generator=self._generator(seed),
        )
        return Images(result.images, result.codes)

    @_at_precision
    def outpaint(
        self,
        image: ImageInput,
        keep: MaskInput,
        *,
        num: int = 1,
        seed: int = 0,
        recipe: str | SamplerConfig | None = None,
        **overrides,
    ) -> Images:
        """Keep the region `keep` and regenerate everything around it, as `bigr outpaint`."""
        result = outpaint(
            self.model,
            self.tokenizer,
            self._image(image),
            self._mask(keep),
            num=num,
            sampler=self._sampler("outpaint", recipe, overrides),
            generator=self._generator(seed),
        )
        return Images(result.images, result.codes)

    @_at_precision
    def edit(
        self,
        image: ImageInput,
        mask: MaskInput,
        target: int | str,
        *,
        num: int = 1,
        seed: int = 0,
        recipe: str | SamplerConfig | None = None,
        **overrides,
    ) -> Images:
        """Regenerate the masked region as class `target` (an id or a name), as `bigr edit`."""
        result = edit(
            self.model,
            self.tokenizer,
            self._image(image),
            self._mask(mask),
            self._condition(target),
            num=num,
            sampler=self._sampler("edit", recipe, overrides),
            generator=self._generator(seed),
        )
        return Images(result.images, result.codes)

    @_at_precision
    def interpolate(
        self,
        a: int | str,
        b: int | str,
        *,
        num: int = 7,
        seed: int = 0,
        recipe: str | SamplerConfig | None = None,
        **overrides,
    ) -> Images:
        """`num` frames from class `a` to class `b` (the condition mixed with weights 0..1, the
        same random draws per frame), as `bigr interpolate`."""
        if num < 2:
            raise ValueError("num must be at least 2 (the two end points)")
        weights = [i / (num - 1) for i in range(num)]
        images, codes = interpolate(
            self.model,
            self.tokenizer,
            self._condition(a),
            self._condition(b),
            weights,
            sampler=self._sampler("interpolate", recipe, overrides),
            seed=seed,
        )
        return Images(images, codes)

    @_at_precision
    def enrich(
        self,
        image: ImageInput,
        *,
        ds: int = 2,
        rounds: int = 4,
        seed: int = 0,
        recipe: str | SamplerConfig | None = None,
        **overrides,
    ) -> Images:
        """Add detail to a low-resolution image (loaded at 1/`ds` of the model's size): the
        blurry start, then one image per round, as `bigr enrich`."""
        if self.image_size % ds:
            raise ValueError(f"ds {ds} does not divide the image size {self.image_size}")
        small = self._image(image, self.image_size // ds)
        result = enrich(
            self.model,
            self.tokenizer,
            small,
            ds=ds,
            rounds=rounds,
            sampler=self._sampler("enrich", recipe, overrides),
            seed=seed,
        )
        return Images(result.images, result.codes)  # codes: the last round's only

    @torch.no_grad()
    @_at_precision
    def features(self, images: ImageInput | Sequence[ImageInput], layer: int = -1) -> Tensor:
        """(N, width) representation of images: their deterministic codes through the
        transformer, averaged over tokens after block `layer` (-1: the last)."""
        batch = images if isinstance(images, Tensor) and images.ndim == 4 else None
        if batch is None:
            items = images if isinstance(images, list | tuple) else [images]
            batch = torch.stack([self._image(i) for i in items])
        codes = self.tokenizer.encode(batch.to(self.device), stochastic=False).codes
        return self.model.pooled_features(codes, layer=layer).cpu()
