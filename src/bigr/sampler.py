"""The one unmasking loop: iterative token reveal with classifier-free guidance and Gumbel noise.

Implements bigr-spec.md §4 (and the inpainting variant of §6.1) for any grid, bit count and
known-token layout. `sample_codes` reads as a ladder; each rung is a function of its own:

1. `guided_features`: the backbone on the current codes, the conditional and unconditional
   branches in one batch (or one branch when guidance is 0 or 1, or the unconditional one
   reused: `UncondReuse`);
2. `head_probabilities`: the Bernoulli head on the tokens the strategy names (bigr: the still
   unknown ones only) -> P(bit = 1) per token;
3. `reveal_scores` + `choose_tokens`: certainty (+ Gumbel noise) ranks the unknown tokens, the
   plan's count of the most certain are chosen;
4. `reveal_bits`: their bits are drawn and written, and they stop being unknown.

Options (`SamplerConfig`): reveal schedule and step count; token order — `entropy` (binary
entropy of the token's K bit probabilities, as the paper describes, scored as 1 - the mean
per-bit entropy in bits), `confidence` (mean |2p - 1|, as the release computes), `random`,
`raster`. Both certainty scores lie in [0, 1] (1 = certain), so a Gumbel temperature perturbs
them equally; guidance >= 0 with constant, linear or interval ramps (1 = a single conditional
pass, 0 = a single unconditional pass); Gumbel temperature with constant/down/up ramps; the
head's diffusion steps and temperature; Bernoulli or thresholded bits.

Options that trade exactness for speed, all off by default: `head_steps_last` ramps the
head's steps linearly down (or up) over the loop; `uncond_every` k > 1 recomputes the
unconditional branch's backbone features on every k-th guided step only and reuses them in
between (for the tokens still unknown, LazyMAR-style); `reveal_certain` > 0 makes the step
count entropy-driven: each step also reveals every unknown token whose certainty (1 - mean bit
entropy in bits) reaches it, and a step whose planned count earlier reveals have already met is
skipped (no network call).

What the release did differently is a `SamplingStrategy` the loop is given: how the steps are
planned and which tokens the head runs on (`bigr.official.strategies`: the head on every token,
the release's inpainting count).

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

from .draws import Draws, TorchDraws
from .memory import check_sampling_fits
from .model import BiGR
from .sampler_plan import (
    MAX_STEPS,
    ORDERS,
    SamplerConfig,
    Step,
    head_steps_at,
    plan_steps,
    revises_at,
)
from .transformer import KeyValueCache
from .validation import check_generator, check_sampler

# The plan's names stay importable from here for users (`from bigr.sampler import
# SamplerConfig`); the package itself imports them from `sampler_plan`.
__all__ = [
    "MAX_STEPS",
    "ORDERS",
    "Conditioning",
    "KVReuse",
    "SamplerConfig",
    "SamplingStrategy",
    "Step",
    "UncondReuse",
    "certainty",
    "check_conditions",
    "choose_tokens",
    "guided_features",
    "head_probabilities",
    "head_steps_at",
    "plan_steps",
    "reveal_bits",
    "reveal_scores",
    "sample_codes",
    "token_scores",
    "unknown_rows",
]


# -- certainty -------------------------------------------------------------------------------


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


# -- rung 1: the backbone's features, guided -------------------------------------------------


@dataclass(frozen=True)
class Conditioning:
    """What the rows are conditioned on: `condition` (see the module) and, for mixes,
    `weights` (B, J)."""

    condition: Tensor
    weights: Tensor | None = None

    def with_null(self, null: Tensor) -> Conditioning:
        """The batch [these rows; the same rows unconditioned] (2B rows)."""
        if self.weights is None:
            return Conditioning(torch.cat([self.condition, null]))
        # a mix's unconditional half: the same weights over null rows, i.e. the null embedding;
        # null (B,) -> (B, J) ids, or (B, T) -> (B, J, T) embeddings
        nulls = null.unsqueeze(1).expand_as(self.condition).to(self.condition.dtype)
        return Conditioning(
            torch.cat([self.condition, nulls]), torch.cat([self.weights, self.weights])
        )


@dataclass
class UncondReuse:
    """Features of the unconditional branch kept across unmasking steps (`uncond_every`):
    recomputed when `age` reaches `every` guided steps, reused in between."""

    every: int
    z: Tensor | None = None
    age: int = 0

    def fresh(self) -> bool:
        return self.z is not None and self.age < self.every


@dataclass
class KVReuse:
    """Keys and values kept across unmasking steps (`kv_refresh`): a full backbone pass every
    `every` calls over the same branches, `forward_reuse` passes in between."""

    every: int
    cache: KeyValueCache | None = None
    branches: str = ""  # which branches the cache was computed for
    age: int = 0

    def run(
        self, backbone, codes: Tensor, cond: Conditioning, unknown: Tensor, branches: str
    ) -> Tensor:
        kwargs = dict(condition_weights=cond.weights)
        if self.cache is not None and self.branches == branches and self.age < self.every:
            self.age += 1
            return backbone.forward_reuse(codes, cond.condition, unknown, self.cache, **kwargs)
        z, self.cache = backbone.forward_keep(codes, cond.condition, unknown, **kwargs)
        self.branches, self.age = branches, 1
        return z


def guided_features(
    model: BiGR,
    codes: Tensor,
    unknown: Tensor,
    cond: Conditioning,
    guidance: float,
    reuse: UncondReuse | None = None,
    kv: KVReuse | None = None,
) -> tuple[Tensor, ...]:
    """The backbone's per-token features (B, L, D) of the branches guidance needs: (conditional,
    unconditional), or the one branch when `guidance` is 1 (conditional) or 0 (unconditional).
    With `reuse`, a fresh unconditional branch is taken from it instead of computed, and a
    computed one is kept in it. With `kv`, backbone passes between its refreshes recompute only
    the tokens unknown since the last one."""
    backbone = model.transformer
    null = backbone.null_condition(codes.shape[0], codes.device)

    def run(codes: Tensor, cond: Conditioning, unknown: Tensor, branches: str) -> Tensor:
        if kv is None:
            return backbone(codes, cond.condition, unknown, condition_weights=cond.weights)
        return kv.run(backbone, codes, cond, unknown, branches)

    if guidance == 1:
        return (run(codes, cond, unknown, "conditional"),)
    if guidance == 0:
        return (run(codes, Conditioning(null), unknown, "unconditional"),)
    if reuse is not None and reuse.fresh():
        reuse.age += 1
        return run(codes, cond, unknown, "conditional"), reuse.z
    both = cond.with_null(null)
    twice = torch.cat([codes, codes]), torch.cat([unknown, unknown])
    z_cond, z_uncond = run(twice[0], both, twice[1], "both").chunk(2)
    if reuse is not None:
        reuse.z, reuse.age = z_uncond, 1
    return z_cond, z_uncond


# -- rung 2: the head's bit probabilities ----------------------------------------------------


def unknown_rows(unknown: Tensor, max_unknown: int) -> Tensor:
    """The head's tokens (B, max_unknown): each row's unknown positions first, in order, padded
    with known ones up to the batch's largest unknown count."""
    return torch.argsort((~unknown).to(torch.int8), dim=1, stable=True)[:, :max_unknown]


def head_probabilities(
    model: BiGR,
    branches: tuple[Tensor, ...],
    rows: Tensor | None,
    guidance: float,
    head_steps: int | Tensor,
    config: SamplerConfig,
    draws: Draws,
) -> Tensor:
    """P(bit = 1) (B, L, K) from the head run on tokens `rows` (B, U) of the branches'
    features (every token if None); zeros at the tokens it did not run on. `head_steps`: the
    head's reverse steps, one count for all, or per token (B, U) (one chain per distinct count;
    a host read)."""
    b, l, _ = branches[0].shape
    k = model.config.code_bits
    draws.serve(rows)
    if rows is None:  # each branch (B, L, D) -> (B·L, D)
        features = [z.flatten(0, 1) for z in branches]
    else:  # (B, L, D) gathered at rows (B, U) -> (B·U, D)
        index = rows.unsqueeze(-1).expand(-1, -1, branches[0].shape[-1])
        features = [z.gather(1, index).flatten(0, 1) for z in branches]

    def chain(selected: list[Tensor], steps: int) -> Tensor:
        return model.head.sample(
            selected[0],
            selected[1] if len(selected) > 1 else None,
            guidance=guidance,
            steps=steps,
            temperature=config.head_temperature,
            draws=draws,
        )

    if isinstance(head_steps, int):
        p = chain(features, head_steps)
    else:  # a chain per distinct count, over the flat rows that have it
        flat = head_steps.flatten()
        p = features[0].new_empty(flat.shape[0], k)
        for steps in flat.unique().tolist():
            pick = flat == steps
            p[pick] = chain([f[pick] for f in features], int(steps)).to(p.dtype)
    if rows is None:
        return p.view(b, l, k)
    probs = torch.zeros(b, l, k, device=p.device, dtype=p.dtype)
    # p (B·U, K) -> (B, U, K), scattered to the U positions `rows` (B, U) of (B, L, K)
    return probs.scatter(1, rows.unsqueeze(-1).expand(-1, -1, k), p.view(b, -1, k))


@dataclass
class CertainFewerSteps:
    """`head_steps_certain`: tokens the previous step found more certain than their row's median
    unknown token get this many head steps; the others the step's."""

    steps: int
    last: Tensor | None = None  # (B, L) certainty at the previous step (unknown tokens)

    def allocate(self, step_steps: int, rows: Tensor | None, unknown: Tensor) -> int | Tensor:
        """Head steps per token of `rows` (B, U) (all tokens if None), or one count when
        nothing is known yet."""
        if self.last is None:
            return step_steps
        score = self.last.masked_fill(~unknown, float("nan"))  # the row's unknown tokens only
        median = score.nanmedian(dim=1, keepdim=True).values
        sure = score > median  # NaN compares False: known tokens keep the step's count
        if rows is not None:
            sure = sure.gather(1, rows)
        return torch.where(sure, self.steps, step_steps)

    def update(self, probs: Tensor) -> None:
        self.last = certainty(probs)


# -- rung 3: which tokens to reveal ----------------------------------------------------------


def reveal_scores(step: Step, probs: Tensor, unknown: Tensor, draws: Draws) -> Tensor:
    """The step's ranking (B, L) of the unknown tokens: its order's certainty plus Gumbel noise
    at its temperature; -inf at known tokens."""
    scores = token_scores(step.order, probs, unknown, draws)
    if step.gumbel > 0:
        b, l = unknown.shape
        scores = scores + (step.gumbel * draws.gumbel((b, l), unknown.device)).float()
    return scores


def choose_tokens(scores: Tensor, counts: Tensor, most: int) -> tuple[Tensor, Tensor]:
    """The `most` best-scored tokens of each row (B, most), best first, and which of them the
    row takes (B, most) bool: its first `counts` (B, 1)."""
    index = scores.topk(most, dim=1).indices
    take = torch.arange(most, device=scores.device) < counts
    return index, take


@dataclass
class CertainFirst:
    """`reveal_certain`: the plan's counts become what it still needs given what earlier steps
    revealed early, and every token at least `threshold` certain is revealed at once."""

    threshold: float
    left_after: Tensor  # (steps, B): unknown tokens the plan leaves after each step

    @classmethod
    def of(cls, threshold: float, plan: list[Step], counts: Tensor) -> CertainFirst:
        before = torch.tensor([step.unknown_before for step in plan], device=counts.device)
        return cls(threshold, before - counts.view(len(plan), -1))

    def needed(self, i: int, unknown: Tensor) -> tuple[Tensor, int, int]:
        """Tokens step `i` still has to reveal per row (B, 1), their most, the most unknown
        (host reads)."""
        now = unknown.sum(1)
        need = (now - self.left_after[i]).clamp_min(0)
        return need.view(-1, 1), int(need.max()), int(now.max())

    def promote(
        self, scores: Tensor, probs: Tensor, unknown: Tensor, need: Tensor
    ) -> tuple[Tensor, Tensor, int]:
        """Scores with the sure tokens ranked above all others, and the counts that take all of
        them (B, 1) with their most (a host read)."""
        sure = (certainty(probs) >= self.threshold) & unknown
        scores = torch.where(sure, scores + 1e6, scores)  # sure tokens are unknown: finite
        counts = torch.maximum(need, sure.sum(1, keepdim=True))
        return scores, counts, int(counts.max())


@dataclass
class Revision:
    """`revise`: the steps `revises_at` names re-mask the committed tokens that were least
    certain when their bits were drawn (never tokens given as known), so that the step draws
    them again with the context revealed since."""

    count: int
    given: Tensor  # (B, L) tokens given as known
    drawn_certainty: Tensor  # (B, L) certainty of each token when its bits were drawn

    @classmethod
    def of(cls, config: SamplerConfig, unknown: Tensor) -> Revision:
        ones = torch.ones(unknown.shape, device=unknown.device)
        return cls(min(config.revise, unknown.shape[1]), ~unknown, ones)

    def remask(self, unknown: Tensor) -> Tensor:
        """Re-mask up to `count` committed tokens per row, the least certain when drawn (in
        place); the number re-masked per row (B, 1)."""
        committed = ~unknown & ~self.given
        score = self.drawn_certainty.masked_fill(~committed, float("inf"))
        low = score.topk(self.count, dim=1, largest=False)
        chosen = low.values.isfinite()  # (B, count): rows with fewer committed tokens
        unknown.scatter_(1, low.indices, unknown.gather(1, low.indices) | chosen)
        return chosen.sum(1, keepdim=True)

    def record(self, probs: Tensor, index: Tensor, take: Tensor) -> None:
        """Keep the certainty of the tokens revealed now (`index` (B, U) where `take`)."""
        now = certainty(probs).gather(1, index)
        kept = self.drawn_certainty.gather(1, index)
        self.drawn_certainty.scatter_(1, index, torch.where(take, now, kept))


# -- rung 4: reveal ---------------------------------------------------------------------------


def reveal_bits(
    codes: Tensor,
    unknown: Tensor,
    probs: Tensor,
    index: Tensor,
    take: Tensor,
    bits: str,
    draws: Draws,
) -> None:
    """Draw the bits of the chosen tokens `index` (B, U) (Bernoulli, or thresholded at 1/2) and
    write those the rows `take` (B, U) into `codes`; they stop being `unknown` (in place)."""
    k = codes.shape[-1]
    index_k = index.unsqueeze(-1).expand(-1, -1, k)
    chosen = probs.gather(1, index_k)
    draws.serve(index)
    drawn = draws.bernoulli(chosen) if bits == "bernoulli" else (chosen > 0.5).to(chosen.dtype)
    revealed = torch.zeros_like(unknown).scatter(1, index, take)  # (B, L)
    codes.copy_(
        torch.where(revealed.unsqueeze(-1), codes.scatter(1, index_k, drawn.float()), codes)
    )
    unknown &= ~revealed


# -- the loop ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingStrategy:
    """How the loop plans its steps and which tokens the head runs on: bigr's (`plan_steps`,
    `unknown_rows`) by default; the release's are in `bigr.official.strategies`."""

    plan: Callable[[list[int], int, SamplerConfig], list[Step]] = plan_steps
    head_rows: Callable[[Tensor, int], Tensor | None] = unknown_rows


BIGR = SamplingStrategy()


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
    strategy: SamplingStrategy = BIGR,
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
    config = _checked_config(model, condition, condition_weights, config, generator)
    mc = model.config
    b, l, k = condition.shape[0], mc.num_tokens, mc.code_bits
    device = model.transformer.mask_token.device
    check_sampling_fits(mc, b, config.guidance != 1, device)
    draws = draws or TorchDraws(generator)
    codes, unknown = _start(known_codes, known_mask, b, l, k, device)
    cond = Conditioning(condition, condition_weights)
    plan = strategy.plan(unknown.sum(1).tolist(), l, config)  # the one host read
    # (steps, B) revealed counts -> (steps, B, 1)
    counts_of = torch.tensor([step.counts for step in plan], device=device).view(len(plan), b, 1)
    certain = (
        CertainFirst.of(config.reveal_certain, plan, counts_of) if config.reveal_certain else None
    )
    reuse = UncondReuse(config.uncond_every) if config.uncond_every > 1 else None
    kv = KVReuse(config.kv_refresh) if config.kv_refresh > 1 else None
    revision = Revision.of(config, unknown) if config.revise else None
    fewer = CertainFewerSteps(config.head_steps_certain) if config.head_steps_certain else None
    if progress is not None:
        progress(0, len(plan))  # a bar starts now, so its rate includes the first step
    for i, step in enumerate(plan):
        counts, most, max_unknown = counts_of[i], max(step.counts), max(step.unknown_before)
        if revision is not None and revises_at(config, i):
            counts = counts + revision.remask(unknown)
            most = min(most + revision.count, l)
            max_unknown = min(max_unknown + revision.count, l)
        if certain is not None:
            counts, most, max_unknown = certain.needed(i, unknown)
        if most > 0:
            branches = guided_features(model, codes, unknown, cond, step.guidance, reuse, kv)
            rows = strategy.head_rows(unknown, max_unknown)
            head_steps = step.head_steps
            if fewer is not None:
                head_steps = fewer.allocate(step.head_steps, rows, unknown)
            probs = head_probabilities(
                model, branches, rows, step.guidance, head_steps, config, draws
            )
            scores = reveal_scores(step, probs, unknown, draws)
            if certain is not None:
                scores, counts, most = certain.promote(scores, probs, unknown, counts)
            index, take = choose_tokens(scores, counts, most)
            if revision is not None:
                revision.record(probs, index, take)
            if fewer is not None:
                fewer.update(probs)
            reveal_bits(codes, unknown, probs, index, take, config.bits, draws)
        if progress is not None:
            progress(i + 1, len(plan))
    return codes


def _checked_config(
    model: BiGR,
    condition: Tensor,
    condition_weights: Tensor | None,
    config: SamplerConfig | None,
    generator: torch.Generator | None,
) -> SamplerConfig:
    """The sampler settings checked against the model and conditions (ValueError naming what is
    off); guidance set to 1 for a model with a single condition."""
    config = SamplerConfig() if config is None else config
    check_sampler(config)
    check_generator(generator)
    mc = model.config
    check_conditions(model, condition, condition_weights)
    for name in ("head_steps", "head_steps_last", "head_steps_certain"):
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
    return config


def _start(
    known_codes: Tensor | None,
    known_mask: Tensor | None,
    b: int,
    l: int,
    k: int,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """The loop's state before the first step: codes (B, L, K), known tokens copied in, and the
    unknown mask (B, L)."""
    if known_mask is None:
        known_mask = torch.zeros(b, l, dtype=torch.bool, device=device)
    _check_known(known_codes, known_mask, b, l, k)
    codes = torch.zeros(b, l, k, device=device)
    if known_codes is not None:
        codes = torch.where(known_mask.unsqueeze(-1), known_codes.to(device).float(), codes)
    return codes, ~known_mask.to(device)


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
