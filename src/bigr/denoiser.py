"""The transcoder network: a DiT-style adaLN MLP applied to each token independently.

Implements bigr-spec.md §2.5: noisy bits x_t mapped to ±1 and embedded, the condition
c_embedder(z) + t_embedder(t - 1) feeding every block's (shift, scale, gate) modulation, and a
modulated output layer giving K logits. Module and parameter names follow the release.

`FusedDenoiser` is the same function rearranged for sampling, where the network runs 100 times
per unmasking step on the same rows: SiLU of the condition is taken once per step for all
blocks, every modulation comes from one matrix product, the "+1" of each scale is folded into
its bias, and the output layer's shift is projected through the output weights ahead of time
(W (h + shift) = W h + (W A) s + W b). Results agree with the module to float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import modulate

FREQUENCY_FEATURES = 256


def timestep_features(
    t: Tensor, dim: int = FREQUENCY_FEATURES, max_period: float = 10000.0
) -> Tensor:
    """Sinusoidal features (M, dim) ordered [cos, sin], frequencies exp(-ln(P) k / (dim/2))."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(FREQUENCY_FEATURES, width), nn.SiLU(), nn.Linear(width, width)
        )

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_features(t).to(self.mlp[0].weight.dtype))


class DenoiseBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        shift, scale, gate = self.adaLN_modulation(cond).chunk(3, dim=-1)
        return x + gate * self.mlp(modulate(self.norm(x), shift, scale))


class FinalLayer(nn.Module):
    def __init__(self, width: int, code_bits: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, code_bits)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(cond).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class Denoiser(nn.Module):
    """Per-token adaLN MLP: logits (M, K) from bits x_t (M, K), t - 1 (M,), condition (M, D)."""

    def __init__(self, code_bits: int, cond_dim: int, width: int, depth: int) -> None:
        super().__init__()
        self.t_embedder = TimestepEmbedder(width)
        self.x_embedder = nn.Linear(code_bits, width)
        self.c_embedder = nn.Linear(cond_dim, width)
        self.blocks = nn.ModuleList(DenoiseBlock(width) for _ in range(depth))
        self.final_layer = FinalLayer(width, code_bits)

    def forward(self, x_t: Tensor, t_index: Tensor, c: Tensor) -> Tensor:
        return self.forward_embedded(x_t, self.c_embedder(c) + self.t_embedder(t_index))

    def forward_embedded(self, x_t: Tensor, cond: Tensor) -> Tensor:
        """The network after the condition embedding: `cond` = c_embedder(c) + t_embedder(t-1),
        so a sampler can embed the condition once and the time once per step."""
        dtype = self.x_embedder.weight.dtype  # the bits in the weights' dtype (a cast model)
        x = self.x_embedder(((x_t - 0.5) * 2).to(dtype))  # bits to ±1
        for block in self.blocks:
            x = block(x, cond)
        return self.final_layer(x, cond)

    def reset_parameters(self) -> None:
        """The release's initialisation: outputs start at exactly zero (bigr-spec.md §2.6)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)


class FusedDenoiser:
    """Inference form of a `Denoiser` for many calls on the same rows (see module docstring).

    Per block, one product of s = SiLU(condition) gives three row-wise terms: the first MLP
    layer's bias including the projected shift (W1 (A_shift s + b_shift) + b1), 1 + scale, and
    the gate; the first MLP product then accumulates in place onto that bias. The output layer
    likewise gets 1 + scale and its shift already projected to logits. Built from the module's
    current weights; no gradients. Rows go in chunks of `chunk_rows` to stay in cache.
    """

    def __init__(
        self, net: Denoiser, cond: Tensor, copies: int = 1, chunk_rows: int = 1024
    ) -> None:
        """`cond` (copies·M, W) is c_embedder(z) for `copies` condition sets over the same M
        rows of bits (2 for classifier-free guidance)."""
        width = net.x_embedder.out_features
        self.width, self.copies = width, copies
        self.x_embedder, self.t_embedder = net.x_embedder, net.t_embedder
        with torch.no_grad():
            self.blocks = []
            for block in net.blocks:
                lin, mlp = block.adaLN_modulation[-1], block.mlp
                (shift_w, scale_w, gate_w), (shift_b, scale_b, gate_b) = (
                    lin.weight.chunk(3),
                    lin.bias.chunk(3),
                )
                w1, b1 = mlp[0].weight, mlp[0].bias
                mod_w = torch.cat([w1 @ shift_w, scale_w, gate_w])
                mod_b = torch.cat([w1 @ shift_b + b1, scale_b + 1, gate_b])
                self.blocks.append(
                    (mod_w, mod_b, w1.detach(), mlp[2].weight.detach(), mlp[2].bias.detach())
                )
            final = net.final_layer
            shift_w, scale_w = final.adaLN_modulation[-1].weight.chunk(2)
            shift_b, scale_b = final.adaLN_modulation[-1].bias.chunk(2)
            out_w, out_b = final.linear.weight, final.linear.bias
            self.final_weight = torch.cat([scale_w, out_w @ shift_w])
            self.final_bias = torch.cat([scale_b + 1, out_w @ shift_b + out_b])
            self.out_weight = out_w.detach()
            # Balanced chunks of rows; the copies of a chunk's rows are stored together so that
            # one pass over the weights serves all of them.
            m = cond.shape[0] // copies
            # about `chunk_rows` rows per chunk: round, so 1.4 x chunk_rows stays one chunk
            n_chunks = max(1, round(copies * m / chunk_rows))
            per_chunk = -(-m // n_chunks) if m else 1
            # (copies·M, W) -> (copies, M, W); a chunk's rows of every copy, (copies·rows, W)
            by_copy = cond.view(copies, m, width)
            self.chunks = [
                (
                    start,
                    min(start + per_chunk, m),
                    by_copy[:, start : start + per_chunk].reshape(-1, width),
                )
                for start in range(0, m, per_chunk)
            ]

    @torch.no_grad()
    def logits(self, bits: Tensor, t_index: int) -> Tensor:
        """Logits (copies, M, K) for bits (M, K) at network time `t_index` (= t - 1)."""
        m, k = bits.shape
        t_emb = self.t_embedder(torch.full((1,), t_index, device=bits.device, dtype=torch.long))
        out = torch.empty(self.copies, m, k, device=bits.device, dtype=self.out_weight.dtype)
        signs = (bits - 0.5) * 2  # bits to ±1
        for start, end, cond in self.chunks:
            x = self.x_embedder(signs[start:end].repeat(self.copies, 1))
            s = F.silu(torch.add(cond, t_emb), inplace=True)
            # (copies·rows, K) -> (copies, rows, K)
            out[:, start:end] = self._forward(x, s).view(self.copies, end - start, k)
        return out

    def _forward(self, x: Tensor, s: Tensor) -> Tensor:
        w = self.width
        for mod_w, mod_b, w1, w2, b2 in self.blocks:
            pre, scale1, gate = torch.addmm(mod_b, s, mod_w.t()).split(w, dim=-1)
            h = F.layer_norm(x, (w,), eps=1e-6).mul_(scale1)
            # = W1 (LN(x) (1 + scale) + shift) + b1; in place, so in `pre`'s dtype (autocast)
            u = F.silu(pre.addmm_(h.to(pre.dtype), w1.t().to(pre.dtype)), inplace=True)
            x = torch.addcmul(x, gate, torch.addmm(b2, u, w2.t()))
        scale1, logits = torch.addmm(self.final_bias, s, self.final_weight.t()).split(
            [w, self.out_weight.shape[0]], dim=-1
        )
        h = F.layer_norm(x, (w,), eps=1e-6).mul_(scale1)
        return logits.addmm_(h.to(logits.dtype), self.out_weight.t().to(logits.dtype))
