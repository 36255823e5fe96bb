"""The one unmasking loop: iterative token reveal with classifier-free guidance and Gumbel noise.

Implements bigr-spec.md §4 (and the inpainting variant of §6.1) for any grid, bit count and
known-token layout. Each step runs the backbone on the current codes (conditional and
unconditional halves in one batch), runs the Bernoulli head on the still-unknown tokens only,
scores tokens by certainty (+ Gumbel noise), and reveals the top ones by drawing their bits.

Options (`SamplerConfig`): reveal schedule and step count; token order — `entropy` (binary
entropy of the token's K bit probabilities, as the paper describes, scored as 1 - the mean
per-bit entropy in bits), `confidence` (mean |2p - 1|, as the release computes), `random`,
`raster`. Both certainty scores lie in [0, 1] (1 = certain), so a Gumbel temperature perturbs
them equally; guidance >= 0 with constant or
linear ramps (1 = a single conditional pass, 0 = a single unconditional pass); Gumbel
temperature with constant/down/up ramps; the head's diffusion steps and temperature; Bernoulli
or thresholded bits; `head_tokens='all'` does the release's amount of work (head on every
token); `budget='official'` reproduces the release's inpainting count (the number of *kept*
tokens, then one fill step), for parity only.

Options that trade exactness for speed, all off by default: `head_steps_last` ramps the
head's steps linearly down (or up) over the loop; `uncond_every` k > 1 recomputes the
unconditional branch's backbone features on every k-th guided step only and reuses them in
between (for the tokens still unknown, LazyMAR-style); `reveal_certain` > 0 makes the step
count entropy-driven: each step also reveals every unknown
token whose certainty (1 - mean bit entropy in bits) reaches it, and a step whose planned count
earlier reveals have already met is skipped (no network call).

Invariants: reveal counts sum to the number of unknown tokens of each row; known tokens never
change. The plan (counts, guidance, temperatures; `bigr.sampler_plan`) is computed on the host
before the loop, so the loop itself never waits on the device (except with `reveal_certain`, two
reads a step).

Conventions: `known_codes` (B, L, K) in {0,1}; `known_mask` (B, L) bool, True = fixed;
`condition`: class ids (B,) int64, or caption embeddings (B, text_dim) for a text model; or
(B, J) ids / (B, J, text_dim) embeddings with `condition_weights` (B, J) for mixing them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .draws import Draws, TorchDraws, announce_rows
from .memory import check_sampling_fits
from .model import BiGR
from .sampler_plan import MAX_STEPS, ORDERS, SamplerConfig, Step, head_steps_at, plan_steps
from .validation import check_generator, check_sampler

# The plan's names stay importable from here for users (`from bigr.sampler import
# SamplerConfig`); the package itself imports them from `sampler_plan`.
__all__ = [
    "MAX_STEPS",
    "ORDERS",
    "SamplerConfig",
    "Step",
    "UncondReuse",
    "certainty",
    "check_conditions",
    "head_steps_at",
    "plan_steps",
    "predict_probs",
    "sample_codes",
    "token_scores",
]


def certainty(probs: Tensor) -> Tensor:
    """(B, L): 1 - the mean per-bit binary entropy in bits of (B, L, K) probabilities. Like
    `confidence`, 1 for a certain token and 0 for a token of fair coins, so one Gumbel
    temperature means the same for both certainty orders."""
    p = probs.float()
    neg_h = torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)  # (B, L, K) nats
    return 1 + neg_h.mean(-1) / math.log(2)


def token_scores(order: str, probs: Tensor, unknown: Tensor, draws: Draws) -> Tensor:
    """Certainty score (B, L), higher = revealed earlier; -inf where the token is known."""
    if order == "confidence":
        score = (probs - 0.5).abs().mul(2).mean(-1)
    elif order == "entropy":
        score = certainty(probs)
    elif order == "random":
        score = draws.uniform(tuple(unknown.shape), unknown.device)
    else:  # raster
        score = -torch.arange(
            unknown.shape[1], device=unknown.device, dtype=torch.float32
        ).expand_as(unknown)
    return score.float().masked_fill(~unknown, float("-inf"))


def _select_rows(z: Tensor, index: Tensor) -> Tensor:
    """Gather tokens `index` (B, U) from z (B, L, D) -> (B·U, D)."""
    # index (B, U) -> (B, U, D); gathered (B, U, D) -> (B·U, D)
    return z.gather(1, index.unsqueeze(-1).expand(-1, -1, z.shape[-1])).flatten(0, 1)


@dataclass
class UncondReuse:
    """Features of the unconditional branch kept across unmasking steps (`uncond_every`):
    recomputed when `age` reaches `every` guided steps, reused in between."""

    every: int
    z: Tensor | None = None
    age: int = 0

    def fresh(self) -> bool:
        return self.z is not None and self.age < self.every


def predict_probs(
    model: BiGR,
    codes: Tensor,
    unknown: Tensor,
    condition: Tensor,
    guidance: float,
    config: SamplerConfig,
    draws: Draws,
    *,
    max_unknown: int,
    condition_weights: Tensor | None = None,
    head_steps: int | None = None,
    reuse: UncondReuse | None = None,
) -> Tensor:
    """P(bit = 1) (B, L, K) for the unknown tokens (zeros elsewhere unless head_tokens='all').

    `condition`: class ids (B,) int64, or caption embeddings (B, text_dim) for a text model
    (mixes with `condition_weights`: see the module). `head_steps` overrides the config's;
    `reuse` supplies (and keeps) the unconditional branch's features when guided steps may
    share them."""
    b, l, k = codes.shape
    null = model.transformer.null_condition(b, codes.device)
    weights = condition_weights
    use_cond, use_uncond = guidance != 0, guidance != 1
    if use_cond and use_uncond and reuse is not None and reuse.fresh():
        z = torch.cat(
            [model.transformer(codes, condition, unknown, condition_weights=weights), reuse.z]
        )
        reuse.age += 1
    elif use_cond and use_uncond:
        if weights is not None:
            # Unconditional half: the same weights over null rows, i.e. the null embedding.
            # null (B,) -> (B, J) ids, or (B, T) -> (B, J, T) embeddings
            nulls = null.unsqueeze(1).expand_as(condition).to(condition.dtype)
            batch_condition = torch.cat([condition, nulls])
            batch_weights = torch.cat([weights, weights])
        else:
            batch_condition, batch_weights = torch.cat([condition, null]), None
        z = model.transformer(
            torch.cat([codes, codes]),
            batch_condition,
            torch.cat([unknown, unknown]),
            condition_weights=batch_weights,
        )
        if reuse is not None:
            reuse.z, reuse.age = z.chunk(2)[1], 1
    elif use_cond:
        z = model.transformer(codes, condition, unknown, condition_weights=weights)
    else:
        z = model.transformer(codes, null, unknown)
    halves = z.chunk(2) if use_cond and use_uncond else (z,)
    steps = head_steps or config.head_steps
    head_kwargs = dict(steps=steps, temperature=config.head_temperature, draws=draws)
    if config.head_tokens == "all":
        announce_rows(draws, None, b, l)
        # each half (B, L, D) -> (B·L, D); probabilities back to (B, L, K)
        rows = [h.flatten(0, 1) for h in halves]
        p = model.head.sample(
            rows[0], rows[1] if len(rows) > 1 else None, guidance=guidance, **head_kwargs
        )
        return p.view(b, l, k)
    # Head on still-unknown tokens only: their positions first (stable), padded to max_unknown.
    index = torch.argsort((~unknown).to(torch.int8), dim=1, stable=True)[:, :max_unknown]
    announce_rows(draws, index, b, l)
    rows = [_select_rows(h, index) for h in halves]
    p = model.head.sample(
        rows[0], rows[1] if len(rows) > 1 else None, guidance=guidance, **head_kwargs
    )
    probs = torch.zeros(b, l, k, device=codes.device, dtype=p.dtype)
    # p (B·U, K) -> (B, U, K), scattered to the U positions `index` (B, U) of (B, L, K)
    return probs.scatter(1, index.unsqueeze(-1).expand(-1, -1, k), p.view(b, max_unknown, k))


def check_conditions(
    model: BiGR, condition: Tensor, condition_weights: Tensor | None = None
) -> None:
    """Class ids (B,) or (B, J) with weights, in 0..num_classes (the last is the null class);
    or, for a text model, embeddings (B, text_dim) or (B, J, text_dim). ValueError otherwise."""
    mc = model.config
    if not isinstance(condition, Tensor):
        raise ValueError(f"condition must be a tensor, got {type(condition).__name__}")
    mixed = condition_weights is not None
    if mc.text_dim:
        want = 3 if mixed else 2
        if condition.dim() != want or condition.shape[-1] != mc.text_dim or condition.is_complex():
            raise ValueError(
                f"a text model takes caption embeddings of shape (B{', J' if mixed else ''}, "
                f"{mc.text_dim}), got {tuple(condition.shape)}"
            )
        if not condition.is_floating_point() or not bool(torch.isfinite(condition).all()):
            raise ValueError("caption embeddings must be finite floats")
    else:
        if condition.dim() != (2 if mixed else 1):
            raise ValueError(
                f"condition must be class ids of shape (B{', J' if mixed else ''}), "
                f"got {tuple(condition.shape)}"
            )
        if condition.is_floating_point() or condition.is_complex() or condition.dtype == torch.bool:
            raise ValueError(f"class ids must be integers, got {condition.dtype}")
        top = mc.num_classes if mc.has_null_class else mc.num_classes - 1
        if condition.numel() and (int(condition.min()) < 0 or int(condition.max()) > top):
            raise ValueError(f"class ids must be in 0..{top}, got {condition.tolist()}")
    if condition.shape[0] < 1:
        raise ValueError("condition: give at least one row")
    if mixed and (
        condition_weights.shape != condition.shape[:2]
        or not bool(torch.isfinite(condition_weights).all())
    ):
        raise ValueError(
            f"condition_weights must be finite, of shape {tuple(condition.shape[:2])}, "
            f"got {tuple(condition_weights.shape)}"
        )


@torch.no_grad()
def sample_codes(
    model: BiGR,
    condition: Tensor,
    config: SamplerConfig | None = None,
    *,
    known_codes: Tensor | None = None,
    known_mask: Tensor | None = None,
    condition_weights: Tensor | None = None,
    draws: Draws | None = None,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Generate codes (B, L, K): unknown tokens are revealed, known ones copied unchanged.

    `condition`: class ids (B,) int64, or caption embeddings (B, text_dim) for a text model;
    with `condition_weights` (B, J), a mix of J conditions per row (see the module).

    >>> import torch
    >>> from bigr import BiGR, PRESETS, SamplerConfig, sample_codes
    >>> model = BiGR(PRESETS["bigr-tiny"]).eval()
    >>> codes = sample_codes(model, torch.tensor([1, 2]), SamplerConfig(steps=4, head_steps=5),
    ...                      generator=torch.Generator().manual_seed(0))
    >>> tuple(codes.shape), sorted(codes.unique().tolist())
    ((2, 16, 16), [0.0, 1.0])
    """
    config = SamplerConfig() if config is None else config
    check_sampler(config)
    check_generator(generator)
    mc = model.config
    check_conditions(model, condition, condition_weights)
    b, l, k = condition.shape[0], mc.num_tokens, mc.code_bits
    device = model.transformer.mask_token.device
    for name in ("head_steps", "head_steps_last"):
        if getattr(config, name) > mc.head.diffusion_steps:
            raise ValueError(
                f"{name} {getattr(config, name)} exceeds the model's {mc.head.diffusion_steps} "
                "diffusion steps"
            )
    if mc.num_classes == 0 and not mc.text_dim and config.guidance != 1:
        # an unconditional model has one condition: both guidance branches would be the same
        config = dataclasses.replace(config, guidance=1.0)
    if config.guidance != 1 and not mc.has_null_class:
        raise ValueError(
            "guidance needs a null class, but this model was trained without label dropout"
        )
    check_sampling_fits(mc, b, config.guidance != 1, device)
    draws = draws or TorchDraws(generator)
    if known_mask is None:
        known_mask = torch.zeros(b, l, dtype=torch.bool, device=device)
    _check_known(known_codes, known_mask, b, l, k)
    codes = torch.zeros(b, l, k, device=device)
    if known_codes is not None:
        codes = torch.where(known_mask.unsqueeze(-1), known_codes.to(device).float(), codes)
    unknown = ~known_mask.to(device)
    plan = plan_steps((l - known_mask.sum(1)).tolist(), l, config)  # the one host read
    # (steps, B) revealed counts -> (steps, B, 1)
    all_counts = torch.tensor([step.counts for step in plan], device=device).view(len(plan), b, 1)
    adaptive = config.reveal_certain > 0
    if adaptive:  # (steps, B): unknown tokens the plan leaves after each step
        before = torch.tensor([step.unknown_before for step in plan], device=device)
        left_after = before - all_counts.view(len(plan), b)
    reuse = UncondReuse(config.uncond_every) if config.uncond_every > 1 else None
    if progress is not None:
        progress(0, len(plan))  # a bar starts now, so its rate includes the first step
    for i, step in enumerate(plan):
        kmax, max_unknown = max(step.counts), max(step.unknown_before)
        if adaptive:  # what the plan still needs, given what earlier steps revealed early
            now = unknown.sum(1)
            need = (now - left_after[i]).clamp_min(0)
            kmax, max_unknown = int(need.max()), int(now.max())  # host reads, this mode only
        if kmax == 0:
            if progress is not None:
                progress(i + 1, len(plan))
            continue
        probs = predict_probs(
            model,
            codes,
            unknown,
            condition,
            step.guidance,
            config,
            draws,
            max_unknown=max_unknown,
            condition_weights=condition_weights,
            head_steps=step.head_steps,
            reuse=reuse,
        )
        scores = token_scores(step.order, probs, unknown, draws)
        if step.gumbel > 0:
            noise = draws.gumbel((b, l), device)
            scores = scores + (step.gumbel * noise).float()
        counts = all_counts[i]
        if adaptive:  # certain enough tokens go first, and all of them this step
            sure = (certainty(probs) >= config.reveal_certain) & unknown
            scores = torch.where(sure, scores + 1e6, scores)  # sure tokens are unknown: finite
            counts = torch.maximum(need, sure.sum(1)).view(b, 1)
            kmax = int(counts.max())
        index = scores.topk(kmax, dim=1).indices  # (B, kmax), most certain first
        chosen = probs.gather(1, index.unsqueeze(-1).expand(-1, -1, k))
        announce_rows(draws, index, b, l)
        bits = (
            draws.bernoulli(chosen)
            if config.bits == "bernoulli"
            else (chosen > 0.5).to(chosen.dtype)
        )
        valid = torch.arange(kmax, device=device) < counts  # (B, kmax)
        index_k = index.unsqueeze(-1).expand(-1, -1, k)
        codes.scatter_(
            1, index_k, torch.where(valid.unsqueeze(-1), bits.float(), codes.gather(1, index_k))
        )
        unknown.scatter_(1, index, unknown.gather(1, index) & ~valid)
        if progress is not None:
            progress(i + 1, len(plan))
    return codes


def _check_known(known_codes: Tensor | None, known_mask: Tensor, b: int, l: int, k: int) -> None:
    """Known codes (B, L, K) and their mask (B, L) bool of this batch and model, or a
    ValueError saying which is off."""
    if not isinstance(known_mask, Tensor) or known_mask.dtype != torch.bool:
        got = known_mask.dtype if isinstance(known_mask, Tensor) else type(known_mask).__name__
        raise TypeError(f"known_mask must be a bool tensor (True = fixed), got {got}")
    if tuple(known_mask.shape) != (b, l):
        raise ValueError(f"known_mask must be ({b}, {l}), got {tuple(known_mask.shape)}")
    if known_codes is None:
        if known_mask.any():
            raise ValueError("known_mask fixes tokens but no known_codes were given")
        return
    if not isinstance(known_codes, Tensor) or tuple(known_codes.shape) != (b, l, k):
        got = tuple(known_codes.shape) if isinstance(known_codes, Tensor) else known_codes
        raise ValueError(
            f"known_codes must be ({b}, {l} tokens, {k} bits) for this batch and model, got {got}"
        )
