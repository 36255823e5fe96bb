"""Small stand-ins shared by the evaluation tests."""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from bigr.evaluation.inception import InceptionOutput


class PixelFeatures(nn.Module):
    """A stand-in for the FID Inception: coarse pixel statistics (no weights needed)."""

    def forward(self, images):
        pooled = nn.functional.adaptive_avg_pool2d(images.float(), 2).flatten(1)  # (B, 12)
        return InceptionOutput(pooled, pooled[:, :6])


def class_image_folder(root, per_class=8, classes=3, size=16):
    """A folder of class sub-folders of random PNGs, each class a brighter band."""
    g = torch.Generator().manual_seed(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            arr = (torch.rand(size, size, 3, generator=g) * 80 + 60 * c).byte().numpy()
            Image.fromarray(arr).save(root / f"class{c}" / f"{i}.png")
    return str(root)
