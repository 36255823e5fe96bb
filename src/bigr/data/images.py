"""Image files and tensors, with Pillow and plain torch only (no torchvision).

Owns: reading images and masks as the release prepares them (ADM `center_crop_arr`: box-halve
while the short side is at least twice the target, bicubic-resize the short side to the
target, centre-crop), converting to and from tensors in [0, 1], writing PNGs and grids.
Errors a user can cause (missing file, unreadable image) raise `ImageError` with one line.

Conventions: images are float tensors (3, H, W) or (B, 3, H, W) in [0, 1]; masks are bool
(H, W), True = the pixel is to be regenerated.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..outputs import atomic_write, check_parents


class ImageError(ValueError):
    """A file that cannot be used as an image (missing, unreadable, wrong size)."""


MAX_PIXELS = 64_000_000  # 8000 x 8000: far above any use here, far below a decompression bomb
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white


def open_image(path: str | Path) -> Image.Image:
    """The image at `path`, loaded; refuses files over `MAX_PIXELS` before decoding them."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageError(
                    f"{path}: {width}x{height} pixels is over the limit of {MAX_PIXELS:,}"
                )
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageError(f"{path}: cannot read as an image ({err})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit and float grey scaled to 0..255 (not clipped), alpha composited on
    `BACKGROUND`, palettes expanded."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if image.mode == "F":
            top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(arr, mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, BACKGROUND)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The release's centre crop to size x size (ADM `center_crop_arr`)."""
    while min(image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = size / min(image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=Image.BICUBIC)
    arr = np.asarray(image)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return Image.fromarray(arr[top : top + size, left : left + size])


def to_tensor(image: Image.Image) -> Tensor:
    """PIL image -> (3, H, W) float in [0, 1] (RGB; see `to_rgb` for other modes)."""
    arr = np.asarray(to_rgb(image), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255)


def to_uint8(images: Tensor) -> Tensor:
    """[0, 1] floats -> uint8 with rounding, clamped (what the release's PNG writer does)."""
    return images.detach().float().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


def to_pil(image: Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] -> PIL RGB image."""
    return Image.fromarray(to_uint8(image).permute(1, 2, 0).cpu().numpy())


def load_image(path: str | Path, size: int) -> Tensor:
    """(3, size, size) in [0, 1], centre-cropped as the release does."""
    return to_tensor(center_crop(to_rgb(open_image(path)), size))


def mask_luminance(image: Image.Image) -> Image.Image:
    """A mask file as 8-bit grey, bright = regenerate. The rule for every mode:

    - without alpha (L, RGB, palette, 16-bit and float grey): the luminance;
    - with alpha (RGBA, LA, PA, a palette with a transparent entry): the luminance times the
      alpha, so transparent pixels are kept whatever their hidden colour; except when every
      visible pixel has the same colour (a brush drawn in one colour on a transparent sheet,
      black included), where the alpha alone is the mask.
    """
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode not in ("RGBA", "LA", "PA"):
        return to_rgb(image).convert("L")
    rgba = np.asarray(image.convert("RGBA"))
    colour, alpha = rgba[..., :3], rgba[..., 3]
    visible = colour[alpha > 0]
    if len(visible) == 0 or (visible == visible[0]).all():
        return Image.fromarray(alpha.copy(), mode="L")
    luminance = np.asarray(Image.fromarray(colour.copy(), mode="RGB").convert("L"), np.float64)
    values = np.floor(luminance * alpha / 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(values, mode="L")


def load_mask(path: str | Path, size: int) -> Tensor:
    """(size, size) bool, True where the mask is bright (> 127): the region to regenerate
    (`mask_luminance` gives the rule for masks with an alpha channel).

    The mask goes through the same centre crop as the image, so a mask drawn on the original
    photo lines up with the cropped image.
    """
    mask = mask_luminance(open_image(path))
    if min(mask.size) < size:
        raise ImageError(f"{path}: mask is {mask.size[0]}x{mask.size[1]}, smaller than {size}")
    cropped = np.asarray(center_crop(mask, size))
    return torch.from_numpy(cropped > 127)


def check_output(path: str | Path) -> None:
    """Refuse an output path that cannot become an image file, before any work is done: a
    folder, a path under a file, or an extension Pillow cannot write."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder; give a file name such as {path / 'out.png'}")
    check_parents(path)
    _writer_format(path)


def _writer_format(path: Path) -> str:
    """The Pillow format that writes `path`'s extension (one Pillow can only read is refused)."""
    suffix = path.suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(
            f"{path}: cannot write images with extension {suffix or '(none)'!r}; use .png"
        )
    return fmt


def save_image(image: Tensor, path: str | Path) -> Path:
    """Write (3, H, W) in [0, 1] in the format of `path`'s extension (values outside [0, 1]
    are clamped)."""
    path = Path(path)
    check_output(path)
    # written beside the target and renamed, so a failed write never destroys an earlier file
    picture, fmt = to_pil(image), _writer_format(path)
    return atomic_write(path, lambda f: picture.save(f, format=fmt))


def make_grid(
    images: Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0
) -> Tensor:
    """(B, 3, H, W) -> (3, H', W') grid with `nrow` images per row."""
    b, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    grid = torch.full(
        (c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value
    )
    for i in range(b):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i].detach().cpu().float()
    return grid


def save_grid(images: Tensor, path: str | Path, nrow: int | None = None) -> Path:
    return save_image(make_grid(images.clamp(0, 1), nrow=nrow), path)
