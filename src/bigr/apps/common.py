"""What every application needs: a compatible model/tokenizer pair, conditions, encoding,
blending."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ..model import BiGR
from ..sampler import SamplerConfig
from ..tokenizer import BinaryAutoencoder
from .masks import feather


def check_pair(model: BiGR, tokenizer: BinaryAutoencoder) -> None:
    """Refuse a tokenizer whose codes the model was not built for."""
    m, t = model.config, tokenizer.config
    if m.code_bits != t.code_bits:
        raise ValueError(
            f"the model reads {m.code_bits}-bit codes; the tokenizer makes {t.code_bits}-bit codes"
        )
    if m.grid_size != t.grid_size:
        raise ValueError(
            f"the model works on a {m.grid_size}x{m.grid_size} grid but the tokenizer makes "
            f"{t.grid_size}x{t.grid_size} ({t.image_size}px images)"
        )


def check_class(model: BiGR, label: int) -> None:
    n = model.config.num_classes
    if not 0 <= label < n:
        raise ValueError(f"class {label} is out of range: this model has classes 0..{n - 1}")


def condition_for(model: BiGR, condition: int | Tensor | None, count: int) -> Tensor:
    """`count` copies of one condition, (count,) class ids or (count, text_dim) caption
    embeddings: a class id, or for text models a caption embedding (text_dim,); None means the
    null (unconditional) condition."""
    device = model.transformer.mask_token.device
    if condition is None:
        return model.transformer.null_condition(count, device)
    if model.config.text_dim:
        if not isinstance(condition, Tensor) or condition.shape != (model.config.text_dim,):
            raise ValueError(
                f"this model is conditioned on text: give a prompt (a {model.config.text_dim}-d "
                "caption embedding), not a class id"
            )
        return condition.to(device).float().expand(count, -1).clone()
    if isinstance(condition, Tensor):
        raise ValueError("this model is class-conditional: give a class id, not a prompt")
    check_class(model, condition)
    return torch.full((count,), condition, dtype=torch.long, device=device)


def unconditional(sampler: SamplerConfig) -> SamplerConfig:
    """With the null class on both sides guidance changes nothing: run one pass, not two."""
    return dataclasses.replace(sampler, guidance=1.0, guidance_schedule="constant")


@torch.no_grad()
def encode(
    tokenizer: BinaryAutoencoder,
    image: Tensor,
    *,
    stochastic: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(3, S, S) image -> (1, L, K) codes. Deterministic (p > 0.5) unless `stochastic`, which
    draws Bernoulli codes as the release's apps do."""
    device = next(tokenizer.parameters()).device
    return tokenizer.encode(
        image[None].to(device), stochastic=stochastic, generator=generator
    ).codes


@torch.no_grad()
def decode(tokenizer: BinaryAutoencoder, codes: Tensor) -> Tensor:
    return tokenizer.decode(codes).clamp(0, 1).cpu()


def blend(generated: Tensor, original: Tensor, pixel_mask: Tensor, radius: int = 0) -> Tensor:
    """Keep the original outside the mask: out = m * generated + (1 - m) * original, with m the
    mask softened by `radius` pixels."""
    m = feather(pixel_mask, radius).to(generated.dtype)
    return m * generated + (1 - m) * original.to(generated.dtype)
