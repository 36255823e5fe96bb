"""The BiGR backbone: binary codes + class condition + token mask -> per-token condition `z`.

Implements bigr-spec.md §2.3: a class token from a table with a null row, a linear projection
of the raw {0,1} bits, a learned mask embedding at masked positions, LLaMA-style blocks with
bidirectional attention, 2-D RoPE and a shared adaLN (one projection of the class embedding,
plus a learned per-layer offset), a final RMSNorm, and a learned position embedding added to
the grid tokens. `features` is the representation path (§5): hidden state after any block, no
mask tokens, no final norm.

Conventions: `codes` (B, L, K) in {0,1}, token n at grid row n // G, column n % G;
`mask` (B, L) bool, True = unknown (replaced by the mask embedding); `condition`: class ids
(B,) int64, or caption embeddings (B, text_dim) for a text model; or (B, J) ids / (B, J,
text_dim) embeddings together with `condition_weights` (B, J) for a weighted mix of their
embeddings (class interpolation). Output `z` is (B, L, D).

The null (unconditional) condition, by name:
- `null_condition(batch, device)` builds B null conditions: the id `config.null_class` for a
  class model, the all-zero vector for a text model.
- `where_null(drop, condition)` replaces the rows where `drop` is true by the null condition
  (label dropout).
- `config.null_class` is the null row's id in the class table (`num_classes`), a property of
  the config.
- `null_text` is the learned (D,) embedding a text model uses for the null condition; the name
  is a state-dict key, so it stays.

Leaves the Bernoulli head and the sampling loop to `diffusion_head.py` and `sampler.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .config import BiGRConfig
from .layers import (
    Attention,
    DropPath,
    FeedForward,
    KeptKV,
    RMSNorm,
    modulate,
    rope_table_2d,
)
from .validation import check_bits


class Block(nn.Module):
    """Pre-norm block; with adaLN the six modulation vectors are the shared projection of the
    class embedding plus this block's own learned offset `ada_gss`."""

    def __init__(self, config: BiGRConfig, drop_path: float) -> None:
        super().__init__()
        d = config.dim
        self.attention_norm = RMSNorm(d, config.norm_eps)
        self.attention = Attention(
            d, config.heads, config.num_kv_heads, config.resid_dropout, config.attn_dropout
        )
        self.ffn_norm = RMSNorm(d, config.norm_eps)
        self.feed_forward = FeedForward(d, config.ffn_hidden, config.ffn_dropout)
        self.drop_path = DropPath(drop_path)
        self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, d) / d**0.5) if config.use_adaln else None

    def forward(self, x: Tensor, rope: Tensor, adaln: Tensor | None) -> Tensor:
        return self._run(x, adaln, lambda h: self.attention(h, rope))

    def forward_kv(
        self, x: Tensor, rope: Tensor, adaln: Tensor | None, kept: KeptKV | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The block's output and its attention's keys and values (`Attention.forward_kv`:
        with `kept`, `x` holds only the rows at `kept.positions`)."""
        fresh = []

        def attend(h: Tensor) -> Tensor:
            out, kv = self.attention.forward_kv(h, rope, kept)
            fresh.append(kv)
            return out

        return self._run(x, adaln, attend), fresh[0]

    def _run(self, x: Tensor, adaln: Tensor | None, attend) -> Tensor:
        """Pre-norm attention (`attend` on the normed input) and feed-forward, each added back
        (gated and modulated by adaLN when the model has it)."""
        if self.ada_gss is None:
            x = x + self.drop_path(attend(self.attention_norm(x)))
            return x + self.drop_path(self.feed_forward(self.ffn_norm(x)))
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = (adaln + self.ada_gss).unbind(2)
        h = modulate(self.attention_norm(x), shift_a, scale_a)
        x = self._residual(x, gate_a, attend(h))
        h = modulate(self.ffn_norm(x), shift_f, scale_f)
        return self._residual(x, gate_f, self.feed_forward(h))

    def _residual(self, x: Tensor, gate: Tensor, branch: Tensor) -> Tensor:
        if self.drop_path.p > 0 and self.training:
            return x + self.drop_path(gate * branch)
        return torch.addcmul(x, gate, branch)


@dataclass
class KeyValueCache:
    """What a full pass leaves for cheaper passes over the same rows (`forward_keep`,
    `forward_reuse`): every block's keys and values (B, Hkv, S, Dh) of the whole sequence, the
    per-token output z (B, L, D), and which tokens were known (B, L) then."""

    keys: list[Tensor]
    values: list[Tensor]
    z: Tensor
    known: Tensor


class BiGRTransformer(nn.Module):
    def __init__(self, config: BiGRConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d = config.dim
        if config.text_dim:
            # Text: caption embeddings projected into the condition slot; the all-zero vector
            # (never a caption: captions are unit vectors) stands for the learned null condition.
            self.class_embed = None
            self.text_proj = nn.Linear(config.text_dim, d)
            self.null_text = nn.Parameter(torch.zeros(d))
        else:
            self.class_embed = nn.Embedding(config.num_classes + int(config.has_null_class), d)
            self.text_proj = self.null_text = None
        self.token_embed = nn.Linear(config.code_bits, d)
        self.mask_token = nn.Parameter(torch.randn(1, d))
        self.token_dropout = nn.Dropout(config.token_dropout)
        self.adaln = nn.Linear(d, 6 * d) if config.use_adaln else None
        rates = [config.drop_path * i / max(config.depth - 1, 1) for i in range(config.depth)]
        self.layers = nn.ModuleList(Block(config, r) for r in rates)
        self.checkpoint_blocks = False  # training's activation checkpointing (not a config)
        self.norm = RMSNorm(d, config.norm_eps)
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_tokens, d))
        self.reset_buffers()
        self.reset_parameters()

    def reset_buffers(self) -> None:
        """(Re)compute the rotary table on the device of the parameters."""
        c = self.config
        rope = rope_table_2d(c.grid_size, c.head_dim, c.rope_base, c.class_tokens)
        self.register_buffer("rope", rope.to(self.mask_token.device), persistent=False)

    def _apply(self, fn, recurse: bool = True):
        # `.to(torch.bfloat16)` would round the rotary table with the weights; keep it float32
        # (as the release's complex table stays), on whatever device the weights went to
        super()._apply(fn, recurse)
        self.reset_buffers()
        return self

    def reset_parameters(self) -> None:
        """The release's initialisation (bigr-spec.md §2.6)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if self.class_embed is not None:
            nn.init.normal_(self.class_embed.weight, std=0.02)
        else:
            nn.init.normal_(self.null_text, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.02)
        if self.adaln is not None:
            nn.init.zeros_(self.adaln.weight)
            nn.init.zeros_(self.adaln.bias)

    # -- conditioning -----------------------------------------------------------------------

    def null_condition(self, batch: int, device: torch.device | str) -> Tensor:
        """`batch` null conditions: (B,) null class ids, or (B, T) zero text vectors."""
        if self.config.text_dim:
            return torch.zeros(batch, self.config.text_dim, device=device)
        return torch.full((batch,), self.config.null_class, dtype=torch.long, device=device)

    def where_null(self, drop: Tensor, condition: Tensor) -> Tensor:
        """`condition` with the rows where `drop` (B,) is true replaced by the null condition."""
        null = self.null_condition(len(condition), condition.device).to(condition.dtype)
        shape = drop.shape + (1,) * (condition.dim() - drop.dim())
        # drop (B,) -> (B,) for class ids, (B, 1) for (B, T) text embeddings
        return torch.where(drop.view(shape), null, condition)

    def drop_labels(self, condition: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Replace each row of `condition` by the null condition with probability
        `class_dropout`."""
        drop = torch.rand(condition.shape[:1], device=condition.device, generator=generator)
        return self.where_null(drop < self.config.class_dropout, condition)

    def embed_classes(self, condition: Tensor, condition_weights: Tensor | None = None) -> Tensor:
        """Conditions -> (B, D). Class models: (B,) ids, or (B, J) ids mixed with (B, J)
        weights. Text models: (B, T) caption embeddings, or (B, J, T) mixed likewise."""
        if self.text_proj is not None:
            table = self.text_proj(condition.to(self.text_proj.weight.dtype))
            is_null = condition.abs().sum(-1, keepdim=True) == 0
            table = torch.where(is_null, self.null_text.to(table.dtype), table)
        else:
            table = self.class_embed(condition)
        if condition_weights is None:
            return table
        return (condition_weights.to(table.dtype).unsqueeze(-1) * table).sum(1)

    def embed_tokens(self, codes: Tensor, mask: Tensor | None) -> Tensor:
        tokens = self.token_embed(codes.to(self.token_embed.weight.dtype))  # (B, L, D)
        if mask is None:
            return tokens
        return torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)

    # -- forward passes ---------------------------------------------------------------------

    def _inputs(
        self, codes: Tensor, class_emb: Tensor, mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """The first block's input [class tokens; tokens] (B, class_tokens + L, D) and the
        adaLN modulations (B, 1, 6, D) (None without adaLN)."""
        check_codes(codes, self.config.num_tokens, self.config.code_bits)
        prefix = class_emb.unsqueeze(1).expand(-1, self.config.class_tokens, -1)
        h = torch.cat([prefix, self.embed_tokens(codes, mask)], dim=1)
        h = self.token_dropout(h)
        adaln = None
        if self.adaln is not None:
            # (B, 6·D) -> (B, 1, 6, D): the six modulations, broadcast over tokens
            adaln = self.adaln(nn.functional.silu(class_emb)).view(-1, 1, 6, self.config.dim)
        return h, adaln

    def hidden_states(
        self, codes: Tensor, class_emb: Tensor, mask: Tensor | None, upto: int | None = None
    ) -> Tensor:
        """Run the blocks on [class tokens; tokens]; stop after block `upto` if given.

        Returns (B, class_tokens + L, D), before the final norm.
        """
        h, adaln = self._inputs(codes, class_emb, mask)
        recompute = self.checkpoint_blocks and torch.is_grad_enabled()
        for i, layer in enumerate(self.layers):
            if recompute:  # keep only the block's input; recompute its inside in backward
                h = checkpoint(layer, h, self.rope, adaln, use_reentrant=False)
            else:
                h = layer(h, self.rope, adaln)
            if upto is not None and i >= upto:
                break
        return h

    def forward(
        self,
        codes: Tensor,
        condition: Tensor,
        mask: Tensor | None = None,
        *,
        condition_weights: Tensor | None = None,
    ) -> Tensor:
        """Per-token condition z (B, L, D) for the Bernoulli head. `condition`: class ids (B,)
        int64, or caption embeddings (B, text_dim) for a text model (mixes: see the module)."""
        class_emb = self.embed_classes(condition, condition_weights)
        h = self.norm(self.hidden_states(codes, class_emb, mask))
        return h[:, self.config.class_tokens :] + self.pos_embed

    def forward_keep(
        self,
        codes: Tensor,
        condition: Tensor,
        mask: Tensor,
        *,
        condition_weights: Tensor | None = None,
    ) -> tuple[Tensor, KeyValueCache]:
        """`forward` (eval only), and the cache its keys and values make for `forward_reuse`."""
        class_emb = self.embed_classes(condition, condition_weights)
        h, adaln = self._inputs(codes, class_emb, mask)
        keys, values = [], []
        for layer in self.layers:
            h, (k, v) = layer.forward_kv(h, self.rope, adaln)
            keys.append(k)
            values.append(v)
        z = self.norm(h)[:, self.config.class_tokens :] + self.pos_embed
        return z, KeyValueCache(keys, values, z, ~mask)

    def forward_reuse(
        self,
        codes: Tensor,
        condition: Tensor,
        mask: Tensor,
        cache: KeyValueCache,
        *,
        condition_weights: Tensor | None = None,
    ) -> Tensor:
        """z (B, L, D) recomputed only for the tokens unknown now or at the cache's pass, whose
        queries attend to their own fresh keys and values and to the kept ones of every other
        position; the other tokens' z is the cache's. Equal to `forward` when nothing changed
        since the cache's pass; an approximation (ReCAP-style) otherwise. One host read."""
        active = mask | ~cache.known  # (B, L)
        most = int(active.sum(1).max())
        tokens = torch.argsort((~active).to(torch.int8), dim=1, stable=True)[:, :most]  # (B, A)
        valid = active.gather(1, tokens)  # (B, A): False on padding rows
        class_emb = self.embed_classes(condition, condition_weights)
        return self.reuse_blocks(
            codes, class_emb, mask, tokens, valid, cache.keys, cache.values, cache.z
        )

    def reuse_blocks(
        self,
        codes: Tensor,
        class_emb: Tensor,
        mask: Tensor,
        tokens: Tensor,
        valid: Tensor,
        keys: list[Tensor],
        values: list[Tensor],
        kept_z: Tensor,
    ) -> Tensor:
        """`forward_reuse` after its host read: the blocks on the chosen `tokens` (B, A) with
        the kept keys and values (no host reads: `compile_backbone` compiles it)."""
        h, adaln = self._inputs(codes, class_emb, mask)
        positions = tokens + self.config.class_tokens  # sequence positions (B, A)
        d = h.shape[-1]
        h = h.gather(1, positions.unsqueeze(-1).expand(-1, -1, d))
        rope = self.rope[positions]  # (B, A, Dh/2, 2)
        for layer, k, v in zip(self.layers, keys, values, strict=True):
            h, _ = layer.forward_kv(h, rope, adaln, KeptKV(k, v, positions, valid))
        z = self.norm(h) + self.pos_embed[0][tokens]
        index = tokens.unsqueeze(-1).expand(-1, -1, d)
        z = torch.where(valid.unsqueeze(-1), z, kept_z.gather(1, index))
        return kept_z.scatter(1, index, z)

    def features(self, codes: Tensor, layer: int, condition: Tensor | None = None) -> Tensor:
        """Representation: hidden state (B, L, D) after block `layer` (0-based; negative counts
        from the end as in Python: -1 is the last block), nothing masked, no final norm.
        `condition`: class ids (B,) int64, or caption embeddings (B, text_dim) for a text
        model; default: the null one. A layer outside the model raises IndexError."""
        layer = block_index(layer, self.config.depth)
        check_codes(codes, self.config.num_tokens, self.config.code_bits)
        check_bits(codes)
        codes = codes.to(self.mask_token.dtype)  # bits given as integers or booleans
        if condition is None:
            condition = self.null_condition(codes.shape[0], codes.device)
        h = self.hidden_states(codes, self.embed_classes(condition), None, upto=layer)
        return h[:, self.config.class_tokens :]


def block_index(layer: int, depth: int) -> int:
    """`layer` as a block index in [0, depth): Python's negative indexing, and an IndexError
    naming the valid range for anything else (never silently another block)."""
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise TypeError(f"layer must be an int, got {type(layer).__name__}")
    if not -depth <= layer < depth:
        raise IndexError(
            f"layer {layer} is out of range: this model has blocks 0..{depth - 1} "
            f"(or -{depth}..-1 counting from the last)"
        )
    return layer % depth


def check_codes(codes: Tensor, tokens: int, bits: int, what: str = "codes") -> None:
    """A ValueError naming the expected shape unless `codes` is (B, tokens, bits)."""
    if not isinstance(codes, Tensor):
        raise TypeError(f"{what} must be a tensor, got {type(codes).__name__}")
    if codes.ndim != 3 or tuple(codes.shape[1:]) != (tokens, bits):
        raise ValueError(
            f"{what} must be (B, {tokens} tokens, {bits} bits) for this model, got "
            f"{tuple(codes.shape)} (codes of another tokenizer or grid?)"
        )
