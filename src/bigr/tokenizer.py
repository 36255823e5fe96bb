"""The binary autoencoder (B-AE): image -> grid of K-bit codes -> image.

Implements bigr-spec.md §1 for any channel multipliers, residual-block count, attention
resolutions, bit count and image size: a taming-style convolutional encoder, a binarizer
(sigmoid probabilities; Bernoulli draw from an explicit generator or a 0.5 threshold; a
straight-through gradient) and a decoder with no output activation. Encoder and decoder are flat
`blocks` lists indexed exactly as in the released checkpoints, so every block's activation can
be compared with the reference. Residual blocks allocate their 1x1 skip conv only when the width
changes (the release allocates one everywhere; those dead weights are dropped on import).

Conventions: images (B, 3, H, W) RGB in [0, 1]; decoder output is not clamped. Codes are
(B, L, K) in {0,1} with token n at grid row n // G, column n % G (L = G²); `codes_to_grid` and
`grid_to_codes` convert from and to the (B, K, G, G) layout of the release.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import TokenizerConfig
from .draws import Draws, TorchDraws
from .validation import check_bits, check_images, check_tensor


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1 = group_norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = group_norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_out = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (x if self.conv_out is None else self.conv_out(x))


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1 convolutions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(b, c, h * w).transpose(1, 2)  # (B, HW, C)
        k = self.k(y).reshape(b, c, h * w)  # (B, C, HW)
        v = self.v(y).reshape(b, c, h * w)  # (B, C, HW)
        attn = torch.softmax(torch.bmm(q, k) * c**-0.5, dim=2)  # (B, HW queries, HW keys)
        # (B, C, HW keys) x (B, HW keys, HW queries) -> (B, C, HW) -> (B, C, H, W)
        out = torch.bmm(v, attn.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # zero-pad right and bottom


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level_blocks(cin: int, cout: int, count: int, attention: bool) -> tuple[list[nn.Module], int]:
    blocks: list[nn.Module] = []
    for _ in range(count):
        blocks.append(ResBlock(cin, cout))
        cin = cout
        if attention:
            blocks.append(AttnBlock(cin))
    return blocks, cin


def _middle(channels: int) -> list[nn.Module]:
    return [ResBlock(channels, channels), AttnBlock(channels), ResBlock(channels, channels)]


class Encoder(nn.Module):
    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        nf, mults = config.base_channels, config.channel_mult
        blocks: list[nn.Module] = [nn.Conv2d(config.in_channels, nf, 3, padding=1)]
        channels, resolution = nf, config.image_size
        for level, mult in enumerate(mults):
            attention = resolution in config.attn_resolutions
            level_blocks, channels = _level_blocks(
                channels, nf * mult, config.res_blocks, attention
            )
            blocks += level_blocks
            if level != len(mults) - 1:
                blocks.append(Downsample(channels))
                resolution //= 2
        blocks += _middle(channels)
        # No activation between the last norm and conv: the release has none.
        blocks += [group_norm(channels), nn.Conv2d(channels, config.latent_channels, 3, padding=1)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class Decoder(nn.Module):
    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        nf, mults = config.base_channels, config.channel_mult
        channels = nf * mults[-1]
        resolution = config.grid_size
        blocks: list[nn.Module] = [group_norm(config.latent_channels)] if config.norm_first else []
        blocks.append(nn.Conv2d(config.latent_channels, channels, 3, padding=1))
        blocks += _middle(channels)
        for level in reversed(range(len(mults))):
            attention = resolution in config.attn_resolutions
            level_blocks, channels = _level_blocks(
                channels, nf * mults[level], config.num_decoder_res_blocks, attention
            )
            blocks += level_blocks
            if level != 0:
                blocks.append(Upsample(channels))
                resolution *= 2
        blocks += [group_norm(channels), nn.Conv2d(channels, config.in_channels, 3, padding=1)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class Binarizer(nn.Module):
    """Probabilities sigmoid(conv1x1(h)); bits by Bernoulli draw or threshold; bits embedded by
    a bias-free linear map (the rows of `embed.weight`) for the decoder."""

    def __init__(self, latent_channels: int, code_bits: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(latent_channels, code_bits, 1)
        self.embed = nn.Embedding(code_bits, latent_channels)

    def probs(self, h: Tensor) -> Tensor:
        return torch.sigmoid(self.proj(h))  # (B, K, G, G)

    def embed_bits(self, bits: Tensor) -> Tensor:
        """(B, K, G, G) bits -> (B, C, G, G) decoder input."""
        return torch.einsum("bkhw,kc->bchw", bits.to(self.embed.weight.dtype), self.embed.weight)


@dataclass
class Encoded:
    codes: Tensor  # (B, L, K) in {0,1}; carries a straight-through gradient to `probs`
    probs: Tensor  # (B, L, K) P(bit = 1)


def grid_to_codes(grid: Tensor) -> Tensor:
    """(B, K, G, G) -> (B, G·G, K) in raster order."""
    b, k = grid.shape[:2]
    # (B, K, G, G) -> (B, K, G·G) -> (B, G·G, K)
    return grid.reshape(b, k, -1).transpose(1, 2)


def codes_to_grid(codes: Tensor, grid_size: int | None = None) -> Tensor:
    """(B, L, K) -> (B, K, G, G)."""
    b, l, k = codes.shape
    g = grid_size or round(l**0.5)
    if g * g != l:
        raise ValueError(f"{l} tokens do not form a {g}x{g} grid")
    # (B, L, K) -> (B, K, L) -> (B, K, G, G)
    return codes.transpose(1, 2).reshape(b, k, g, g)


class BinaryAutoencoder(nn.Module):
    """The B-AE tokenizer: images to K-bit codes on a grid (sigmoid, then Bernoulli draws or
    a threshold) and codes back to images.

    >>> import torch
    >>> from bigr import BinaryAutoencoder, PRESETS
    >>> tokenizer = BinaryAutoencoder(PRESETS["bae-tiny"]).eval()
    >>> codes = tokenizer.encode(torch.rand(2, 3, 16, 16), stochastic=False).codes
    >>> tuple(codes.shape), tuple(tokenizer.decode(codes).shape)
    ((2, 16, 16), (2, 3, 16, 16))
    """

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = Encoder(config)
        self.binarizer = Binarizer(config.latent_channels, config.code_bits)
        self.decoder = Decoder(config)

    def encode(
        self,
        images: Tensor,
        *,
        stochastic: bool = True,
        generator: torch.Generator | None = None,
        draws: Draws | None = None,
    ) -> Encoded:
        """Images (B, 3, H, W) in [0, 1] -> codes and probabilities (B, L, K).

        `stochastic` draws each bit from Bernoulli(p), as the release feeds BiGR; otherwise
        bits are p > 0.5. The returned codes equal the bits in value and pass gradients
        straight through to the probabilities.
        """
        self._check_images(images)
        if not self.training:  # a caller's images; training data is checked where it is read
            check_images(images)
        probs = self.binarizer.probs(self.encoder(images))
        if stochastic:
            bits = (draws or TorchDraws(generator)).bernoulli(probs.detach())
        else:
            bits = (probs.detach() > 0.5).to(probs.dtype)
        codes = bits + (probs - probs.detach())  # exactly the bits in value; gradient to probs
        return Encoded(codes=grid_to_codes(codes), probs=grid_to_codes(probs))

    def decode(self, codes: Tensor) -> Tensor:
        """Codes (B, L, K) -> images (B, 3, H, W), unclamped; computed in float32 even inside
        an autocast region (reduced precision is for the generator)."""
        check_tensor(codes, "codes")
        if codes.shape[-1] != self.config.code_bits:
            raise ValueError(
                f"this tokenizer decodes {self.config.code_bits}-bit codes, got {codes.shape[-1]}"
            )
        if not codes.requires_grad:  # straight-through training codes are bits up to rounding
            check_bits(codes)
        grid = codes_to_grid(codes.float(), self.config.grid_size)
        with torch.autocast(grid.device.type, enabled=False):  # pixels always in float32
            return self.decoder(self.binarizer.embed_bits(grid))

    def forward(
        self,
        images: Tensor,
        generator: torch.Generator | None = None,
        *,
        stochastic: bool = True,
    ) -> tuple[Tensor, Encoded]:
        """Training pass: reconstruction from the codes (Bernoulli draws unless `stochastic` is
        False: then p > 0.5), with the straight-through path."""
        encoded = self.encode(images, stochastic=stochastic, generator=generator)
        return self.decode(encoded.codes), encoded

    def encoder_side(self) -> list[nn.Parameter]:
        """The parameters that decide an image's codes: the encoder and the code projection."""
        return [*self.encoder.parameters(), *self.binarizer.proj.parameters()]

    def _check_images(self, images: Tensor) -> None:
        size = self.config.image_size
        if images.dim() != 4 or images.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected images (B, {self.config.in_channels}, H, W), got {tuple(images.shape)}"
            )
        if images.shape[-2:] != (size, size):
            raise ValueError(
                f"this tokenizer takes {size}x{size} images, got {tuple(images.shape[-2:])}"
            )
