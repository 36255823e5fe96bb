"""The binary transcoder: a Bernoulli-diffusion head on the backbone's per-token vector `z`.

Implements bigr-spec.md §2.5 and §3.2-3.3: a DiT-style adaLN MLP (`Denoiser`) that reads noisy
bits x_t (mapped to ±1), the diffusion time and the condition z, and outputs K logits. With
`predict_flip` the logits say which bits of x_t flip to give x_0 (the released setting). The
loss family is the release's: plain BCE, or the focal family whose gamma = 0, alpha = -1 member
is the paper's class-balanced wBCE, plus the optional variational-bound term. `sample` runs the
reverse chain with classifier-free guidance on logits and returns P(x_0 = 1).

The head never learns which tokens are masked or in which order they are revealed: it sees
rows of `z` (M, D) and bits (M, K). Time t runs over 1..T; the network is called with t - 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import schedules
from .config import HeadConfig
from .denoiser import Denoiser, FusedDenoiser
from .draws import Draws, TorchDraws


def x0_logits(raw: Tensor, x_t: Tensor, predict_flip: bool) -> Tensor:
    """Logits of x_0 = 1: with flip prediction, (1 - 2 x_t) * raw."""
    return (1 - 2 * x_t) * raw if predict_flip else raw


def bit_loss(
    raw: Tensor,
    x0: Tensor,
    x_t: Tensor,
    *,
    predict_flip: bool,
    focal_gamma: float | None,
    alpha: float,
) -> tuple[Tensor, Tensor]:
    """Per-element loss (M, K) and bit accuracy of the release's loss family.

    - focal_gamma None: plain BCE of the x_0 logits against x_0 (with flip prediction this is
      BCE(raw, x_0 xor x_t)).
    - focal_gamma g >= 0: BCE(raw, target) (1 - p_t)^g with target = x_0 xor x_t under flip
      prediction, else x_0. Weights under flip prediction: alpha = -1 gives the per-token class
      balance (1 - rho) y + rho (1 - y) + 1/K, rho the fraction of ones in the token's target;
      alpha > 0 the focal alpha. Without flip prediction the release uses no weights.
    """
    logits0 = x0_logits(raw, x_t, predict_flip)
    acc = ((logits0 > 0).to(x0.dtype) == x0).float().mean()
    if focal_gamma is None:
        return F.binary_cross_entropy_with_logits(logits0, x0, reduction="none"), acc
    target = torch.logical_xor(x0 > 0.5, x_t > 0.5).to(raw.dtype) if predict_flip else x0
    loss = F.binary_cross_entropy_with_logits(raw, target, reduction="none")
    if focal_gamma != 0:
        p = torch.sigmoid(raw)
        miss = (1 - (p * target + (1 - p) * (1 - target))).clamp(1e-6, 1 - 1e-6)
        loss = loss * miss**focal_gamma
    if predict_flip and alpha == -1:
        rho = target.mean(-1, keepdim=True)
        loss = loss * ((1 - rho) * target + rho * (1 - target) + 1 / target.shape[-1])
    elif predict_flip and alpha > 0:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return loss, acc


class BernoulliHead(nn.Module):
    """Bernoulli diffusion on K-bit codes, conditioned per token on z (M, D)."""

    def __init__(self, config: HeadConfig, code_bits: int, cond_dim: int) -> None:
        super().__init__()
        self.config = config
        self.code_bits = code_bits
        self.denoiser = Denoiser(code_bits, cond_dim, config.dim, config.depth)
        self.denoiser.reset_parameters()
        self.reset_buffers()

    def reset_buffers(self) -> None:
        """(Re)compute the noise tables on the device of the parameters."""
        tables = schedules.noise_tables(self.config.diffusion_steps)
        device = self.denoiser.x_embedder.weight.device
        for name, table in tables.items():
            self.register_buffer(name, table.to(device), persistent=False)
        # Host copy so the sampling loop never reads a device tensor back.
        self.beta_host = tables["beta"].tolist()

    # -- training ------------------------------------------------------------------------------

    def loss(
        self,
        z: Tensor,
        x0: Tensor,
        *,
        t: Tensor | None = None,
        x_t: Tensor | None = None,
        noise: Tensor | None = None,
        normalizer: float | None = None,
        weight: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Loss over rows of z (M, D) with targets x0 (M, K).

        t (M,) in 1..T is drawn unless given; the noisy bits are `x_t` if given, else
        (noise < q(x_t = 1 | x0)) with `noise` (M, K) uniforms, drawn unless given. The loss is
        the mean over rows and bits, or its sum divided by `normalizer` (a trainer splitting a
        batch over devices passes the global element count, so that the pieces add up to the
        mean of the whole batch). `weight` (M,) of 0/1 scales each row's loss, as the release
        does when it runs the head on every token and keeps only the masked ones; the mean is
        then over the kept rows.
        """
        cfg = self.config
        if cfg.direct:
            return self._direct_loss(z, x0, normalizer, weight)
        if t is None:
            t = torch.randint(
                1, cfg.diffusion_steps + 1, (x0.shape[0],), device=x0.device, generator=generator
            )
        if x_t is None:
            probs = schedules.q_prob(x0, self.k_final[t, None], self.b_final[t, None])
            if noise is None:
                noise = torch.rand(probs.shape, device=probs.device, generator=generator)
            x_t = (noise < probs).to(x0.dtype)
        raw = self.denoiser(x_t, t - 1, z)
        loss_all, acc = bit_loss(
            raw.float(),
            x0.float(),
            x_t.float(),
            predict_flip=cfg.predict_flip,
            focal_gamma=cfg.focal_gamma,
            alpha=cfg.alpha,
        )

        if weight is not None:
            loss_all = loss_all * weight[:, None].to(loss_all.dtype)
            if normalizer is None:
                normalizer = weight.sum().clamp_min(1) * x0.shape[1]

        def reduce(values: Tensor) -> Tensor:
            return values.mean() if normalizer is None else values.sum() / normalizer

        bce = reduce(loss_all)
        out = {"loss": bce, "bce_loss": bce, "acc": acc}
        if cfg.aux_weight > 0:
            aux = self._aux_loss(raw.float(), x0.float(), x_t.float(), t)
            if weight is not None:
                aux = aux * weight[:, None].to(aux.dtype)
            out["aux_loss"] = reduce(aux)
            out["loss"] = bce + cfg.aux_weight * out["aux_loss"]
        return out

    def _direct_input(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The `direct` head's fixed inputs: all bits 1 and t 0. A constant, but not zero: a zero
        input would leave the zero-initialised output layer without a gradient."""
        rows = z.shape[0]
        x = torch.ones(rows, self.code_bits, device=z.device, dtype=z.dtype)
        return x, torch.zeros(rows, dtype=torch.long, device=z.device)

    def _direct_loss(
        self, z: Tensor, x0: Tensor, normalizer: float | None, weight: Tensor | None
    ) -> dict[str, Tensor]:
        cfg = self.config
        x, t_index = self._direct_input(z)
        raw = self.denoiser(x, t_index, z).float()
        loss_all, acc = bit_loss(
            raw, x0.float(), x.float(), predict_flip=False, focal_gamma=cfg.focal_gamma, alpha=0
        )
        if weight is not None:
            loss_all = loss_all * weight[:, None].to(loss_all.dtype)
            if normalizer is None:
                normalizer = weight.sum().clamp_min(1) * x0.shape[1]
        bce = loss_all.mean() if normalizer is None else loss_all.sum() / normalizer
        return {"loss": bce, "bce_loss": bce, "acc": acc}

    def _aux_loss(self, raw: Tensor, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """The release's variational-bound term: BCE between the one-step posteriors implied by
        the predicted and the true x_0 (the prediction itself at t = 1)."""
        p0 = torch.sigmoid(x0_logits(raw, x_t, self.config.predict_flip))
        k_prev, b_prev = self.k_final[t - 1, None], self.b_final[t - 1, None]
        keep = self.beta[t, None]

        def posterior(p: Tensor) -> Tensor:
            a1, a0 = k_prev * p + b_prev, k_prev * (1 - p) + b_prev
            q1, q0 = schedules.one_step(x_t, keep), schedules.one_step(1 - x_t, keep)
            return a1 * q1 / (a1 * q1 + a0 * q0 + 1e-6)

        first = (t == 1)[:, None]
        predicted = torch.where(first, p0, posterior(p0))
        target = posterior(x0)
        return F.binary_cross_entropy(
            predicted.clamp(1e-6, 1 - 1e-6), target.clamp(0, 1), reduction="none"
        )

    # -- sampling ------------------------------------------------------------------------------

    def sample(
        self,
        z: Tensor,
        z_uncond: Tensor | None = None,
        *,
        guidance: float = 1.0,
        steps: int = 100,
        temperature: float = 1.0,
        draws: Draws | None = None,
    ) -> Tensor:
        """P(x_0 = 1) (M, K) after the reverse chain from pure noise.

        With `z_uncond` (M, D) each step mixes logits as l_u + guidance (l_c - l_u), both
        divided by `temperature` first; the chain state x is shared by the two branches. The
        condition embedding is computed once, the time embedding once per step.
        """
        draws = draws or TorchDraws()
        net = self.denoiser
        rows = z.shape[0]
        guided = z_uncond is not None
        if self.config.direct:  # one call, no chain: nothing is drawn
            both = torch.cat([z, z_uncond]) if guided else z
            x, t_index = self._direct_input(both)
            # (halves·rows, K) -> (halves, rows, K): conditional first, then unconditional
            logits = (net(x, t_index, both).float() / temperature).view(-1, rows, self.code_bits)
            return torch.sigmoid(
                torch.lerp(logits[1], logits[0], guidance) if guided else logits[0]
            )
        c = net.c_embedder(torch.cat([z, z_uncond]) if guided else z)  # (M or 2M, W), once
        fused = FusedDenoiser(net, c, copies=2 if guided else 1)
        times = schedules.sampling_timesteps(self.config.diffusion_steps, steps)
        x = draws.bernoulli(torch.full((rows, self.code_bits), 0.5, device=z.device, dtype=c.dtype))
        for i, t in enumerate(times):
            logits = fused.logits(x, t - 1).float()  # (1 or 2, M, K); branches share the chain
            if temperature != 1.0:
                logits = logits / temperature
            # guidance: l_u + g (l_c - l_u)
            p0 = torch.sigmoid(torch.lerp(logits[1], logits[0], guidance) if guided else logits[0])
            if self.config.predict_flip:
                p0 = (p0 - x).abs_()  # P(x_0 = 1): p where x_t = 0, 1 - p where x_t = 1
            if t == 1:
                break
            t_prev = times[i + 1]
            keep = schedules.transition_keep(self.beta_host, t, t_prev)
            probs = schedules.posterior_prob(
                p0, x, self.k_final[t_prev], self.b_final[t_prev], keep
            )
            x = draws.bernoulli(probs).to(c.dtype)
        return p0
