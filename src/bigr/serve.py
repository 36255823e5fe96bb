"""`bigr serve`: a local web page for generation and brush-based editing.

A small Flask application (bound to 127.0.0.1 by default) serving one page (`web/index.html`)
and a JSON API:

- `GET  /api/models`            the loaded model pairs (name, classes, image size, class names)
- `POST /api/upload`            an image file -> its id and the model-size crop (data URL);
                                validated by decoding it (PNG, JPEG, WebP, BMP, GIF), by byte
                                size and by dimensions, with a one-line JSON error otherwise
- `POST /api/jobs`              start generation or an app (sample, inpaint, outpaint, edit,
                                interpolate, enrich) with the sampler's options -> job id
- `GET  /api/jobs/<id>`         progress (done / total), then the result images (data URLs),
                                the cropped input and the mask actually used

Jobs run one at a time on a worker thread (the models are shared; CPU cores are few); each
reports progress through the sampler's callback. Masks come from the page's brush canvas as a
PNG at any resolution; a model pixel is marked when any painted display pixel covers it.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .apps import edit, enrich, inpaint, interpolate, outpaint
from .apps.common import labels_for
from .images import center_crop, to_pil, to_rgb, to_tensor
from .model import BiGR, load_tokenizer
from .recipes import recipe
from .sampler import ORDERS, SamplerConfig, sample_codes
from .tokenizer import BinaryAutoencoder

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_SIDE = 4096
ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "BMP", "GIF"}
OPERATIONS = ("sample", "inpaint", "outpaint", "edit", "interpolate", "enrich")
MAX_IMAGES = 16


class RequestError(ValueError):
    """Bad input from the page: answered with HTTP 400 and the message."""


@dataclass
class ModelPair:
    name: str
    model: BiGR
    tokenizer: BinaryAutoencoder
    class_names: list[str] = field(default_factory=list)
    recipe: SamplerConfig = field(default_factory=SamplerConfig)  # the model's recommended one

    def describe(self) -> dict:
        return {
            "name": self.name,
            "defaults": dataclasses.asdict(self.recipe),
            "text": bool(self.model.config.text_dim),
            "num_classes": self.model.config.num_classes,
            "image_size": self.tokenizer.config.image_size,
            "class_names": self.class_names,
        }


@dataclass
class Job:
    id: str
    operation: str
    done: int = 0
    total: int = 1
    status: str = "queued"  # queued, running, done, error
    error: str = ""
    result: dict = field(default_factory=dict)

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, max(total, 1)

    def describe(self) -> dict:
        return {
            "id": self.id,
            "operation": self.operation,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "error": self.error,
            **self.result,
        }


# -- images ------------------------------------------------------------------------------------


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
        if max(w, h) > MAX_SIDE:
            raise RequestError(f"the image is {w}x{h}; the largest side allowed is {MAX_SIDE}")
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


# -- the application ---------------------------------------------------------------------------


def _number(key: str, value, kind: type):
    """A JSON value of the field's kind: integers exactly (no bools, no 3.7), finite numbers."""
    if isinstance(value, bool):
        raise RequestError(f"{key} must be a number, not {str(value).lower()}")
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int):
            raise RequestError(f"{key} must be a whole number, got {value!r}")
        return value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RequestError(f"{key} must be a number, got {value!r}") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _sampler(options, base: SamplerConfig) -> SamplerConfig:
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
            changes[key] = _number(f"sampler option {key}", value, kind)
    config = dataclasses.replace(base, **changes)
    try:
        config.validate()
    except ValueError as error:
        raise RequestError(str(error)) from None
    return config


def _int(body: dict, key: str, default: int, low: int, high: int) -> int:
    value = _number(key, body.get(key, default), int)
    if not low <= value <= high:
        raise RequestError(f"{key} must lie in {low}..{high}, got {value}")
    return value


def _text(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise RequestError(f"{key} must be text, got {value!r}")
    return value


class Server:
    """Model pairs, uploaded images and jobs; no web framework in here (see `create_app`)."""

    def __init__(self, pairs: list[ModelPair]) -> None:
        if not pairs:
            raise ValueError("no model to serve")
        self.pairs = {p.name: p for p in pairs}
        self.uploads: dict[str, Image.Image] = {}
        self.jobs: dict[str, Job] = {}
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.lock = threading.Lock()
        self._text_encoder = None

    def encode_prompt(self, prompt) -> torch.Tensor:
        """A caption embedding (T,) for a text model, from the page's prompt field."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise RequestError("this model is conditioned on text: write a prompt")
        if len(prompt) > 500:
            raise RequestError("the prompt is longer than 500 characters")
        if self._text_encoder is None:
            from .text import TextEncoder, TextEncoderMissingError

            try:
                self._text_encoder = TextEncoder()
            except TextEncoderMissingError as error:
                raise RequestError(str(error)) from None
        return self._text_encoder([prompt.strip()])[0]

    def pair(self, name: str | None) -> ModelPair:
        if name is not None and not isinstance(name, str):
            raise RequestError(f"model must be a model name, got {name!r}")
        if name is None:
            return next(iter(self.pairs.values()))
        if name not in self.pairs:
            raise RequestError(f"unknown model {name!r}; loaded: {', '.join(self.pairs)}")
        return self.pairs[name]

    def upload(self, data: bytes, model: str | None) -> dict:
        image = read_upload(data)
        image_id = uuid.uuid4().hex
        with self.lock:
            self.uploads[image_id] = image
            while len(self.uploads) > 64:  # keep memory bounded
                self.uploads.pop(next(iter(self.uploads)))
        size = self.pair(model).tokenizer.config.image_size
        return {
            "image_id": image_id,
            "width": image.size[0],
            "height": image.size[1],
            "preview": data_url(prepare(image, size)),
        }

    def submit(self, body: dict) -> dict:
        operation = body.get("operation")
        if operation not in OPERATIONS:
            raise RequestError(f"operation must be one of {', '.join(OPERATIONS)}")
        pair = self.pair(body.get("model"))
        task = self._prepare(operation, pair, body)  # validates before queueing
        job = Job(id=uuid.uuid4().hex, operation=operation)
        self.jobs[job.id] = job
        self.executor.submit(self._run, job, task)
        return job.describe()

    def job(self, job_id: str) -> dict:
        if job_id not in self.jobs:
            raise KeyError(job_id)
        return self.jobs[job_id].describe()

    # -- jobs --

    def _prepare(self, operation: str, pair: ModelPair, body: dict):
        sampler = _sampler(body.get("sampler"), pair.recipe)
        seed = _int(body, "seed", 0, 0, 2**31 - 1)
        num = _int(body, "num", 4, 1, MAX_IMAGES)
        size = pair.tokenizer.config.image_size
        classes = pair.model.config.num_classes

        def a_class(key: str):
            """A class id, or for a text model the embedding of the matching prompt."""
            if pair.model.config.text_dim:
                return self.encode_prompt(body.get("prompt_b" if key == "class_b" else "prompt"))
            return _int(body, key, 0, 0, classes - 1)

        image = mask = None
        if operation in ("inpaint", "outpaint", "edit", "enrich"):
            image_id = _text(body, "image_id")
            if image_id not in self.uploads:
                raise RequestError("upload an image first")
            image = prepare(self.uploads[image_id], size)
        if operation in ("inpaint", "outpaint", "edit"):
            mask = decode_mask(_text(body, "mask") or "", size)
            if operation != "outpaint" and not mask.any():
                raise RequestError("paint a mask over the region to regenerate")
            if operation == "outpaint" and not mask.any():
                raise RequestError("paint a mask over the region to keep")
        blend = body.get("blend", True)
        if not isinstance(blend, bool):
            raise RequestError(f"blend must be true or false, got {blend!r}")
        model, tok = pair.model, pair.tokenizer

        def generator() -> torch.Generator:
            return torch.Generator(model.transformer.mask_token.device).manual_seed(seed)

        if operation == "sample":
            label = a_class("class_id")

            def task(progress):
                labels = labels_for(model, label, num)
                codes = sample_codes(
                    model, labels, sampler, generator=generator(), progress=progress
                )
                with torch.no_grad():
                    return {"images": tok.decode(codes).clamp(0, 1).cpu()}

        elif operation in ("inpaint", "outpaint", "edit"):
            app = {"inpaint": inpaint, "outpaint": outpaint, "edit": edit}[operation]
            extra = {"label": a_class("class_id")} if operation == "edit" else {}

            def task(progress):
                args = (model, tok, image, mask)
                if operation == "edit":
                    args = (*args, extra["label"])
                r = app(
                    *args,
                    num=num,
                    sampler=sampler,
                    blend_result=blend,
                    generator=generator(),
                    progress=progress,
                )
                return {"images": r.images, "input": image, "mask": r.pixel_mask}

        elif operation == "interpolate":
            a, b = a_class("class_id"), a_class("class_b")
            frames = max(num, 2)

            def task(progress):
                weights = [i / (frames - 1) for i in range(frames)]
                images, _ = interpolate(
                    model, tok, a, b, weights, sampler=sampler, seed=seed, progress=progress
                )
                return {"images": images}

        else:  # enrich
            ds = _int(body, "ds", 2, 1, 8)
            if size % ds:
                raise RequestError(f"the image size {size} is not divisible by {ds}")
            rounds = _int(body, "rounds", 2, 1, 8)
            small = F.interpolate(image[None], scale_factor=1 / ds, mode="area")[0]

            def task(progress):
                r = enrich(
                    model,
                    tok,
                    small,
                    ds=ds,
                    rounds=rounds,
                    sampler=sampler,
                    seed=seed,
                    progress=progress,
                )
                return {"images": torch.cat([r.low_res[None], r.images]), "input": image}

        return task

    def _run(self, job: Job, task) -> None:
        job.status = "running"
        try:
            out = task(job.progress)
            result = {"images": [data_url(x) for x in out["images"]]}
            if "input" in out:
                result["input"] = data_url(out["input"])
            if "mask" in out:
                result["mask"] = mask_url(out["mask"].cpu())
            job.result, job.status = result, "done"
            job.done = job.total
        except Exception as error:  # reported to the page, never lost in a thread
            job.status, job.error = "error", f"{error.__class__.__name__}: {error}"


def page() -> str:
    return (resources.files("bigr") / "web" / "index.html").read_text()


def create_app(server: Server):
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import HTTPException

    app = Flask("bigr")
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES + 64 * 1024

    @app.errorhandler(RequestError)
    def bad_request(error):
        return jsonify(error=str(error)), 400

    @app.errorhandler(HTTPException)
    def http_error(error):
        message = error.description
        if error.code == 413:
            message = f"the upload is larger than {MAX_UPLOAD_BYTES} bytes"
        return jsonify(error=message), error.code

    @app.get("/")
    def index():
        return page(), 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/api/models")
    def models():
        return jsonify(
            models=[p.describe() for p in server.pairs.values()],
            operations=list(OPERATIONS),
            orders=list(ORDERS),
            defaults=dataclasses.asdict(next(iter(server.pairs.values())).recipe),
        )

    @app.post("/api/upload")
    def upload():
        file = request.files.get("image")
        if file is None:
            raise RequestError("no file in the form field 'image'")
        return jsonify(server.upload(file.read(), request.form.get("model")))

    @app.post("/api/jobs")
    def submit():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        return jsonify(server.submit(body))

    @app.get("/api/jobs/<job_id>")
    def job(job_id: str):
        try:
            return jsonify(server.job(job_id))
        except KeyError:
            return jsonify(error=f"no job {job_id}"), 404

    return app


def load_pairs(specs: list[tuple[str, str | None]], device: str = "cpu") -> list[ModelPair]:
    """(model dir, tokenizer dir or None) pairs; none given: the embedded demo models."""
    from .apps.common import check_pair
    from .demo import CLASSES, demo_recipe, load_demo_models

    if not specs:
        from .checkpoint import CheckpointError

        model, tok = load_demo_models(device)
        pairs = [ModelPair("fashion-demo", model, tok, list(CLASSES), demo_recipe())]
        try:  # the embedded text-to-image model, when present
            text_model = BiGR.from_pretrained("bigr:fashion-text", device=device).eval()
            text_recipe = recipe("recommended", "bigr:fashion-text")
            pairs.append(ModelPair("fashion-text", text_model, tok, [], text_recipe))
        except CheckpointError:
            pass
        return pairs
    pairs = []
    for model_dir, tok_dir in specs:
        model = BiGR.from_pretrained(model_dir, device=device).eval()
        tok_path = tok_dir or Path(model_dir) / "tokenizer"
        tok = load_tokenizer(tok_path, device=device).eval()
        check_pair(model, tok)
        pairs.append(
            ModelPair(Path(model_dir).name, model, tok, [], recipe("recommended", model_dir))
        )
    return pairs
