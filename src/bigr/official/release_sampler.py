"""The release's sampling algorithm, as the release does its work (bigr-spec.md §4.1-4.2).

A baseline for speed comparisons, not a path anyone should sample with: it does the release's
amount of work the release's way, so that `bigr bench sample` compares bigr's default path with
the real thing rather than with a re-enactment that keeps bigr's optimisations.

What it does as the release does, and bigr's default path does not:
- the conditional and unconditional halves share one transformer call (the release's
  `cat([seq, seq])`), but the head runs **two separate denoiser calls** per reverse step;
- the head runs on **every token** of both halves at every reverse step of every unmasking
  step, revealed tokens included;
- every denoiser call embeds the condition (`c_embedder(z)`) and the time for **every token**
  (`t_embedder` on a (rows,) vector of t - 1), inside the reverse loop;
- no fused or rearranged denoiser: the plain module.

Its random draws are consumed in the release's order (chain start, every chain step, the
revealed bits; Gumbel noise per step), so with `RecordedDraws` it reproduces the recorded
official generation bit for bit (`tests/test_release_sampler.py`). Class-conditional generation
from scratch only: the release's `generate_with_cfg`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import schedules
from ..draws import Draws, TorchDraws
from ..model import BiGR
from ..sampler import SamplerConfig


def release_head_sample(
    model: BiGR,
    z_cond: Tensor,
    z_uncond: Tensor,
    *,
    guidance: float,
    steps: int,
    temperature: float,
    draws: Draws,
) -> Tensor:
    """P(x_0 = 1) (M, K): `BinaryDiffusion.sample` with two denoiser calls per reverse step."""
    head, net = model.head, model.head.denoiser
    rows, k = z_cond.shape[0], model.config.code_bits
    times = schedules.sampling_timesteps(head.config.diffusion_steps, steps)
    x = draws.bernoulli(torch.full((rows, k), 0.5, device=z_cond.device, dtype=z_cond.dtype))
    for i, t in enumerate(times):
        t_index = torch.full((rows,), t - 1, device=z_cond.device, dtype=torch.long)
        logits_c = net(x, t_index, z_cond).float() / temperature
        logits_u = net(x, t_index, z_uncond).float() / temperature
        logits = logits_u + guidance * (logits_c - logits_u)
        if head.config.predict_flip:
            p_flip = torch.sigmoid(logits)
            p0 = x * (1 - p_flip) + (1 - x) * p_flip
        else:
            p0 = torch.sigmoid(logits)
        if t == 1:
            break
        t_prev = times[i + 1]
        keep = schedules.transition_keep(head.beta_host, t, t_prev)
        probs = schedules.posterior_prob(p0, x, head.k_final[t_prev], head.b_final[t_prev], keep)
        x = draws.bernoulli(probs).to(z_cond.dtype)
    return p0


@torch.no_grad()
def release_sample_codes(
    model: BiGR,
    labels: Tensor,
    config: SamplerConfig,
    *,
    draws: Draws | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Codes (B, L, K) by the release's `generate_with_cfg`: confidence order, guidance always on
    (two halves), the head on every token; `config`'s order and head options are ignored except
    `bits` (Bernoulli or thresholded reveal)."""
    mc = model.config
    b, l, k = labels.shape[0], mc.num_tokens, mc.code_bits
    device = model.transformer.mask_token.device
    draws = draws or TorchDraws(generator)
    labels = labels.to(device)
    null = model.transformer.null_condition(b, device)
    seq = torch.zeros(b, l, k, device=device)
    mask = torch.ones(b, l, dtype=torch.bool, device=device)
    # k = old - floor(mask_ratio(r) N) tokens per step; the last step reveals the rest
    counts = schedules.reveal_counts(l, config.steps, config.schedule)
    for s, count in enumerate(counts):
        r = (s + 1) / config.steps
        guidance = schedules.guidance_at(config.guidance, config.guidance_schedule, r)
        probs = _step_probs(model, seq, mask, labels, null, guidance, config, draws)
        conf = (probs - 0.5).abs().mul(2).mean(-1).masked_fill(~mask, float("-inf"))
        gumbel = schedules.gumbel_temperature_at(config.gumbel, config.gumbel_schedule, r)
        if gumbel > 0:
            conf = conf + gumbel * draws.gumbel((b, l), device)
        if count == 0:
            continue
        index = conf.topk(count, dim=1).indices  # (B, count)
        chosen = probs.gather(1, index.unsqueeze(-1).expand(-1, -1, k))
        draws.serve(index)
        bits = _reveal(chosen, config, draws)
        seq.scatter_(1, index.unsqueeze(-1).expand(-1, -1, k), bits)
        mask.scatter_(1, index, False)
    if mask.any():  # the release's safety net: one more step fills what is left, in order
        probs = _step_probs(model, seq, mask, labels, null, config.guidance, config, draws)
        rest = mask.nonzero(as_tuple=True)
        seq[rest] = _reveal(probs[rest], config, draws)
    return seq


def _step_probs(
    model: BiGR,
    seq: Tensor,
    mask: Tensor,
    labels: Tensor,
    null: Tensor,
    guidance: float,
    config: SamplerConfig,
    draws: Draws,
) -> Tensor:
    """`decode_one_step`: one transformer call on both halves, the head on all 2·B·L rows."""
    b, l, k = seq.shape
    z = model.transformer(
        torch.cat([seq, seq]), torch.cat([labels, null]), torch.cat([mask, mask])
    )  # (2B, L, D)
    z_cond, z_uncond = z.flatten(0, 1).chunk(2)  # (B·L, D) each
    draws.serve(None)
    p = release_head_sample(
        model,
        z_cond,
        z_uncond,
        guidance=guidance,
        steps=config.head_steps,
        temperature=config.head_temperature,
        draws=draws,
    )
    return p.view(b, l, k)


def _reveal(probs: Tensor, config: SamplerConfig, draws: Draws) -> Tensor:
    if config.bits == "bernoulli":
        return draws.bernoulli(probs)
    return (probs > 0.5).to(probs.dtype)
