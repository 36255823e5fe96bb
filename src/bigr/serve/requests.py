"""What `bigr serve` reads from the page and the images it sends back.

Owns: the limits on uploads, the validation of uploaded images (decoded, by byte size and by
dimensions), the brush mask (a PNG at any resolution; a model pixel is marked when any painted
display pixel covers it), the JSON fields of a job request (sampler options, whole numbers in
a range, text) and the PNG data URLs of results. Every refusal is a `RequestError`, answered
with HTTP 400 and its message.

Leaves to others: the routes (`app.py`) and the jobs that use these inputs (`jobs.py`).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import re

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..data.images import center_crop, to_pil, to_rgb, to_tensor
from ..sampler import SamplerConfig

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_SIDE = 4096
MAX_PIXELS = 16 * 1024 * 1024  # 4096 x 4096
MAX_JSON_BYTES = 2 * MAX_UPLOAD_BYTES + 64 * 1024  # a job: a few fields and the mask's data URL
MAX_JSON_DEPTH = 4  # the body, its sampler object; nothing the page sends is deeper
ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "GIF"}
OPERATIONS = ("sample", "inpaint", "outpaint", "edit", "interpolate", "enrich")
MAX_IMAGES = 16


class RequestError(ValueError):
    """Bad input from the page: answered with HTTP 400 and the message."""


def data_url(image: torch.Tensor) -> str:
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def mask_url(mask: torch.Tensor) -> str:
    buffer = io.BytesIO()
    Image.fromarray(mask.numpy().astype(np.uint8) * 255).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def read_upload(data: bytes) -> Image.Image:
    """Decode an uploaded file, refusing anything that is not a reasonable image."""
    if not data:
        raise RequestError("the upload is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise RequestError(f"the file is {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES}")
    try:
        image = Image.open(io.BytesIO(data))
        image.verify()  # structural check; reopen afterwards to read pixels
        image = Image.open(io.BytesIO(data))
        if image.format not in ALLOWED_FORMATS:
            raise RequestError(f"{image.format} images are not accepted; use PNG, JPEG or WebP")
        w, h = image.size  # from the header: checked before any pixel is decoded
        if max(w, h) > MAX_SIDE or w * h > MAX_PIXELS:
            raise RequestError(
                f"the image is {w}x{h}; the largest side allowed is {MAX_SIDE} and the most "
                f"pixels {MAX_PIXELS:,}"
            )
        image.load()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as error:
        if isinstance(error, RequestError):
            raise
        raise RequestError(f"not a readable image ({error.__class__.__name__})") from None
    return to_rgb(image)


def shrink_for(image: Image.Image, size: int) -> Image.Image:
    """The image after the box-halvings the release's centre crop to `size` would apply first:
    what an upload is kept as. Cropping it to `size` or smaller gives exactly what cropping the
    original would, at a fraction of the memory."""
    while min(image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    return image


def prepare(image: Image.Image, size: int) -> torch.Tensor:
    """The release's centre crop to the model's size; small images are scaled up first."""
    if min(image.size) < size:
        scale = size / min(image.size)
        image = image.resize(
            (max(size, round(image.size[0] * scale)), max(size, round(image.size[1] * scale))),
            Image.BICUBIC,
        )
    return to_tensor(center_crop(image, size))


def decode_mask(url: str, size: int) -> torch.Tensor:
    """A painted mask (PNG data URL, any square resolution) -> (size, size) bool."""
    if not url.startswith("data:image/png;base64,"):
        raise RequestError("the mask must be a PNG data URL")
    if len(url) > 2 * MAX_UPLOAD_BYTES:
        raise RequestError(f"the mask is larger than {MAX_UPLOAD_BYTES} bytes")
    try:
        raw = base64.b64decode(url.split(",", 1)[1], validate=True)
        mask = Image.open(io.BytesIO(raw))
        if max(mask.size) > MAX_SIDE:
            w, h = mask.size
            raise RequestError(f"the mask is {w}x{h}; the largest side allowed is {MAX_SIDE}")
        mask.load()
    except (ValueError, OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        if isinstance(error, RequestError):
            raise
        raise RequestError("the mask could not be decoded") from None
    alpha = np.asarray(mask.convert("RGBA"))
    painted = torch.from_numpy((alpha[..., 3] > 0) & (alpha[..., :3].max(-1) > 127)).float()
    h, w = painted.shape
    if h != w:
        raise RequestError(f"the mask must be square, got {w}x{h}")
    if h % size:
        painted = F.interpolate(painted[None, None], size=(size * (h // size + 1),) * 2)[0, 0]
    factor = painted.shape[0] // size
    return F.max_pool2d(painted[None, None], factor)[0, 0] > 0


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def parse_json(raw: bytes) -> dict:
    """A job request's body: a JSON object of at most `MAX_JSON_BYTES`, nested at most
    `MAX_JSON_DEPTH` deep (checked by a scan before parsing, so a deeply nested body never
    reaches the parser's recursion)."""
    if len(raw) > MAX_JSON_BYTES:
        raise RequestError(f"the request is {len(raw)} bytes; the limit is {MAX_JSON_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("the request body must be UTF-8 JSON") from None
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub('""', text)):  # strings cannot nest
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise RequestError(f"the request is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(text, parse_constant=_no_constant)
    except ValueError as error:
        raise RequestError(f"the request body is not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    return body


def _no_constant(name: str):
    raise RequestError(f"{name} is not a JSON number")


def number(key: str, value, kind: type):
    """A JSON number of the field's kind: integers exactly (no bools, no 3.7, no text such as
    "12"), finite numbers."""
    if isinstance(value, bool):
        raise RequestError(f"{key} must be a number, not {str(value).lower()}")
    if isinstance(value, str):
        raise RequestError(f"{key} must be a JSON number, not text ({value[:40]!r})")
    if kind is int:
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if not isinstance(value, int):
            raise RequestError(f"{key} must be a whole number, got {value!r}")
        return value
    if not isinstance(value, int | float):
        raise RequestError(f"{key} must be a finite number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an integer too large for a float
        raise RequestError(f"{key} must be a finite number, got {str(value)[:20]}...") from None
    if not math.isfinite(value):
        raise RequestError(f"{key} must be a finite number, got {value!r}")
    return value


def sampler_config(options, base: SamplerConfig) -> SamplerConfig:
    """`base` with the page's sampler options (an object of SamplerConfig fields) applied."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise RequestError("sampler must be an object of sampler options")
    allowed = {f.name for f in dataclasses.fields(SamplerConfig)}
    changes = {}
    for key, value in options.items():
        if key not in allowed:
            raise RequestError(f"unknown sampler option {key!r}")
        if value in (None, ""):
            continue
        kind = type(getattr(SamplerConfig(), key))
        if kind is str:
            if not isinstance(value, str):
                raise RequestError(f"sampler option {key} must be text, got {value!r}")
            changes[key] = value
        else:
            changes[key] = number(f"sampler option {key}", value, kind)
    config = dataclasses.replace(base, **changes)
    try:
        config.validate()
    except ValueError as error:
        raise RequestError(str(error)) from None
    return config


def int_field(body: dict, key: str, default: int, low: int, high: int) -> int:
    """`body[key]` as a whole number in low..high (`default` when absent or null)."""
    value = body.get(key)
    value = number(key, default if value is None else value, int)
    if not low <= value <= high:
        raise RequestError(f"{key} must lie in {low}..{high}, got {value}")
    return value


def text_field(body: dict, key: str) -> str | None:
    """`body[key]` when it is text or absent (None)."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise RequestError(f"{key} must be text, got {value!r}")
    return value
