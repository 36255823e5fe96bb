"""Transformer building blocks: RMSNorm, SwiGLU, 2-D rotary embedding, bidirectional attention.

Owns the numerics that must match the released checkpoints exactly (bigr-spec.md §2.3-2.4):
RMSNorm computed in float32, interleaved-pair RoPE computed in float32, a rotary table whose
class-token rows are all zero (so the class token's query and key vanish), and attention with
no mask at all. Leaves masking of tokens, bits and conditioning to `transformer.py`.

Shapes: B batch, L sequence (class tokens + grid tokens), H heads, Dh head width, D model width.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in float32 whatever the compute dtype, as the release does.
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x), all bias-free."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


def rope_table_2d(
    grid_size: int, head_dim: int, base: float = 10000.0, prefix_tokens: int = 1
) -> Tensor:
    """(prefix_tokens + grid², head_dim/2, 2) table of (cos, sin) per rotated pair.

    Pair m < head_dim/4 rotates by the row index times frequency m, the remaining pairs by the
    column index. Prefix (class-token) rows are zeros, not the identity: the release multiplies
    the class token's query and key by zero, and the checkpoints were trained that way.
    """
    half = head_dim // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2)[: half // 2].float() / half))  # (Dh/4,)
    pos = torch.arange(grid_size, dtype=torch.float32)
    angles = torch.outer(pos, freqs)  # (G, Dh/4)
    grid = torch.cat(
        [
            angles[:, None, :].expand(-1, grid_size, -1),  # row part
            angles[None, :, :].expand(grid_size, -1, -1),  # column part
        ],
        dim=-1,
    )  # (G, G, Dh/2)
    table = torch.stack([torch.cos(grid), torch.sin(grid)], dim=-1).flatten(0, 1)  # (G², Dh/2, 2)
    return torch.cat([torch.zeros(prefix_tokens, half, 2), table])


def apply_rope(x: Tensor, table: Tensor) -> Tensor:
    """Rotate consecutive pairs (2m, 2m+1) of x (B, L, H, Dh) by table (L, Dh/2, 2) (or per row,
    (B, L, Dh/2, 2)), in float32:
    (x0 cos - x1 sin, x1 cos + x0 sin), the complex product per pair written in real
    arithmetic (any dtype in, torch.compile-friendly)."""
    pairs = x.float().unflatten(-1, (-1, 2))  # (B, L, H, Dh/2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    # (L, Dh/2, 2) for every row, or (B, L, Dh/2, 2) per row; broadcast over heads
    rot = table.float().view(-1, pairs.size(1), 1, pairs.size(3), 2)
    cos, sin = rot[..., 0], rot[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x1 * cos + x0 * sin), dim=-1)
    return out.flatten(3).type_as(x)  # (B, L, H, Dh)


class KeptKV(NamedTuple):
    """Keys and values (B, Hkv, S, Dh) kept from a pass over a whole sequence, and where the
    rows of a partial pass sit in it: `positions` (B, A), `valid` (B, A) False on rows that only
    pad a batch (their kept keys and values stay)."""

    keys: Tensor
    values: Tensor
    positions: Tensor
    valid: Tensor


class Attention(nn.Module):
    """Fully bidirectional multi-head attention with a fused qkv projection (rows [q | k | v])."""

    def __init__(
        self, dim: int, heads: int, kv_heads: int, dropout: float = 0.0, attn_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.heads, self.kv_heads = heads, kv_heads
        self.head_dim = dim // heads
        self.kv_dim = kv_heads * self.head_dim
        self.wqkv = nn.Linear(dim, dim + 2 * self.kv_dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)
        self.attn_dropout = attn_dropout
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, rope: Tensor) -> Tensor:
        return self.forward_kv(x, rope)[0]

    def forward_kv(
        self, x: Tensor, rope: Tensor, kept: KeptKV | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The attention output and this call's keys and values (B, Hkv, L, Dh), rotated.

        With `kept` keys and values of a whole sequence, `x` (B, A, D) holds only the rows at
        `kept.positions` (`rope` their (B, A, Dh/2, 2) table): their keys and values replace the
        kept ones there (except on padding rows) and their queries attend to the whole
        sequence."""
        b, l, d = x.shape
        q, k, v = self.wqkv(x).split([d, self.kv_dim, self.kv_dim], dim=-1)
        # (B, L, H·Dh) -> (B, L, H, Dh); keys and values have kv_heads heads
        q = apply_rope(q.view(b, l, self.heads, self.head_dim), rope)
        k = apply_rope(k.view(b, l, self.kv_heads, self.head_dim), rope)
        v = v.view(b, l, self.kv_heads, self.head_dim)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, Dh)
        fresh = (k, v)
        if kept is not None:  # (B, A) -> (B, Hkv, A, Dh) index into the kept sequence
            index = kept.positions[:, None, :, None].expand(-1, self.kv_heads, -1, self.head_dim)
            valid = kept.valid[:, None, :, None]
            k = kept.keys.scatter(2, index, torch.where(valid, k, kept.keys.gather(2, index)))
            v = kept.values.scatter(2, index, torch.where(valid, v, kept.values.gather(2, index)))
        if self.kv_heads != self.heads:
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        # No mask at all: the release's all-True boolean mask means the same thing but would
        # keep fused kernels from running.
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_dropout if self.training else 0.0
        )
        # (B, H, L, Dh) -> (B, L, H, Dh) -> (B, L, D)
        return self.dropout(self.wo(out.transpose(1, 2).reshape(b, l, d))), fresh


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return torch.addcmul(shift, x, 1 + scale)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability p."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)
