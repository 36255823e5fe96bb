"""BiGR = bidirectional transformer backbone + Bernoulli head, and model loading.

Owns the masked-modelling training loss (bigr-spec.md §3.1, §3.3), with the head run only on
the masked tokens (the release computes it on all tokens and discards the rest: the same
gradient for more work), the pooled representation (§5), and `from_pretrained` /
`save_pretrained` for BiGR and the tokenizer. Optimisers and data live elsewhere.

Conventions: `codes` (B, L, K) in {0,1}; `mask` (B, L) bool, True = masked (to predict);
`condition`: class ids (B,) int64 with `config.null_class` the unconditional class, or caption
embeddings (B, text_dim) for a text model (the all-zero vector the unconditional one).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from . import schedules
from .checkpoint import CheckpointError, load_directory, save_directory
from .config import BiGRConfig, Config, TokenizerConfig
from .diffusion_head import BernoulliHead
from .tokenizer import BinaryAutoencoder
from .transformer import BiGRTransformer


def sample_training_mask(
    batch: int,
    num_tokens: int,
    *,
    per_sample: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The release's mask draw: a step s ~ U{0..L-1}, mask max(1, floor(L cos(pi/2 s/L))) tokens
    at the positions of smallest uniform noise. The release draws one s per batch;
    `per_sample` draws one per sample (lower gradient variance, same marginal)."""
    draws = batch if per_sample else 1
    steps = torch.randint(0, num_tokens, (draws,), generator=generator).tolist()
    counts = torch.tensor(
        [schedules.training_mask_count(s, num_tokens) for s in steps], device=device
    )
    noise = torch.rand(batch, num_tokens, generator=generator).to(device)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    # counts (B,) -> (B, 1), against ranks (B, L)
    return ranks < counts.view(-1, 1)


class BiGR(nn.Module):
    """The BiGR generator: the transformer over binary codes and its binary transcoder.

    >>> from bigr import BiGR, PRESETS
    >>> model = BiGR(PRESETS["bigr-tiny"])  # random weights; or BiGR.from_pretrained(...)
    >>> model.config.code_bits, model.config.num_tokens
    (16, 16)
    """

    def __init__(self, config: BiGRConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = BiGRTransformer(config)
        self.head = BernoulliHead(config.head, config.code_bits, config.dim)

    def training_loss(
        self,
        codes: Tensor,
        condition: Tensor,
        *,
        mask: Tensor | None = None,
        t: Tensor | None = None,
        x_t: Tensor | None = None,
        noise: Tensor | None = None,
        drop_labels: bool | None = None,
        normalizer: float | None = None,
        head_tokens: str = "unknown",
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Masked-modelling loss: mean over masked tokens and all their bits.

        `mask` defaults to the release's draw. Conditions are dropped to the null one with
        probability `class_dropout` when `drop_labels` (default: in train mode); a trainer that
        drops them itself passes False. `t` (B, L), and `x_t` (B, L, K) or uniforms `noise`
        (B, L, K), fix the diffusion noise; only their masked entries are used. `normalizer`:
        see `BernoulliHead.loss` (the global count of masked bits for a split batch).
        `head_tokens` is the sampler's switch: 'unknown' runs the head on the masked (unknown)
        tokens only; 'all' runs it on every token and zeroes the others' loss, as the release
        does: the same loss and gradient for more work (kept for benchmarks).
        """
        b, l, _ = codes.shape
        if mask is None:
            mask = sample_training_mask(b, l, generator=generator, device=codes.device)
        if drop_labels is None:
            drop_labels = self.training
        if drop_labels and self.config.class_dropout > 0:
            condition = self.transformer.drop_labels(condition, generator)
        z = self.transformer(codes, condition, mask)
        if head_tokens == "all":
            # every token a head row: (B, L) -> (B·L,), (B, L, ·) -> (B·L, ·)
            flat = mask.reshape(-1)
            return self.head.loss(
                z.reshape(b * l, -1),
                codes.reshape(b * l, -1).float(),
                t=None if t is None else t.reshape(-1),
                x_t=None if x_t is None else x_t.reshape(b * l, -1),
                noise=None if noise is None else noise.reshape(b * l, -1),
                normalizer=normalizer,
                weight=flat,
                generator=generator,
            )
        if head_tokens != "unknown":
            raise ValueError(f"head_tokens must be 'unknown' or 'all', not {head_tokens!r}")
        return self.head.loss(
            z[mask],
            codes[mask].float(),
            t=None if t is None else t[mask],
            x_t=None if x_t is None else x_t[mask],
            noise=None if noise is None else noise[mask],
            normalizer=normalizer,
            generator=generator,
        )

    def forward(self, codes: Tensor, condition: Tensor, **kwargs) -> dict[str, Tensor]:
        """The training loss (so that DDP/FSDP wrappers see a forward call)."""
        return self.training_loss(codes, condition, **kwargs)

    @torch.no_grad()
    def pooled_features(self, codes: Tensor, layer: int, condition: Tensor | None = None) -> Tensor:
        """(B, D) average over tokens of the hidden state after block `layer`, under `condition`
        (default: the null one)."""
        return self.transformer.features(codes, layer, condition).float().mean(1)

    # -- persistence ----------------------------------------------------------------------------

    def save_pretrained(
        self, path: str | Path, extra: dict | None = None, *, force: bool = False
    ) -> Path:
        """Write a model folder; a folder holding other files is refused unless `force`."""
        return save_directory(path, self.config, self.state_dict(), extra, force=force)

    @classmethod
    def from_pretrained(cls, path_or_name: str | Path, device: str | torch.device = "cpu") -> BiGR:
        """A generator from a bigr model folder, an embedded model (`bigr:fashion`) or a hub
        name (`hf://OWNER/REPO[/FILE]`; a release `.pt` is converted once and cached). Weights
        stored in half precision compute in float32; nothing pickled is ever executed.

        >>> BiGR.from_pretrained("bigr:fashion").config.num_classes
        10
        """
        return _load(path_or_name, BiGRConfig, device)


def compile_backbone(model: BiGR, backend: str = "inductor", mode: str | None = None) -> BiGR:
    """`torch.compile` the transformer's passes in place (dynamic shapes): sampling spends its
    backbone time in compiled code (~1.3x faster sampling of the embedded model on a 2-core
    CPU; the first batch compiles for about a minute). The module tree, the weights and
    `state_dict()` are unchanged; outputs match eager to float rounding, not bit for bit.
    `mode` is torch.compile's (e.g. "reduce-overhead": CUDA graphs, one per shape)."""
    transformer = model.transformer
    # the kept-keys passes too (`kv_refresh`); `forward_reuse`'s one host read stays outside
    for name in ("forward", "forward_keep", "reuse_blocks"):
        method = getattr(transformer, name)
        setattr(transformer, name, torch.compile(method, dynamic=True, backend=backend, mode=mode))
    return model


def save_tokenizer(
    model: BinaryAutoencoder, path: str | Path, extra: dict | None = None, *, force: bool = False
) -> Path:
    """Write a tokenizer folder (config.json + model.safetensors) that `load_tokenizer` reads.

    >>> import tempfile
    >>> from bigr import BinaryAutoencoder, PRESETS, load_tokenizer
    >>> folder = save_tokenizer(BinaryAutoencoder(PRESETS["bae-tiny"]), tempfile.mkdtemp())
    >>> load_tokenizer(folder).config.code_bits
    16
    """
    return save_directory(path, model.config, model.state_dict(), extra, force=force)


def load_tokenizer(
    path_or_name: str | Path, device: str | torch.device = "cpu"
) -> BinaryAutoencoder:
    """A binary autoencoder (B-AE) from a folder, an embedded name or a hub name (a release
    `.th` is converted once and cached), as `BiGR.from_pretrained` loads generators.

    >>> tokenizer = load_tokenizer("bigr:fashion-tokenizer")
    >>> tokenizer.config.code_bits, tokenizer.config.image_size
    (32, 32)
    """
    return _load(path_or_name, TokenizerConfig, device)


def build_model(config: Config) -> BiGR | BinaryAutoencoder:
    return BiGR(config) if isinstance(config, BiGRConfig) else BinaryAutoencoder(config)


def _load(path_or_name: str | Path, expected: type, device: str | torch.device):
    config, state = load_directory(path_or_name, device)
    # Weights may be stored in half precision (the embedded demo models are); compute in fp32.
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    if not isinstance(config, expected):
        wanted = "a BiGR generator" if expected is BiGRConfig else "a tokenizer"
        raise CheckpointError(f"{path_or_name} holds a {type(config).__name__}, not {wanted}")
    with torch.device("meta"):
        model = build_model(config)
    model.to_empty(device=device)
    expected_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, tensor in state.items():
        if name in expected_shapes and tuple(tensor.shape) != expected_shapes[name]:
            raise CheckpointError(
                f"{path_or_name}: tensor {name} has shape {tuple(tensor.shape)}, the config "
                f"needs {expected_shapes[name]}"
            )
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        raise CheckpointError(
            f"{path_or_name}: weights do not match the config "
            f"(missing: {_names(missing)}; unexpected: {_names(unexpected)})"
        )
    _restore_buffers(model)
    return model.eval()


def _restore_buffers(model: nn.Module) -> None:
    """Non-persistent buffers (rotary table, noise tables) are recomputed, never stored."""
    for module in model.modules():
        reset = getattr(module, "reset_buffers", None)
        if reset is not None:
            reset()


def _names(keys: list[str], limit: int = 8) -> str:
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
