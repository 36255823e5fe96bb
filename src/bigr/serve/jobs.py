"""The state behind `bigr serve`: the loaded model pairs, uploaded images and jobs.

Owns: `ModelPair` (a generator, its tokenizer, class names and recommended sampler settings),
`Job` (progress, then the result) and `Server`, which validates a request into a task before
queueing it and runs tasks one at a time on a worker thread (the models are shared; CPU cores
are few); each task reports progress through the sampler's callback.

Leaves to others: the web framework and routes (`app.py`), parsing the request fields
(`requests.py`), the apps and the sampling loop themselves.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image

from ..apps import edit, enrich, inpaint, interpolate, outpaint
from ..apps.common import condition_for
from ..model import BiGR
from ..precision import PRECISIONS, inference_precision
from ..sampler import SamplerConfig, sample_codes
from ..tokenizer import BinaryAutoencoder
from .requests import (
    MAX_IMAGES,
    OPERATIONS,
    RequestError,
    data_url,
    decode_mask,
    int_field,
    mask_url,
    prepare,
    read_upload,
    sampler_config,
    shrink_for,
    text_field,
)

MAX_KEPT_UPLOADS = 64
MAX_KEPT_BYTES = 256 * 1024 * 1024  # all kept uploads together

# Every field a job request may carry (the page sends all of them, whatever the operation).
JOB_FIELDS = frozenset(
    {"operation", "model", "num", "seed", "sampler", "image_id", "mask", "blend"}
    | {"class_id", "class_b", "prompt", "prompt_b", "ds", "rounds"}
)


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


Task = Callable[[Callable[[int, int], None]], dict]


@dataclass(frozen=True)
class _Inputs:
    """The fields of a job request that every operation shares, validated."""

    pair: ModelPair
    body: dict
    sampler: SamplerConfig
    seed: int
    num: int
    image: torch.Tensor | None
    mask: torch.Tensor | None
    blend: bool

    def generator(self) -> torch.Generator:
        device = self.pair.model.transformer.mask_token.device
        return torch.Generator(device).manual_seed(self.seed)


class Server:
    """Model pairs, uploaded images and jobs; no web framework in here (see `create_app`)."""

    def __init__(self, pairs: list[ModelPair], precision: str = "auto") -> None:
        if not pairs:
            raise ValueError("no model to serve")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision  # the generator's arithmetic in the job thread
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
            from ..data.text_encoder import TextEncoder, TextEncoderMissingError

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
        """Keep an uploaded image (as the largest model's centre crop would first shrink it,
        so the kept images stay small) and return its id and a preview."""
        size = self.pair(model).tokenizer.config.image_size
        image = read_upload(data)
        width, height = image.size
        kept = shrink_for(image, max(p.tokenizer.config.image_size for p in self.pairs.values()))
        image_id = uuid.uuid4().hex
        with self.lock:
            self.uploads[image_id] = kept
            while len(self.uploads) > MAX_KEPT_UPLOADS or self.upload_bytes() > MAX_KEPT_BYTES:
                self.uploads.pop(next(iter(self.uploads)))  # the oldest first
        return {
            "image_id": image_id,
            "width": width,
            "height": height,
            "preview": data_url(prepare(kept, size)),
        }

    def upload_bytes(self) -> int:
        """Memory the kept uploads take (RGB, 3 bytes a pixel)."""
        return sum(3 * w * h for w, h in (image.size for image in self.uploads.values()))

    def submit(self, body: dict) -> dict:
        unknown = sorted(set(body) - JOB_FIELDS)
        if unknown:  # a misspelt field would otherwise be ignored silently
            raise RequestError(
                f"unknown field {unknown[0]!r}; known: {', '.join(sorted(JOB_FIELDS))}"
            )
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

    def _prepare(self, operation: str, pair: ModelPair, body: dict) -> Task:
        """The validated request as a task `task(progress) -> dict` of result tensors."""
        inputs = self._inputs(operation, pair, body)
        if operation == "sample":
            return self._sample_task(inputs)
        if operation in ("inpaint", "outpaint", "edit"):
            return self._masked_task(operation, inputs)
        if operation == "interpolate":
            return self._interpolate_task(inputs)
        return self._enrich_task(inputs)

    def _inputs(self, operation: str, pair: ModelPair, body: dict) -> _Inputs:
        """The fields every operation shares, checked in the order the page reports them."""
        sampler = sampler_config(body.get("sampler"), pair.recipe)
        seed = int_field(body, "seed", 0, 0, 2**31 - 1)
        num = int_field(body, "num", 4, 1, MAX_IMAGES)
        size = pair.tokenizer.config.image_size
        image = mask = None
        if operation in ("inpaint", "outpaint", "edit", "enrich"):
            image_id = text_field(body, "image_id")
            if image_id not in self.uploads:
                raise RequestError("upload an image first")
            image = prepare(self.uploads[image_id], size)
        if operation in ("inpaint", "outpaint", "edit"):
            mask = decode_mask(text_field(body, "mask") or "", size)
            if operation != "outpaint" and not mask.any():
                raise RequestError("paint a mask over the region to regenerate")
            if operation == "outpaint" and not mask.any():
                raise RequestError("paint a mask over the region to keep")
        blend = body.get("blend", True)
        if not isinstance(blend, bool):
            raise RequestError(f"blend must be true or false, got {blend!r}")
        return _Inputs(pair, body, sampler, seed, num, image, mask, blend)

    def _condition(self, inputs: _Inputs, key: str):
        """A class id, or for a text model the embedding of the matching prompt."""
        config = inputs.pair.model.config
        if config.text_dim:
            return self.encode_prompt(inputs.body.get("prompt_b" if key == "class_b" else "prompt"))
        if config.num_classes == 0:  # unconditional: the null condition, whatever is sent
            return None
        return int_field(inputs.body, key, 0, 0, config.num_classes - 1)

    def _sample_task(self, inputs: _Inputs) -> Task:
        model, tok = inputs.pair.model, inputs.pair.tokenizer
        condition = self._condition(inputs, "class_id")

        def task(progress):
            conditions = condition_for(model, condition, inputs.num)
            codes = sample_codes(
                model, conditions, inputs.sampler, generator=inputs.generator(), progress=progress
            )
            with torch.no_grad():
                return {"images": tok.decode(codes).clamp(0, 1).cpu()}

        return task

    def _masked_task(self, operation: str, inputs: _Inputs) -> Task:
        app = {"inpaint": inpaint, "outpaint": outpaint, "edit": edit}[operation]
        extra = {"condition": self._condition(inputs, "class_id")} if operation == "edit" else {}
        if operation == "edit" and extra["condition"] is None:
            raise RequestError("this model is unconditional: it has no class to edit towards")

        def task(progress):
            args = (inputs.pair.model, inputs.pair.tokenizer, inputs.image, inputs.mask)
            if operation == "edit":
                args = (*args, extra["condition"])
            r = app(
                *args,
                num=inputs.num,
                sampler=inputs.sampler,
                blend_result=inputs.blend,
                generator=inputs.generator(),
                progress=progress,
            )
            return {"images": r.images, "input": inputs.image, "mask": r.pixel_mask}

        return task

    def _interpolate_task(self, inputs: _Inputs) -> Task:
        a, b = self._condition(inputs, "class_id"), self._condition(inputs, "class_b")
        frames = max(inputs.num, 2)

        def task(progress):
            weights = [i / (frames - 1) for i in range(frames)]
            images, _ = interpolate(
                inputs.pair.model,
                inputs.pair.tokenizer,
                a,
                b,
                weights,
                sampler=inputs.sampler,
                seed=inputs.seed,
                progress=progress,
            )
            return {"images": images}

        return task

    def _enrich_task(self, inputs: _Inputs) -> Task:
        size = inputs.pair.tokenizer.config.image_size
        ds = int_field(inputs.body, "ds", 2, 1, 8)
        if size % ds:
            raise RequestError(f"the image size {size} is not divisible by {ds}")
        rounds = int_field(inputs.body, "rounds", 2, 1, 8)
        image = inputs.image
        small = F.interpolate(image[None], scale_factor=1 / ds, mode="area")[0]

        def task(progress):
            r = enrich(
                inputs.pair.model,
                inputs.pair.tokenizer,
                small,
                ds=ds,
                rounds=rounds,
                sampler=inputs.sampler,
                seed=inputs.seed,
                progress=progress,
            )
            return {"images": torch.cat([r.low_res[None], r.images]), "input": image}

        return task

    def _run(self, job: Job, task) -> None:
        job.status = "running"
        device = next(iter(self.pairs.values())).model.transformer.mask_token.device
        try:
            with inference_precision(self.precision, device):  # autocast is per thread
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
