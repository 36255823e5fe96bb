"""The FID Inception v3 trunk (TF graph 2015-12-05) as plain conv/batchnorm/pool layers.

Owns: `FIDInceptionV3`, its blocks and `InceptionOutput` (the 2048-d `pool_3` features and the
first 7 channels of `mixed_6/conv` that sFID uses). Layer names follow the TF graph and the
TorchScript build, so that build's state_dict loads as is.

Leaves to others: finding, converting and caching the weights, preprocessing and the feature
extractor (`inception.py`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SPATIAL_CHANNELS = 7  # ADM keeps the first 7 channels of `mixed_6/conv` (17 x 17) for sFID


class ConvBN(nn.Module):
    """Conv (no bias) → batchnorm without scale (TF `BatchNormWithGlobalNormalization`) → ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride, self.padding = stride, padding
        self.register_buffer("weight", torch.zeros(cout, cin, kh, kw))
        self.register_buffer("beta", torch.zeros(cout))
        self.register_buffer("mean", torch.zeros(cout))
        self.register_buffer("var", torch.ones(cout))
        # conv and batchnorm folded into one conv with bias (`fold_batchnorm`); not saved
        self.register_buffer("folded_weight", None, persistent=False)
        self.register_buffer("folded_bias", None, persistent=False)

    def fold_batchnorm(self) -> None:
        """Fold the (frozen) batchnorm into the convolution: about twice as fast on a CPU, and
        equal to the unfolded layers to float rounding (checked against TorchScript in tests)."""
        scale = torch.rsqrt(self.var + 1e-3)
        self.folded_weight = self.weight * scale[:, None, None, None]
        self.folded_bias = self.beta - self.mean * scale

    def forward(self, x: Tensor) -> Tensor:
        if self.folded_weight is not None:
            w, b = self.folded_weight.to(x.dtype), self.folded_bias.to(x.dtype)
            return F.relu(F.conv2d(x, w, b, self.stride, self.padding))
        x = F.conv2d(x, self.weight.to(x.dtype), None, self.stride, self.padding)
        x = F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, 1e-3)
        return F.relu(x)


def _avg_pool() -> nn.Module:
    # TF SAME average pooling divides by the number of real (unpadded) pixels.
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def _chain(**layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))


class BlockA(nn.Module):
    """35 x 35 block (`mixed`, `mixed_1`, `mixed_2`)."""

    def __init__(self, cin: int, pool_out: int) -> None:
        super().__init__()
        self.conv = ConvBN(cin, 64, 1)
        self.tower = _chain(conv=ConvBN(cin, 48, 1), conv_1=ConvBN(48, 64, 5, padding=2))
        self.tower_1 = _chain(
            conv=ConvBN(cin, 64, 1),
            conv_1=ConvBN(64, 96, 3, padding=1),
            conv_2=ConvBN(96, 96, 3, padding=1),
        )
        self.tower_2 = _chain(pool=_avg_pool(), conv=ConvBN(cin, pool_out, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class BlockB(nn.Module):
    """35 → 17 reduction (`mixed_3`)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = ConvBN(288, 384, 3, stride=2)
        self.tower = _chain(
            conv=ConvBN(288, 64, 1),
            conv_1=ConvBN(64, 96, 3, padding=1),
            conv_2=ConvBN(96, 96, 3, stride=2),
        )
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class BlockC(nn.Module):
    """17 x 17 block with factorised 7 x 7 convolutions (`mixed_4` … `mixed_7`)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.conv = ConvBN(768, 192, 1)
        self.tower = _chain(
            conv=ConvBN(768, w, 1),
            conv_1=ConvBN(w, w, (1, 7), padding=(0, 3)),
            conv_2=ConvBN(w, 192, (7, 1), padding=(3, 0)),
        )
        self.tower_1 = _chain(
            conv=ConvBN(768, w, 1),
            conv_1=ConvBN(w, w, (7, 1), padding=(3, 0)),
            conv_2=ConvBN(w, w, (1, 7), padding=(0, 3)),
            conv_3=ConvBN(w, w, (7, 1), padding=(3, 0)),
            conv_4=ConvBN(w, 192, (1, 7), padding=(0, 3)),
        )
        self.tower_2 = _chain(pool=_avg_pool(), conv=ConvBN(768, 192, 1))

    def branches(self, x: Tensor) -> list[Tensor]:
        """The four branch outputs; the first is TF's `mixed_N/conv`."""
        return [self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)]

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(self.branches(x), 1)


class BlockD(nn.Module):
    """17 → 8 reduction (`mixed_8`)."""

    def __init__(self) -> None:
        super().__init__()
        self.tower = _chain(conv=ConvBN(768, 192, 1), conv_1=ConvBN(192, 320, 3, stride=2))
        self.tower_1 = _chain(
            conv=ConvBN(768, 192, 1),
            conv_1=ConvBN(192, 192, (1, 7), padding=(0, 3)),
            conv_2=ConvBN(192, 192, (7, 1), padding=(3, 0)),
            conv_3=ConvBN(192, 192, 3, stride=2),
        )
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class BlockE(nn.Module):
    """8 x 8 block (`mixed_9`, `mixed_10`); the 2015 graph max-pools in `mixed_10`'s pool branch."""

    def __init__(self, cin: int, use_max_pool: bool) -> None:
        super().__init__()
        self.conv = ConvBN(cin, 320, 1)
        self.tower_conv = ConvBN(cin, 384, 1)
        self.tower_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = ConvBN(cin, 448, 1)
        self.tower_1_conv_1 = ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_pool = nn.MaxPool2d(3, stride=1, padding=1) if use_max_pool else _avg_pool()
        self.tower_2_conv = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        parts = [
            self.conv(x),
            self.tower_mixed_conv(a),
            self.tower_mixed_conv_1(a),
            self.tower_1_mixed_conv(b),
            self.tower_1_mixed_conv_1(b),
            self.tower_2_conv(self.tower_2_pool(x)),
        ]
        return torch.cat(parts, 1)


class InceptionOutput(NamedTuple):
    pool: Tensor  # (B, 2048) `pool_3`
    spatial: Tensor  # (B, 2023) first 7 channels of `mixed_6/conv`, flattened as (H, W, C)


class FIDInceptionV3(nn.Module):
    """The 2015-12-05 Inception trunk; input (B, 3, 299, 299) already mapped to (p - 128) / 128.

    Layer names follow the TF graph (and the TorchScript build), so its state_dict loads as is.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = ConvBN(3, 32, 3, stride=2)
        self.conv_1 = ConvBN(32, 32, 3)
        self.conv_2 = ConvBN(32, 64, 3, padding=1)
        self.pool0 = nn.MaxPool2d(3, stride=2)
        self.conv_3 = ConvBN(64, 80, 1)
        self.conv_4 = ConvBN(80, 192, 3)
        self.pool1 = nn.MaxPool2d(3, stride=2)
        self.mixed = BlockA(192, 32)
        self.mixed_1 = BlockA(256, 64)
        self.mixed_2 = BlockA(288, 64)
        self.mixed_3 = BlockB()
        self.mixed_4 = BlockC(128)
        self.mixed_5 = BlockC(160)
        self.mixed_6 = BlockC(160)
        self.mixed_7 = BlockC(192)
        self.mixed_8 = BlockD()
        self.mixed_9 = BlockE(1280, use_max_pool=False)
        self.mixed_10 = BlockE(2048, use_max_pool=True)

    def forward(self, x: Tensor) -> InceptionOutput:
        x = self.pool0(self.conv_2(self.conv_1(self.conv(x))))
        x = self.pool1(self.conv_4(self.conv_3(x)))  # (B, 192, 35, 35)
        x = self.mixed_3(self.mixed_2(self.mixed_1(self.mixed(x))))  # (B, 768, 17, 17)
        x = self.mixed_5(self.mixed_4(x))
        parts = self.mixed_6.branches(x)
        # ADM flattens TF's NHWC tensor, so the (H, W, C) order matters for stored mu_s/sigma_s.
        spatial = parts[0][:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1)  # (B, 2023)
        x = self.mixed_7(torch.cat(parts, 1))
        x = self.mixed_10(self.mixed_9(self.mixed_8(x)))  # (B, 2048, 8, 8)
        pool = F.avg_pool2d(x, 8).flatten(1)  # (B, 2048)
        return InceptionOutput(pool, spatial)
